"""Issue #15: login throttles in Redis are global across nodes (atomic Lua sliding windows)."""

from __future__ import annotations

from typing import Any

from proxy.web.keys import LOGIN_THROTTLE, THROTTLE
from tests.scaling.redisserver import RedisServer
from tests.web.helpers import post_login

LIMITS = {"card_attempts": 3, "global_attempts": 5, "alarm_delay_ms": 0}


async def test_card_locked_through_failures_on_two_nodes(make_cluster: Any) -> None:
    """Two failures on A and one on B lock the card everywhere: the right PIN is then refused
    on both nodes (each node alone saw fewer failures than the limit)."""
    cluster = await make_cluster(throttle=LIMITS)
    a, b = cluster.nodes
    card = cluster.card("adult card")
    for node in (a, a, b):
        assert (await post_login(node, card.barcode, "0000")).status == 403
    for node in (a, b):
        assert (await post_login(node, card.barcode, card.secret)).status == 403
    cluster.clock.advance(minutes=16)  # lockout_minutes 15
    assert (await post_login(b, card.barcode, card.secret)).status == 302


async def test_global_alarm_counts_failures_of_every_node(
    make_cluster: Any, redis_server: RedisServer
) -> None:
    """Failures spread over two nodes (different cards) raise the global alarm seen by both;
    only keyed hashes of cards and addresses are in Redis."""
    cluster = await make_cluster(throttle=LIMITS)
    a, b = cluster.nodes
    cards = ["21234000000018", "21234000000026", "21234000000034"]
    for i in range(5):
        await post_login((a, b)[i % 2], cards[i % 3], "0000")
    for app in cluster.apps:
        assert await app[LOGIN_THROTTLE].alarm(cluster.clock()) is not None
    assert sum(app[THROTTLE].alarms_raised for app in cluster.apps) == 1
    dumped = repr(redis_server.dump())
    assert "clamshell:t:global" in dumped
    for card in cards:
        assert card not in dumped
    assert "127.0.0.1" not in dumped
