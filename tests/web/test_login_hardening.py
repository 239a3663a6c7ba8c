"""Pentest regressions on the portal: login, logout, health (R4, R6, R9, R11, R15, R16, R18,
R19, R21, R22).

Real app on loopback with the real registry, SQLite sessions and throttle; the client address
comes from X-Forwarded-For behind a trusted loopback proxy, as in a real deployment.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterable
from types import FrameType
from typing import Any

import pytest
from structlog.testing import capture_logs

from proxy.core.cards import library_for_barcode, normalize_barcode
from proxy.web.keys import EPOCHS, HOSTMAP, REGISTRY, SESSIONS, THROTTLE
from tests.web.conftest import PORTAL, PUBLIC, Stack, StackFactory
from tests.web.helpers import HOST, login_form, post_login, session_of

GENERIC = "Card number or PIN not recognised"
BEHIND_PROXY = {"trusted_proxies": ["127.0.0.0/8", "::1/128"]}


async def fail_from(stack: Stack, addresses: Iterable[str], per_address: int) -> None:
    """Failed logins with a fresh valid-looking card each time, from the given addresses."""
    token, _ = await login_form(stack.client)
    attempts = [(a, n) for a in addresses for n in range(per_address)]
    for start in range(0, len(attempts), 50):  # 50 at a time: quick, yet bounded
        await asyncio.gather(
            *(
                stack.client.post(
                    "/login",
                    data={"csrf": token, "url": "", "card": f"2123{i:010d}", "pin": "0000"},
                    headers={**HOST, "Origin": PUBLIC, "X-Forwarded-For": address},
                    allow_redirects=False,
                )
                for i, (address, _) in enumerate(attempts[start : start + 50], start)
            )
        )


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The captured log events with this name."""
    return [e for e in logs if e["event"] == name]


# --- R4: the global lock ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sprayers", "patron"),
    [
        ([f"203.0.113.{n}" for n in range(1, 111)], "198.51.100.7"),
        ([f"2001:db8:1:2::{n:x}" for n in range(1, 111)], "2001:db8:9:9::1"),
    ],
    ids=["one IPv4 /24", "one IPv6 /64"],
)
async def test_r4_a_spray_from_one_network_does_not_shut_out_other_patrons(
    make_stack: StackFactory, sprayers: list[str], patron: str
) -> None:
    """R4: 2,200 failures from 110 addresses of one network lock that network (logged once),
    and a patron with a clean card from another network still signs in."""
    stack: Stack = await make_stack(**BEHIND_PROXY)
    with capture_logs() as logs:
        await fail_from(stack, sprayers, 20)
    card = stack.card("adult card")
    ok = await post_login(stack.client, card.barcode, card.secret, **{"X-Forwarded-For": patron})
    assert ok.status == 302
    locked = events(logs, "login_locked")
    assert [e["scope"] for e in locked].count("network") == 1
    neighbour = sprayers[0].rsplit(".", 1)[0] + ".250" if "." in sprayers[0] else sprayers[0] + "f"
    refused = await post_login(
        stack.client, card.barcode, card.secret, **{"X-Forwarded-For": neighbour}
    )
    assert refused.status == 403 and GENERIC in await refused.text()


async def test_r4_the_global_alarm_is_logged_counted_and_refuses_no_one(
    make_stack: StackFactory,
) -> None:
    """R4: failures from many networks raise the global alarm (logged, counted for the admin
    console), and a patron with a clean card, address and network still signs in."""
    stack: Stack = await make_stack(**BEHIND_PROXY, throttle={"global_attempts": 30})
    with capture_logs() as logs:
        await fail_from(stack, [f"192.0.{n}.1" for n in range(10)], 3)
    assert [e["scope"] for e in events(logs, "login_alarm_raised")] == ["global"]
    assert stack.app[THROTTLE].alarms_raised == 1
    assert stack.app[THROTTLE].alarm(stack.clock()) is not None
    card = stack.card("adult card")
    ok = await post_login(
        stack.client, card.barcode, card.secret, **{"X-Forwarded-For": "198.51.100.7"}
    )
    assert ok.status == 302


async def test_r4_logins_are_slowed_while_the_alarm_is_raised(make_stack: StackFactory) -> None:
    """R4: while the global alarm is raised each login waits throttle.alarm_delay_ms (a lower
    bound only: a sleep never ends early), and still succeeds."""
    stack: Stack = await make_stack(
        **BEHIND_PROXY, throttle={"global_attempts": 4, "alarm_delay_ms": 300}
    )
    await fail_from(stack, [f"192.0.{n}.1" for n in range(4)], 1)
    card = stack.card("adult card")
    started = asyncio.get_running_loop().time()
    ok = await post_login(stack.client, card.barcode, card.secret)
    assert ok.status == 302
    assert asyncio.get_running_loop().time() - started >= 0.3


@pytest.mark.parametrize("scope", ["card", "address", "network"])
async def test_r4_each_lock_scope_has_its_own_event(make_stack: StackFactory, scope: str) -> None:
    """R4: a card, address or network lock is logged as login_locked with its scope only
    (no address, no card), and the patron sees only the generic message."""
    limits = {"card_attempts": 3, "ip_attempts": 3, "network_attempts": 3}
    limits[f"{'ip' if scope == 'address' else scope}_attempts"] = 2
    stack: Stack = await make_stack(**BEHIND_PROXY, throttle=limits)
    card = stack.card("adult card")
    with capture_logs() as logs:
        for n in range(2):
            address = f"203.0.113.{n + 1}" if scope == "network" else "203.0.113.1"
            barcode = card.barcode if scope == "card" else f"2123{n:010d}"
            resp = await post_login(stack.client, barcode, "0000", **{"X-Forwarded-For": address})
            assert GENERIC in await resp.text()
    locked = events(logs, "login_locked")
    assert [e["scope"] for e in locked] == [scope]
    assert set(locked[0]) <= {"event", "scope", "log_level", "component"}


async def test_r4_admin_api_counts_the_alarms(
    make_stack: StackFactory, aiohttp_client: Any
) -> None:
    """R4: the admin API's health reports how many global alarms were raised."""
    from proxy.web.admin.app import build_admin_app
    from proxy.web.admin.auth import AUTH

    stack: Stack = await make_stack(**BEHIND_PROXY, throttle={"global_attempts": 4})
    await fail_from(stack, [f"192.0.{n}.1" for n in range(4)], 1)
    admin = build_admin_app(stack.app, environ={})
    client = await aiohttp_client(admin)
    resp = await client.get("/api/health", headers={"Authorization": f"Bearer {admin[AUTH].token}"})
    assert (await resp.json())["login_alarms_raised"] == 1


# --- R9: slow and large login bodies ----------------------------------------------------


async def raw_post(stack: Stack, head: str, body: bytes) -> bytes:
    """Send a POST /login with these extra header lines and body bytes; the status line."""
    server = stack.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            f"POST /login HTTP/1.1\r\nHost: {PORTAL}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{head}\r\n".encode()
            + body
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()


async def test_r9_a_trickled_login_body_is_cut_off_with_408(stack: Stack) -> None:
    """R9: a body that has not fully arrived within login.body_seconds (5 s) gets 408."""
    status = await raw_post(stack, "Content-Length: 100\r\n", b"c")
    assert status.startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize(
    ("head", "body"),
    [
        ("Content-Length: 100000\r\n", b"card=1"),
        ("Transfer-Encoding: chunked\r\n", b"2800\r\n" + b"x" * 0x2800 + b"\r\n0\r\n\r\n"),
    ],
    ids=["declared", "chunked"],
)
async def test_r9_a_large_login_body_gets_413(
    make_stack: StackFactory, head: str, body: bytes
) -> None:
    """R9: a login body over login.max_body_bytes (declared or streamed) gets 413."""
    stack: Stack = await make_stack()
    assert (await raw_post(stack, head, body)).startswith(b"HTTP/1.1 413")


# --- R11: sessions per card ---------------------------------------------------------------


async def test_r11_a_card_keeps_at_most_max_per_card_sessions(stack: Stack) -> None:
    """R11: N+5 logins with one card leave at most N live sessions; the oldest is ended."""
    card, most = stack.card("adult card"), 10  # the default sessions.max_per_card
    logins = []
    for _ in range(most + 5):
        logins.append(await post_login(stack.client, card.barcode, card.secret))
        stack.clock.advance(seconds=10)  # within the per-card login rate
    assert all(resp.status == 302 for resp in logins)
    assert await stack.app[SESSIONS].count_active(stack.clock()) == most
    first = await stack.client.get(
        "/menu", headers={**HOST, **session_of(logins[0])}, allow_redirects=False
    )
    last = await stack.client.get(
        "/menu", headers={**HOST, **session_of(logins[-1])}, allow_redirects=False
    )
    assert first.status == 302 and last.status == 200


async def test_r11_good_logins_per_card_are_rate_limited(stack: Stack) -> None:
    """R11: past throttle.card_logins_per_minute good logins the card waits a minute."""
    card, rate = stack.card("adult card"), 10  # the default throttle.card_logins_per_minute
    statuses = [
        (await post_login(stack.client, card.barcode, card.secret)).status for _ in range(rate + 1)
    ]
    assert statuses == [302] * rate + [403]
    stack.clock.advance(minutes=1)
    assert (await post_login(stack.client, card.barcode, card.secret)).status == 302


# --- R18: the alias table -----------------------------------------------------------------


LONG_HOST = "a" * 60 + ".acmejournals.test"  # a 63+ character label: served under an alias


async def test_r18_an_unauthenticated_login_flood_registers_no_alias(stack: Stack) -> None:
    """R18: /login?url= without a session learns no alias, so a flood cannot evict the
    aliases patrons use; a patron's alias still resolves after the flood."""
    card = stack.card("adult card")
    login = await post_login(
        stack.client, card.barcode, card.secret, target=f"https://{LONG_HOST}/"
    )
    alias_host = login.headers["Location"].split("/")[2]
    assert alias_host.startswith("z---")
    hostmap = stack.app[HOSTMAP]
    before = len(hostmap._aliases)
    for n in range(200):
        resp = await stack.client.get(
            f"/login?url=https://{n:03d}{LONG_HOST}/", headers=HOST, allow_redirects=False
        )
        assert resp.status == 200
    assert len(hostmap._aliases) == before
    assert hostmap.origin_for(alias_host).host == LONG_HOST


# --- R19: the same work for an unknown card and a wrong PIN --------------------------------


def calls_made(fn: Any, *args: Any) -> Counter[str]:
    """Every Python and C function called while ``fn(*args)`` runs, counted by name."""
    seen: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            seen[f"{frame.f_code.co_filename}:{frame.f_code.co_name}"] += 1
        elif event == "c_call":
            seen[f"c:{getattr(arg, '__qualname__', arg)}"] += 1

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return seen


async def test_r19_unknown_card_and_wrong_pin_do_the_same_work(stack: Stack) -> None:
    """R19: looking up an unknown card makes exactly the calls a wrong PIN makes (keyed
    hashes, query, compare, record building, library lookup)."""
    from proxy.web.card_check import look_up_card

    card = stack.card("adult card")
    unknown = card.barcode[:-3] + ("000" if not card.barcode.endswith("000") else "111")
    args = (stack.app[REGISTRY], stack.settings)
    library = library_for_barcode(normalize_barcode(card.barcode), stack.settings.libraries)
    look_up_card(*args, card.barcode, "0000", library)  # warm caches once for both paths
    look_up_card(*args, unknown, "0000", library)
    wrong_pin = calls_made(look_up_card, *args, card.barcode, "0000", library)
    no_card = calls_made(look_up_card, *args, unknown, "0000", library)
    assert wrong_pin == no_card
    assert any("KeyedHasher" in k or "__call__" in k for k in wrong_pin)


# --- R21 and R6: logout -----------------------------------------------------------------


async def test_r21_get_logout_shows_a_button_and_changes_nothing(stack: Stack) -> None:
    """R21: GET /logout (a link or an <img>) shows a sign-out button; the session lives on."""
    card = stack.card("adult card")
    auth = {**HOST, **session_of(await post_login(stack.client, card.barcode, card.secret))}
    page = await stack.client.get("/logout", headers=auth)
    html = await page.text()
    assert page.status == 200 and '<form method="post" action="/logout">' in html
    assert "clamshell_session" not in page.cookies
    assert (await stack.client.get("/menu", headers=auth, allow_redirects=False)).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": f"http://www-acmejournals-test.{PORTAL}"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_r21_cross_site_logout_post_is_refused(stack: Stack, headers: dict[str, str]) -> None:
    """R21: a logout POST from another site (or a vendor's mapped host) is 403, session kept."""
    card = stack.card("adult card")
    auth = {**HOST, **session_of(await post_login(stack.client, card.barcode, card.secret))}
    resp = await stack.client.post("/logout", headers={**auth, **headers})
    assert resp.status == 403
    assert (await stack.client.get("/menu", headers=auth, allow_redirects=False)).status == 200


async def test_r21_other_methods_do_not_log_out(stack: Stack) -> None:
    """R21: only POST changes state; PUT/DELETE on /logout are refused."""
    card = stack.card("adult card")
    auth = {**HOST, **session_of(await post_login(stack.client, card.barcode, card.secret))}
    for method in ("PUT", "DELETE"):
        resp = await stack.client.request(method, "/logout", headers={**auth, "Origin": PUBLIC})
        assert resp.status in (404, 405)
    assert (await stack.client.get("/menu", headers=auth, allow_redirects=False)).status == 200


@pytest.mark.parametrize(
    ("public_url", "mode", "expected"),
    [
        ("https://proxy.lib.org", "auto", False),  # would clear all of lib.org
        ("https://libproxy.org", "auto", True),
        ("https://ezp.library.ac.uk", "auto", False),
        ("https://proxy.lib.org", "always", True),
        ("https://libproxy.org", "never", False),
    ],
)
def test_r6_clear_site_data_only_where_the_registrable_domain_is_the_proxys(
    stack: Stack, public_url: str, mode: str, expected: bool
) -> None:
    """R6: "cookies" clears a whole registrable domain, so auto mode sends it only when the
    proxy host is itself registrable."""
    from proxy.web.logout import clear_site_data

    settings = stack.settings.model_copy(
        update={
            "public_url": public_url,
            "login": stack.settings.login.model_copy(update={"clear_site_data": mode}),
        }
    )
    assert clear_site_data(settings) is expected


@pytest.mark.parametrize(("mode", "present"), [("auto", True), ("never", False)])
async def test_r6_logout_sends_clear_site_data_when_allowed(
    make_stack: StackFactory, mode: str, present: bool
) -> None:
    """R6: logout sends Clear-Site-Data: "cookies" for proxy.localhost (its own registrable
    domain) in auto mode, and never when configured off; the cookie is cleared either way."""
    stack: Stack = await (
        make_stack() if mode == "auto" else make_stack(login={"clear_site_data": mode})
    )
    card = stack.card("adult card")
    auth = {**HOST, **session_of(await post_login(stack.client, card.barcode, card.secret))}
    resp = await stack.client.post("/logout", headers={**auth, "Origin": PUBLIC})
    assert resp.status == 200
    assert (resp.headers.get("Clear-Site-Data") == '"cookies"') is present
    assert resp.cookies["clamshell_session"].value == ""


# --- R22: an unparseable starting URL ------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["https://www.acmejournals.test:65536/", "https://www.acmejournals.test:99999999/x"],
)
async def test_r22_an_invalid_port_is_not_one_of_our_databases(stack: Stack, target: str) -> None:
    """R22: a starting URL whose port does not parse is the friendly 404, not a 500."""
    resp = await stack.client.get(f"/login?url={target}", headers=HOST, allow_redirects=False)
    assert resp.status == 404
    assert "not one of our licensed databases" in await resp.text()


# --- R15: /healthz reflects the stores ------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "key"), [("patrons", REGISTRY), ("keys", EPOCHS), ("sessions", SESSIONS)]
)
async def test_r15_healthz_is_503_when_a_store_becomes_unreadable(
    stack: Stack, store: str, key: Any
) -> None:
    """R15: a store that can no longer be read after start makes /healthz 503, naming the
    store only (no path, no error text)."""
    assert (await stack.client.get("/healthz", headers=HOST)).status == 200
    stack.app[key]._conn.close()  # the file is gone from under the process
    resp = await stack.client.get("/healthz", headers=HOST)
    assert resp.status == 503
    assert await resp.json() == {"status": "unhealthy", "store": store}


# --- R16: logout when the session file cannot be written -----------------------------------


async def test_r16_logout_on_a_full_disk_clears_the_cookie_and_stays_logged_out(
    make_stack: StackFactory,
) -> None:
    """R16: with the session file unwritable, logout still answers the signed-out page and
    clears the cookie, the token is refused at once, and once the disk recovers the flusher
    writes the deletion, so the session does not come back after a restart."""
    stack: Stack = await make_stack()
    card = stack.card("adult card")
    auth = {**HOST, **session_of(await post_login(stack.client, card.barcode, card.secret))}
    sessions = stack.app[SESSIONS]
    sessions._conn.execute("PRAGMA query_only = ON")  # every write fails, as on a full disk
    out = await stack.client.post("/logout", headers={**auth, "Origin": PUBLIC})
    assert out.status == 200 and out.cookies["clamshell_session"].value == ""
    assert (await stack.client.get("/menu", headers=auth, allow_redirects=False)).status == 302
    sessions._conn.execute("PRAGMA query_only = OFF")
    await sessions.flush()
    await stack.client.close()
    again: Stack = await make_stack()
    assert (await again.client.get("/menu", headers=auth, allow_redirects=False)).status == 302
