"""Issue #15: the per-card abuse counters are shared by the nodes (Redis), so a limit trips
at the shared count, not N times it; the resulting suspension holds on every node."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from redis import asyncio as aioredis

from proxy.core.abuse import AbuseLimits
from proxy.stores.abuse_counters import RedisAbuseCounters
from proxy.stores.redis_state import RedisState
from tests.scaling.redisserver import RedisServer
from tests.scaling.test_redis_sessions import cluster_redis, signed_in
from tests.scaling.test_redis_suspensions import status

LIMIT = 4


async def test_requests_limit_trips_at_the_shared_count(make_cluster: Any) -> None:
    """Alternating nodes, the card gets exactly LIMIT pages (per-process counters would allow
    2×LIMIT); the request past it is refused on either node, and after the suspension a new
    login on the other node is refused too."""
    cluster = await make_cluster(limits={"requests": LIMIT})
    auth = await signed_in(cluster, 0)
    got = [await status(cluster, i % 2, auth) for i in range(LIMIT + 2)]
    assert got == [200] * LIMIT + [403, 403]

    async def refused(node: int) -> bool:
        return await status(cluster, node, await signed_in(cluster, node)) == 403

    for node in (0, 1):
        for _ in range(100):  # the other node learns of the suspension over the bus
            if await refused(node):
                break
            await asyncio.sleep(0.05)
        assert await refused(node), node


async def test_redis_down_refuses_the_relay_with_503(
    make_cluster: Any, redis_server: RedisServer
) -> None:
    """Counting fails closed: with Redis stopped after login, a page is not relayed uncounted."""
    cluster = await make_cluster(limits={"requests": LIMIT})
    auth = await signed_in(cluster, 0)
    assert await status(cluster, 1, auth) == 200
    served = len(cluster.vendor.records)
    redis_server.stop()
    assert await status(cluster, 1, auth) == 503
    assert len(cluster.vendor.records) == served
    redis_server.start()


async def test_counters_hold_only_hashes(make_cluster: Any) -> None:
    """The window key is named by the card's keyed hash and holds per-minute buckets (a
    page's bytes reach Redis with the card's next request); networks are keyed hashes."""
    cluster = await make_cluster(limits={"requests": LIMIT, "card_networks": 3})
    auth = await signed_in(cluster, 0)
    assert [await status(cluster, 1, auth) for _ in range(2)] == [200, 200]
    client = cluster_redis(cluster)
    windows = [k.decode() for k in client.scan_iter("clamshell:ab:*")]
    networks = [k.decode() for k in client.scan_iter("clamshell:an:*")]
    assert len(windows) == 1 and len(networks) == 1
    fields = {f.decode(): int(v) for f, v in client.hgetall(windows[0]).items()}
    assert sorted(f[:2] for f in fields) == ["b:", "r:"]  # one minute's requests and bytes
    assert fields[next(f for f in fields if f.startswith("r:"))] == 2
    assert fields[next(f for f in fields if f.startswith("b:"))] > 0  # the first page's
    card = cluster.card("adult card")
    assert card.barcode not in windows[0] + networks[0]
    assert all(len(f) == 64 for f in client.hkeys(networks[0]))  # a keyed hash, not 127.0.0


async def test_bytes_count_across_nodes(redis_server: RedisServer) -> None:
    """Bytes relayed on node A reach the shared window with A's next request; a response on
    B is then cut at the shared total, and B's next request is refused for bytes."""
    limits = AbuseLimits(bytes=1000)
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    a, b = (
        RedisAbuseCounters(RedisState(aioredis.Redis.from_url(redis_server.url), "t:"), b"k" * 32)
        for _ in range(2)
    )
    assert await a.admit("card", limits, now) is None
    meter = a.byte_count("card", limits, now)
    assert meter.add(600) is None
    await a.settle(meter)
    assert await a.admit("card", limits, now) is None  # carries the 600 bytes to Redis
    assert await b.admit("card", limits, now) is None
    on_b = b.byte_count("card", limits, now)
    crossed = on_b.add(500)
    assert crossed is not None and (crossed.limit, crossed.value) == ("bytes", 1100)
    await b.settle(on_b)
    refused = await b.admit("card", limits, now)
    assert refused is not None and refused.limit == "bytes"
    for node in (a, b):
        await node.state.close()
