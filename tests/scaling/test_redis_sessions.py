"""Issue #15: sessions in Redis, shared by nodes (two full apps, each with its own client)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import redis
from structlog.testing import capture_logs

from proxy.core.keyedhash import keyed_hash
from proxy.server import reload_now
from proxy.stores.blocks import Block
from proxy.stores.sessions import token_key
from proxy.web.admin.sessions_view import LibrarySessions
from proxy.web.keys import BLOCKS, CLOCK, JARS, RULEBOOK, SECRETS, SESSIONS, SETTINGS
from tests.scaling.conftest import Cluster
from tests.scaling.redisserver import RedisServer
from tests.web.conftest import PUBLIC, REPO
from tests.web.helpers import HOST, post_login, session_of
from tests.web.test_anonymous import API, PREFLIGHT

WWW = "www-acmejournals-test.proxy.localhost:8080"
AUTH = "auth-acmejournals-test.proxy.localhost:8080"
CANARY_ADDRESS = "203.0.113.219"  # planted as the patron's address (RFC 5737 TEST-NET-3)
BUS_WAIT_S = 15.0  # generous: the machine is shared and loaded


async def signed_in(cluster: Cluster, node: int = 0) -> dict[str, str]:
    """Log the adult demo card in on ``node``; the Cookie header a browser would then send."""
    card = cluster.card("adult card")
    resp = await post_login(cluster.nodes[node], card.barcode, card.secret)
    assert resp.status == 302, await resp.text()
    return session_of(resp)


def cluster_redis(cluster: Cluster) -> redis.Redis:
    """A synchronous client on the cluster's Redis."""
    url = cluster.apps[0][SETTINGS].state.url
    assert url is not None
    return redis.Redis.from_url(url)


async def eventually(check: Any) -> None:
    """Wait (bounded) until ``check()`` is true: bus messages arrive asynchronously."""
    for _ in range(int(BUS_WAIT_S / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_login_on_a_browses_on_b(make_cluster: Any) -> None:
    """A session created through node A is accepted by node B, which relays the page."""
    cluster = await make_cluster()
    auth = await signed_in(cluster, 0)
    resp = await cluster.nodes[1].get("/article/1", headers={"Host": WWW, **auth})
    assert resp.status == 200
    assert "Acme Journal Archive" in await resp.text()
    assert len(cluster.vendor.records) == 1


async def test_logout_on_a_is_refused_by_b_and_b_forgets_its_jar(make_cluster: Any) -> None:
    """After logout through A, B sends the browser to the login page, and B's listeners ran."""
    cluster = await make_cluster()
    auth = await signed_in(cluster, 0)
    key = token_key(auth["Cookie"].split("=", 1)[1])
    assert (await cluster.nodes[1].get("/", headers={"Host": WWW, **auth})).status == 200
    cluster.apps[1][JARS].jar(key, "acme")  # B holds something for the session
    assert len(cluster.apps[1][JARS]) == 1
    out = await cluster.nodes[0].post("/logout", headers={**HOST, **auth, "Origin": PUBLIC})
    assert out.status == 200
    resp = await cluster.nodes[1].get("/", headers={"Host": WWW, **auth}, allow_redirects=False)
    assert resp.status == 302
    assert "/login" in resp.headers["Location"]
    await eventually(lambda: len(cluster.apps[1][JARS]) == 0)


async def test_vendor_cookie_set_through_a_is_sent_by_b(make_cluster: Any) -> None:
    """The vendor's sign-in cookie, stored from a response relayed by A, goes out from B; a
    second patron on B gets none of it; after logout the jar is gone from Redis."""
    cluster = await make_cluster()
    auth = await signed_in(cluster, 0)
    a, b = cluster.nodes
    first = await a.get("/account", headers={"Host": WWW, **auth}, allow_redirects=False)
    path = first.headers["Location"].split("proxy.localhost:8080", 1)[1]
    await a.get(path, headers={"Host": AUTH, **auth}, allow_redirects=False)
    account = await b.get("/account", headers={"Host": WWW, **auth})
    assert "Signed in to Acme" in await account.text()
    other = session_of(
        await post_login(b, cluster.card("student").barcode, cluster.card("student").secret)
    )
    stranger = await b.get("/account", headers={"Host": WWW, **other}, allow_redirects=False)
    assert stranger.status == 302
    await a.post("/logout", headers={**HOST, **auth, "Origin": PUBLIC})
    key = token_key(auth["Cookie"].split("=", 1)[1])
    assert not cluster_redis(cluster).exists(f"clamshell:j:{key}")


async def test_redis_killed_gives_503_then_recovers_with_sessions(
    make_cluster: Any, redis_server: RedisServer
) -> None:
    """Redis SIGKILLed: relaying and logging in get the 503 page, /healthz says so, nothing is
    relayed; Redis back: the session persisted in its AOF works again."""
    cluster = await make_cluster()
    auth = await signed_in(cluster, 0)
    await asyncio.sleep(1.2)  # appendfsync everysec
    before = len(cluster.vendor.records)
    redis_server.kill()
    with capture_logs() as logs:
        resp = await cluster.nodes[1].get("/article/1", headers={"Host": WWW, **auth})
        assert resp.status == 503
        assert "try again in a minute" in await resp.text()
        card = cluster.card("adult card")
        login = await post_login(cluster.nodes[0], card.barcode, card.secret)
        assert login.status == 503
        health = await cluster.nodes[0].get("/healthz", headers=HOST)
        assert health.status == 503
    assert len(cluster.vendor.records) == before
    assert any(e["event"] == "state_unavailable" for e in logs)
    assert card.barcode not in repr(logs) and card.secret not in repr(logs)
    redis_server.start()
    resp = await cluster.nodes[1].get("/article/1", headers={"Host": WWW, **auth})
    assert resp.status == 200
    assert (await cluster.nodes[0].get("/healthz", headers=HOST)).status == 200


async def test_reload_on_a_reloads_b(make_cluster: Any, tmp_path: Path) -> None:
    """A reload asked on node A (SIGHUP's path) is broadcast: B loads the new rule too."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "vendor_rules", rules)
    cluster = await make_cluster(rules_dir=str(rules))
    a, b = cluster.apps
    count = len(b[RULEBOOK].current.rules)
    await asyncio.sleep(0.2)  # both buses subscribed
    source = next(p for p in rules.glob("*.yaml") if "acme" in p.name)
    text = source.read_text().replace("id: acme", "id: acmecopy", 1)
    (rules / "acmecopy.yaml").write_text(text.replace("acmejournals.test", "acmecopy.test"))
    await reload_now(a, a[SETTINGS], None)
    assert len(a[RULEBOOK].current.rules) == count + 1
    await eventually(lambda: len(b[RULEBOOK].current.rules) == count + 1)


async def test_redis_holds_no_canary(make_cluster: Any, redis_server: RedisServer) -> None:
    """After logins, browsing from a planted client address (abuse counters, card networks),
    an anonymous preflight (address quota), a block and a logout, no key or value in Redis
    holds a card number, PIN, name, client address or network, vendor host or URL path
    (SCAN + a read of every key)."""
    trusted = {"trusted_proxies": ["127.0.0.0/8"], "limits": {"card_networks": 5}}
    cluster = await make_cluster(**trusted)
    auth = await signed_in(cluster, 0)
    planted = {"X-Forwarded-For": CANARY_ADDRESS}
    page = {"Host": WWW, **auth, **planted}
    await cluster.nodes[1].get("/article/1?q=canary-search", headers=page)
    await cluster.nodes[0].options("/v1/search", headers={"Host": API, **PREFLIGHT, **planted})
    other = await signed_in(cluster, 1)
    await cluster.nodes[0].post("/logout", headers={**HOST, **other, "Origin": PUBLIC})
    card = cluster.card("adult card")
    blocks = cluster.apps[1][BLOCKS]
    entry = Block(blocks.card_hash(card.barcode), "MAIN", "C-9", "r", "s", cluster.clock.now)
    await asyncio.to_thread(blocks.add, entry)
    dumped = repr(redis_server.dump()).lower()
    assert dumped.count("clamshell:s:") >= 1  # the scan sees the live session
    for kind in ("ab", "an", "aq", "blk"):  # and the abuse, quota and block keys
        assert f"clamshell:{kind}:" in dumped or f"clamshell:{kind}'" in dumped, kind
    pepper = cluster.apps[0][SECRETS].pepper  # the planted address is what was counted
    assert keyed_hash(pepper, "anonymous-address", CANARY_ADDRESS)[:32] in dumped
    canaries = [card.barcode, card.secret, "127.0.0.1", "acmejournals", "article", "canary"]
    canaries += [CANARY_ADDRESS, CANARY_ADDRESS.rsplit(".", 1)[0] + "."]
    canaries += [auth["Cookie"].split("=", 1)[1].lower()]
    for canary in canaries:
        assert canary.lower() not in dumped, canary


async def test_staff_count_and_end_a_librarys_sessions_on_every_node(
    make_cluster: Any,
) -> None:
    """#20 in redis mode (was 501): node B counts the sessions node A made, per library, and
    ending one library's sessions on B logs those patrons out on A; the other library's
    session stays."""
    cluster = await make_cluster()
    main = await signed_in(cluster, 0)
    west_card = cluster.card("logs in with last name; BigDB not licensed")
    west = session_of(await post_login(cluster.nodes[0], west_card.barcode, west_card.secret))
    store = cluster.apps[1][SESSIONS]
    assert isinstance(store, LibrarySessions)  # the console's per-library operations
    now = cluster.apps[1][CLOCK]()
    assert await store.count_by_library(now) == {"MAIN": 1, "WEST": 1}
    assert await store.delete_by_library("MAIN") == 1
    ended = await cluster.nodes[0].get("/", headers={"Host": WWW, **main}, allow_redirects=False)
    assert ended.status == 302 and "/login" in ended.headers["Location"]
    kept = await cluster.nodes[0].get("/", headers={"Host": WWW, **west}, allow_redirects=False)
    assert kept.status == 200
    assert await cluster.apps[0][SESSIONS].count_by_library(now) == {"WEST": 1}
    west_key = token_key(west["Cookie"].split("=", 1)[1])
    assert await store.delete_keys([west_key, "no-such-key"]) == 1
    assert await store.count_by_library(now) == {}
