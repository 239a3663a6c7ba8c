"""Issue #15: one epoch key per (vendor, epoch) on every node; destroyed everywhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from proxy.core.pseudonym import epoch_id
from proxy.stores.redis_epochkeys import SharedEpochKeys
from proxy.tasks import TaskOwner
from proxy.web.keys import EPOCHS, STATE
from tests.scaling.redisserver import RedisServer
from tests.scaling.test_redis_sessions import eventually


async def test_nodes_agree_on_a_new_key_and_forget_it_together(
    make_cluster: Any, redis_server: RedisServer
) -> None:
    """A key made on node A (own data_dir) is adopted by B; after A's retention round the key
    is gone from A, B and Redis, so no node can compute that epoch's pseudonyms any more."""
    cluster = await make_cluster(own_dirs=True)
    a, b = cluster.apps
    epoch = epoch_id("daily", cluster.clock())
    key = a[EPOCHS].key_for(epoch)
    await eventually(lambda: b[EPOCHS].known().get(epoch) == key)
    assert b[EPOCHS].key_for(epoch) == key
    assert redis_server.client().get(f"clamshell:ek:{epoch}") == key
    # Written ahead as every retention round does (the start-up round races with the test's
    # key otherwise): today's and tomorrow's keys, both ended before the cutoff below.
    await asyncio.to_thread(a[EPOCHS].prepare, cluster.clock())
    ahead = epoch_id("daily", cluster.clock() + timedelta(days=1))
    assert set(a[EPOCHS].known()) == {epoch, ahead}
    cluster.clock.advance(days=100)
    cutoff = cluster.clock() - timedelta(days=90)
    assert await asyncio.to_thread(a[EPOCHS].destroy_older_than, cutoff) == 2
    state = a[STATE]
    assert state is not None
    await SharedEpochKeys(state, a[EPOCHS], TaskOwner(), timedelta(days=90)).destroyed(cutoff)
    await eventually(lambda: b[EPOCHS].existing(epoch) is None)
    assert a[EPOCHS].existing(epoch) is None
    assert redis_server.client().get(f"clamshell:ek:{epoch}") is None
