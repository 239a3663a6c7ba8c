"""#16: logins checked live against a member library's ILS over SIP2, through the real portal.

The ILS is tests/ilsauth/sip2_peer.py on loopback; the proxy, its SQLite data dir and the demo
vendor are real. Its answers carry canary name, address, e-mail and phone values.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from structlog.testing import capture_logs

from proxy.core.cards import make_check_digit
from proxy.core.login import MESSAGES, Refusal
from proxy.demo.settings import DEMO_LIBRARIES
from proxy.ilsauth.sip2_client import UNAVAILABLE_MESSAGE
from proxy.stores.blocks import Block
from proxy.stores.patron_import import import_lines
from proxy.web.admin.app import build_admin_app
from proxy.web.keys import BLOCKS, LIVE_AUTH, REGISTRY
from tests.ilsauth.sip2_peer import PeerMode, PeerPatron, Sip2Peer
from tests.ilsauth.slapd import CANARIES as LDAP_CANARIES
from tests.ilsauth.slapd import GROUP_DN, SUFFIX, Slapd, start_slapd
from tests.ilsauth.slapd import PEOPLE as LDAP_PEOPLE
from tests.web.conftest import PORTAL, Stack, StackFactory
from tests.web.helpers import post_login, session_of

CSRF = re.compile(r'name="(?:csrf|card)" value="[^"]+"')  # #21: the card typed is kept
GENERIC = MESSAGES[Refusal.UNRECOGNISED]
PREFIX = "27777"
CANARIES = (
    "Canary Q. Patronname",
    "77 Canary Lane, Springfield",
    "canary.patron@example.org",
    "555-0199-7731",
)
WWW = f"www-acmejournals-test.{PORTAL}"


def east_card(serial: int) -> str:
    """A valid card number of the SIP2 library (Luhn check digit)."""
    body = PREFIX + str(serial).zfill(8)
    return body + make_check_digit(body, "luhn")


GOOD, LOST, EXPIRED, FINED = (east_card(n) for n in (1, 2, 3, 4))
UNKNOWN = east_card(99)


def canary_patron(pin: str, **extra: Any) -> PeerPatron:
    """A patron whose personal fields are all canaries."""
    name, address, email, phone = CANARIES
    return PeerPatron(pin=pin, name=name, address=address, email=email, phone=phone, **extra)


@pytest.fixture
async def peer() -> AsyncIterator[Sip2Peer]:
    """A running SIP2 ILS with four patrons."""
    lost = " " * 4 + "Y" + " " * 9
    patrons = {
        GOOD: canary_patron("4321"),
        LOST: canary_patron("4321", status=lost),
        EXPIRED: canary_patron("4321", expiry="20200101    000000"),
        FINED: canary_patron("4321", fee="25.00"),
    }
    server = await Sip2Peer(patrons, PeerMode()).start()
    yield server
    await server.stop()


def east(port: int, **auth: Any) -> dict[str, Any]:
    """The SIP2 member library's settings (auth keys override the sip2 default chain)."""
    sip2 = {"host": "127.0.0.1", "port": port, "timeout": 0.5, "pool_size": 2, "max_fines": 10}
    return {
        "code": "EAST",
        "name": "East Branch Library",
        "prefix": PREFIX,
        "length": 14,
        "check_digit": "luhn",
        "remote_ptypes": ["sip2", "adult"],
        "auth": {"use": ["sip2"], "sip2": sip2, **auth},
    }


async def sip2_stack(make_stack: StackFactory, port: int, **auth: Any) -> Stack:
    """The demo stack plus the SIP2 library."""
    stack: Stack = await make_stack(libraries=[*DEMO_LIBRARIES, east(port, **auth)])
    return stack


async def test_a_good_card_signs_in_over_sip2(make_stack: StackFactory, peer: Sip2Peer) -> None:
    """A card the ILS confirms gets a session, and the ILS was asked once (63)."""
    stack = await sip2_stack(make_stack, peer.port)
    resp = await post_login(stack.client, GOOD, "4321")
    assert resp.status == 302, await resp.text()
    assert peer.commands() == ["63"]
    row = stack.app[LIVE_AUTH].health.rows()[0]
    assert (row.library, row.backend, row.checks, row.failures) == ("EAST", "sip2", 1, 0)
    assert row.last_success is not None and row.last_latency_ms is not None


async def test_unknown_card_and_wrong_pin_answer_the_same(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """Unknown card, wrong PIN, and a lost card with a wrong PIN: one identical answer."""
    stack = await sip2_stack(make_stack, peer.port)
    answers = []
    for card in (UNKNOWN, GOOD, LOST):
        resp = await post_login(stack.client, card, "0000")
        body = CSRF.sub("", await resp.text())
        answers.append((resp.status, body, sorted(resp.headers.keys())))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 403 and GENERIC in answers[0][1]


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (LOST, MESSAGES[Refusal.BLOCKED]),
        (FINED, MESSAGES[Refusal.BLOCKED]),
        (EXPIRED, "expired on January 1, 2020"),  # #21: written out for the page's language
    ],
)
async def test_refusal_reasons_only_after_the_right_pin(
    make_stack: StackFactory, peer: Sip2Peer, card: str, message: str
) -> None:
    """Lost, fined over max_fines, expired: said only once the ILS confirmed the PIN."""
    stack = await sip2_stack(make_stack, peer.port)
    resp = await post_login(stack.client, card, "4321")
    assert resp.status == 403 and message in await resp.text()


async def test_an_ils_outage_is_a_503_page_a_log_event_and_a_health_record(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """ILS down: "we can't check your card right now" (503), logged, counted per library."""
    stack = await sip2_stack(make_stack, peer.port)
    await peer.stop()
    with capture_logs() as logs:
        resp = await post_login(stack.client, GOOD, "4321")
    assert resp.status == 503 and str(escape(UNAVAILABLE_MESSAGE)) in await resp.text()
    events = [e for e in logs if e["event"] == "card_check_unavailable"]
    assert events and events[0]["library"] == "EAST" and events[0]["backend"] == "sip2"
    row = stack.app[LIVE_AUTH].health.rows()[0]
    assert row.failures == 1 and row.last_error == "Sip2Unreachable" and row.last_success is None


async def test_a_slow_ils_does_not_hang_the_login(make_stack: StackFactory, peer: Sip2Peer) -> None:
    """An ILS slower than the timeout gives the 503 page, not a hanging request."""
    stack = await sip2_stack(make_stack, peer.port)
    peer.mode.delay = 2.0
    resp = await post_login(stack.client, GOOD, "4321")
    assert resp.status == 503
    assert stack.app[LIVE_AUTH].health.rows()[0].last_error == "Sip2Timeout"


async def test_throttling_runs_before_any_network_call(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """Once the card is locked, further guesses (even the right PIN) never reach the ILS."""
    stack = await sip2_stack(make_stack, peer.port)
    limit = stack.settings.throttle.card_attempts
    for _ in range(limit):
        await post_login(stack.client, GOOD, "0000")
    asked = len(peer.received)
    assert asked == limit
    locked = await post_login(stack.client, GOOD, "4321")
    assert locked.status == 403 and GENERIC in await locked.text()
    assert len(peer.received) == asked


async def test_a_card_of_no_library_reaches_no_back_end(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """A card whose prefix matches no library is refused without asking the ILS."""
    stack = await sip2_stack(make_stack, peer.port)
    resp = await post_login(stack.client, "3" + GOOD[1:], "4321")
    assert resp.status == 403 and peer.received == []


async def test_the_local_block_list_applies_to_sip2_cards(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """A card on the local block list is refused even though the ILS says it is fine."""
    stack = await sip2_stack(make_stack, peer.port)
    blocks = stack.app[BLOCKS]
    now = stack.clock()
    blocks.add(Block(blocks.card_hash(GOOD), "EAST", "CASE-1", "test", "staff", now))
    resp = await post_login(stack.client, GOOD, "4321")
    assert resp.status == 403 and MESSAGES[Refusal.BLOCKED] in await resp.text()


async def seed_registry(stack: Stack, card: str, pin: str) -> None:
    """Put ``card`` into the registry for EAST (as the nightly import would)."""
    expires = (stack.clock().date() + timedelta(days=30)).isoformat()
    lines = ["barcode,pin,library,ptype,expires,status", f"{card},{pin},EAST,adult,{expires},ok"]
    summary = import_lines(
        stack.app[REGISTRY], lines, source="test", settings=stack.settings, replace=False
    )
    assert summary.rejected == 0, summary.problems


async def test_fallback_registry_only_when_configured_and_only_for_known_cards(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """With ``fallback: registry`` an outage lets registry cards in; others still get 503."""
    stack = await sip2_stack(make_stack, peer.port, fallback="registry")
    await seed_registry(stack, GOOD, "4321")
    await peer.stop()
    ok = await post_login(stack.client, GOOD, "4321")
    assert ok.status == 302
    other = await post_login(stack.client, LOST, "4321")
    assert other.status == 503


async def test_without_fallback_an_outage_refuses_registry_cards_too(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """Fallback is off by default: a registry card of a SIP2 library gets the 503 page."""
    stack = await sip2_stack(make_stack, peer.port)
    await seed_registry(stack, GOOD, "4321")
    await peer.stop()
    assert (await post_login(stack.client, GOOD, "4321")).status == 503


async def test_migration_chain_asks_the_registry_after_sip2(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """``use: [sip2, registry]``: a card the ILS does not know may be in the registry."""
    stack = await sip2_stack(make_stack, peer.port, use=["sip2", "registry"])
    await seed_registry(stack, UNKNOWN, "9999")
    resp = await post_login(stack.client, UNKNOWN, "9999")
    assert resp.status == 302
    assert peer.commands() == ["63"]


async def test_personal_fields_reach_no_vendor_log_or_file(
    make_stack: StackFactory, peer: Sip2Peer, tmp_path: Path
) -> None:
    """P1/P3/P4 canary: the ILS's name, address, e-mail and phone never leave the parser."""
    stack = await sip2_stack(make_stack, peer.port)
    with capture_logs() as logs:
        resp = await post_login(stack.client, GOOD, "4321")
        await post_login(stack.client, LOST, "4321")
        await stack.client.get("/", headers={"Host": WWW, **session_of(resp)})
    assert stack.vendor.records, "the vendor was reached"
    await stack.app.shutdown()
    files = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    for canary in (*CANARIES, GOOD, "4321"):
        assert not stack.vendor.find(canary)
        assert canary not in repr(logs)
        assert canary.encode() not in files


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A real slapd with the directory of tests/ilsauth/slapd.py."""
    server = start_slapd(tmp_path / "slapd")
    yield server
    server.stop()


def univ(url: str) -> dict[str, Any]:
    """A member library that checks cards against LDAP (template bind, group, ptype map)."""
    ldap = {
        "url": url,
        "allow_plaintext": True,
        "bind_dn_template": f"uid={{card}},ou=people,{SUFFIX}",
        "require_group": GROUP_DN,
        "ptype_from": "employeeType",
        "ptype_map": {"Student": "student", "Faculty": "faculty"},
        "timeout": 2,
    }
    return {
        "code": "UNIV",
        "name": "University Library",
        "prefix": "2999",
        "length": 14,
        "remote_ptypes": ["student", "faculty"],
        "auth": {"use": ["ldap"], "ldap": ldap},
    }


async def test_ldap_login_contract_and_canary(
    make_stack: StackFactory, slapd: Slapd, tmp_path: Path
) -> None:
    """LDAP: a group member signs in; a wrong password and an unknown user answer alike; a
    non-member hears "no remote access" only after a good password; nothing personal from
    the directory reaches a vendor, a log line or a file in data_dir."""
    stack: Stack = await make_stack(libraries=[*DEMO_LIBRARIES, univ(slapd.url)])
    (student, pw, _, _), _, (alumni, alumni_pw, _, _) = LDAP_PEOPLE
    with capture_logs() as logs:
        ok = await post_login(stack.client, student, pw)
        assert ok.status == 302, await ok.text()
        await stack.client.get("/", headers={"Host": WWW, **session_of(ok)})
        wrong = await post_login(stack.client, student, "nope")
        unknown = await post_login(stack.client, "29990000009999", pw)
        outsider = await post_login(stack.client, alumni, alumni_pw)
    bodies = [CSRF.sub("", await r.text()) for r in (wrong, unknown)]
    assert wrong.status == unknown.status == 403 and bodies[0] == bodies[1]
    assert outsider.status == 403 and MESSAGES[Refusal.NO_REMOTE] in await outsider.text()
    await stack.app.shutdown()
    files = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    for canary in (*LDAP_CANARIES, pw, student):
        assert not stack.vendor.find(canary)
        assert canary not in repr(logs)
        assert canary.encode() not in files


async def test_admin_console_shows_back_end_health(
    make_stack: StackFactory, peer: Sip2Peer, aiohttp_client: Any
) -> None:
    """GET /api/auth-backends lists last success, last failure and latency per library."""
    stack = await sip2_stack(make_stack, peer.port)
    assert (await post_login(stack.client, GOOD, "4321")).status == 302
    await peer.stop()
    assert (await post_login(stack.client, GOOD, "4321")).status == 503
    token = "t" * 43
    admin = await aiohttp_client(
        build_admin_app(stack.app, environ={"CLAMSHELL_ADMIN_TOKEN": token})
    )
    resp = await admin.get("/api/auth-backends", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    (row,) = (await resp.json())["backends"]
    assert (row["library"], row["backend"], row["checks"], row["failures"]) == (
        "EAST",
        "sip2",
        2,
        1,
    )
    assert row["last_success"] and row["last_failure"] and row["last_error"] == "Sip2Unreachable"
    assert row["mean_latency_ms"] is not None
    assert GOOD not in await resp.text()
    anonymous = await admin.get("/api/auth-backends")
    assert anonymous.status in (401, 403)


@pytest.mark.parametrize(
    ("card", "pin"),
    [
        (GOOD[:-1] + str((int(GOOD[-1]) + 1) % 10), "4321"),  # wrong check digit
        (GOOD + "0", "4321"),  # too long
        (GOOD, "43|21"),  # a PIN SIP2 cannot carry
        (GOOD, ""),
    ],
)
async def test_cards_the_rules_refuse_never_reach_the_ils(
    make_stack: StackFactory, peer: Sip2Peer, card: str, pin: str
) -> None:
    """Wrong check digit or length, or an unsendable PIN: the generic refusal, no SIP2 call
    for the card (a PIN with '|' is refused before it is sent)."""
    stack = await sip2_stack(make_stack, peer.port)
    resp = await post_login(stack.client, card, pin)
    assert resp.status == 403 and GENERIC in await resp.text()
    assert all(b"|AA" + card.encode() not in m for m in peer.received)
    assert all(b"43|21" not in m for m in peer.received)


async def test_a_parallel_burst_of_guesses_reaches_the_ils_only_as_far_as_the_throttle_allows(
    make_stack: StackFactory, peer: Sip2Peer
) -> None:
    """20 wrong PINs at once for one card: the ILS (which may lock the patron after N bad
    PINs) sees at most card_attempts of them; the rest are throttled before any call."""
    stack = await sip2_stack(make_stack, peer.port)
    limit = stack.settings.throttle.card_attempts
    answers = await asyncio.gather(*(post_login(stack.client, GOOD, f"{n:04d}") for n in range(20)))
    assert {a.status for a in answers} == {403}
    assert 0 < peer.commands().count("63") <= limit


@pytest.mark.parametrize(
    "mode",
    [
        PeerMode(shuffle_seed=7),
        PeerMode(minimal=True),
        PeerMode(checksums="never"),
        PeerMode(checksums="always"),
        PeerMode(close_after_answer=True),
        PeerMode(resend_first=True),
        PeerMode(login=("clam", "sip-pw")),
        PeerMode(line_ending=b"\r\n"),
    ],
    ids=["shuffled", "minimal", "no-checksums", "checksums", "close-each", "96-first", "login",
         "crlf"],
)  # fmt: skip
async def test_real_ils_behaviours_through_the_login(
    make_stack: StackFactory, tmp_path: Path, mode: PeerMode
) -> None:
    """The login works against ILSs that differ as real ones do, twice in a row (reuse)."""
    peer = await Sip2Peer({GOOD: canary_patron("4321")}, mode).start()
    secret = tmp_path / "sip2.pw"
    secret.write_text("sip-pw\n")
    secret.chmod(0o600)
    login = {"login_user": "clam", "login_password_file": str(secret)} if mode.login else {}
    library = east(peer.port)
    library["auth"]["sip2"].update(login)
    stack: Stack = await make_stack(libraries=[*DEMO_LIBRARIES, library])
    try:
        for _ in range(2):
            resp = await post_login(stack.client, GOOD, "4321")
            assert resp.status == 302, await resp.text()
        assert (await post_login(stack.client, GOOD, "0000")).status == 403
    finally:
        await peer.stop()
