"""Issue #15: the anonymous-request quota per client address is shared by the nodes (Redis),
keyed by a keyed hash of the address, never the address itself."""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis

from proxy.core.addressquota import AddressQuota
from proxy.stores.address_quotas import RedisAnonymousQuota
from proxy.stores.redis_state import RedisState, StateUnavailable
from tests.scaling.redisserver import RedisServer
from tests.scaling.test_redis_sessions import cluster_redis
from tests.web.test_anonymous import API, PREFLIGHT

PEPPER = b"p" * 32
ADDRESS = "198.51.100.77"


def quota_node(server: RedisServer, per_window: int) -> RedisAnonymousQuota:
    """One node's quota: its own Redis client on the shared server."""
    state = RedisState(aioredis.Redis.from_url(server.url), "clamshell:")
    return RedisAnonymousQuota(state, PEPPER, AddressQuota(per_window=per_window))


async def test_two_nodes_share_one_quota(redis_server: RedisServer) -> None:
    """Alternating nodes, an address gets the quota once in a window, not once per node;
    another address and the next window start afresh."""
    nodes = [quota_node(redis_server, 3), quota_node(redis_server, 3)]
    now = 6_000.0
    got = [await nodes[i % 2].admit(ADDRESS, now) for i in range(5)]
    assert got == [True, True, True, False, False]
    assert await nodes[1].admit("198.51.100.78", now)
    assert await nodes[0].admit(ADDRESS, now + 60)
    for node in nodes:
        await node.state.close()


async def test_quota_fails_closed_without_redis(redis_server: RedisServer) -> None:
    """Redis stopped: the quota raises StateUnavailable (the 503 page), it does not admit."""
    node = quota_node(redis_server, 3)
    redis_server.stop()
    try:
        await node.admit(ADDRESS, 6_000.0)
    except StateUnavailable:
        pass
    else:
        raise AssertionError("admitted without Redis")
    finally:
        redis_server.start()
        await node.state.close()


async def test_a_relayed_preflight_counts_under_a_hash(make_cluster: Any) -> None:
    """An anonymous preflight through a node is counted in Redis under a keyed hash of the
    client address; the address itself is in no key or value."""
    cluster = await make_cluster()
    for node in cluster.nodes:
        resp = await node.options("/v1/search", headers={"Host": API, **PREFLIGHT})
        assert resp.status == 204  # the demo vendor's preflight answer, relayed
    client = cluster_redis(cluster)
    keys = [k.decode() for k in client.scan_iter("clamshell:aq:*")]
    assert len(keys) == 1 and int(client.get(keys[0]) or 0) == 2
    assert "127.0.0.1" not in keys[0]
