"""Issue #15: usage counters from every node are added in Redis and written by one leader."""

from __future__ import annotations

from typing import Any

from proxy.web.app import flush_usage
from proxy.web.keys import STATS, USAGE
from tests.scaling.redisserver import RedisServer
from tests.scaling.test_redis_sessions import WWW, signed_in
from tests.web.helpers import post_login, session_of


async def test_two_nodes_counts_add_up_and_uniques_count_once(
    make_cluster: Any, redis_server: RedisServer
) -> None:
    """One patron browsing through A and B, another through B: the leader's file says 3
    requests and 2 unique patrons; the other node's file holds no usage row; Redis holds only
    counters and HyperLogLogs, no card or vendor path."""
    cluster = await make_cluster(own_dirs=True)
    a, b = cluster.apps
    auth = await signed_in(cluster, 0)
    for node in cluster.nodes:
        assert (await node.get("/article/1", headers={"Host": WWW, **auth})).status == 200
    student = cluster.card("student")
    other = session_of(await post_login(cluster.nodes[1], student.barcode, student.secret))
    assert (await cluster.nodes[1].get("/", headers={"Host": WWW, **other})).status == 200
    await flush_usage(a)  # A takes the lead, writes its own counts
    await flush_usage(b)  # B only pushes
    dumped = repr(redis_server.dump())
    assert "clamshell:hll:" in dumped
    for canary in (student.barcode, cluster.card("adult").barcode, "article"):
        assert canary not in dumped
    await flush_usage(a)  # the leader moves B's counts too
    day = cluster.clock().date()
    rows = a[STATS].daily(day, day)
    assert [(r.vendor, r.library, r.requests, r.uniques) for r in rows] == [("acme", "MAIN", 3, 2)]
    assert b[STATS].daily(day, day) == []


async def test_database_starts_and_unknown_hosts_from_every_node_reach_the_leader(
    make_cluster: Any, redis_server: RedisServer
) -> None:
    """#17's counters travel through Redis like the others: a start and an unknown-host hit
    counted on node B are written by leader A, and nothing in Redis names a patron."""
    cluster = await make_cluster(own_dirs=True)
    a, b = cluster.apps
    day = cluster.clock().date()
    b[USAGE].start(day, "acme", "acme-journals", "MAIN")
    b[USAGE].unknown_host(day, "needhost.example.net")
    a[USAGE].start(day, "acme", "acme-journals", "MAIN")
    await flush_usage(a)  # A leads
    await flush_usage(b)  # B pushes
    await flush_usage(a)  # A moves B's counts
    assert a[STATS].database_starts(day, day) == [("acme", "acme-journals", "MAIN", 2)]
    assert a[STATS].unknown_hosts(day, day) == [("needhost.example.net", 1)]
    assert b[STATS].database_starts(day, day) == []
