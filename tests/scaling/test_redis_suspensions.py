"""Issue #15: an abuse suspension marked on one node holds on every node, and after a restart
of all nodes (even on fresh data_dirs: Redis holds it)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from tests.scaling.conftest import Cluster
from tests.scaling.redisserver import RedisServer
from tests.scaling.test_redis_sessions import WWW, signed_in
from tests.web.helpers import post_login, session_of


async def status(cluster: Cluster, node: int, auth: dict[str, str]) -> int:
    """The status of one relayed page through ``node``."""
    resp = await cluster.nodes[node].get("/", headers={"Host": WWW, **auth})
    await resp.read()
    return resp.status


async def test_suspension_on_a_holds_on_b_and_after_restart(
    make_cluster: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Crossing the requests limit through A suspends the card on B too (a new login on B
    included); all nodes restarted on new data_dirs: still suspended; another card is not."""
    cluster = await make_cluster(limits={"requests": 2})
    auth = await signed_in(cluster, 0)
    assert [await status(cluster, 0, auth) for _ in range(3)] == [200, 200, 403]

    async def refused_on_b() -> bool:
        return await status(cluster, 1, await signed_in(cluster, 1)) == 403

    for _ in range(100):  # the bus message arrives asynchronously
        if await refused_on_b():
            break
        await asyncio.sleep(0.05)
    assert await refused_on_b()
    for node in cluster.nodes:
        await node.close()  # on_cleanup: every store closed
    fresh = tmp_path / "fresh"  # every node shares the secrets (docs/scaling.md), not the files
    fresh.mkdir(mode=0o700)
    for secret in ("pepper.key", "csrf.key"):
        shutil.copy2(tmp_path / "data" / secret, fresh / secret)
    assert not (fresh / "abuse.sqlite3").exists()
    again = await make_cluster(limits={"requests": 2}, data_dir=str(fresh))
    assert await status(again, 1, await signed_in(again, 1)) == 403
    student = again.card("student")
    other = session_of(await post_login(again.nodes[0], student.barcode, student.secret))
    assert await status(again, 0, other) == 200
