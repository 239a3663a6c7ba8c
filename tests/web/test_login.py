"""Login, logout and menu on loopback with the real registry, sessions and throttle."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web.conftest import PORTAL, PUBLIC, Stack, StackFactory
from tests.web.helpers import HOST, login_form, post_login, qurl, session_of

ACME = "https://www.acmejournals.test/article/3?ref=x&y=z"
MAPPED = f"http://www-acmejournals-test.{PORTAL}/article/3?ref=x&y=z"
GENERIC = "Card number or PIN not recognised"


async def test_form_is_accessible_and_names_the_database(stack: Stack) -> None:
    """The form has labelled card/pin inputs, lang, the consortium and the database's title."""
    resp = await stack.client.get(f"/login?url={ACME}", headers=HOST)
    html = await resp.text()
    assert resp.status == 200
    for needle in (
        'lang="en"',
        'name="card"',
        'name="pin"',
        '<label for="card">',
        '<label for="pin">',
        "Test Consortium",
        "Acme Journal Archive",
        'name="csrf"',
    ):
        assert needle in html
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("start", [f"/login?url={ACME}", qurl(ACME)])
async def test_success_redirects_to_mapped_target(stack: Stack, start: str) -> None:
    """Both EZproxy start forms lead, after a good login, to the target's mapped URL."""
    card = stack.card("adult card")
    token_resp = await stack.client.get(start, headers=HOST)
    token = re.search(r'name="csrf" value="([^"]+)"', await token_resp.text())
    assert token is not None
    resp = await stack.client.post(
        "/login",
        data={"csrf": token[1], "url": ACME, "card": card.barcode, "pin": card.secret},
        headers={**HOST, "Origin": PUBLIC},
        allow_redirects=False,
    )
    assert resp.status == 302
    assert resp.headers["Location"] == MAPPED
    cookie = resp.cookies["clamshell_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert cookie["domain"] == "proxy.localhost"
    assert len(cookie.value) >= 32


async def test_success_without_target_goes_to_menu(stack: Stack) -> None:
    """Without a target the patron lands on the menu listing licensed databases."""
    card = stack.card("logs in with last name")
    resp = await post_login(stack.client, card.barcode, card.secret)
    assert resp.headers["Location"] == f"{PUBLIC}/menu"
    menu = await stack.client.get("/menu", headers={**HOST, **session_of(resp)})
    html = await menu.text()
    assert "Acme Journal Archive" in html and "BigDB" not in html
    assert 'href="/login/acme"' in html  # #17: through /login/<database> (counted per database)
    onward = await stack.client.get(
        "/login/acme", headers={**HOST, **session_of(resp)}, allow_redirects=False
    )
    assert onward.headers["Location"] == f"http://www-acmejournals-test.{PORTAL}/"


async def test_unknown_card_and_wrong_pin_are_indistinguishable(stack: Stack) -> None:
    """Unknown card and wrong PIN give identical status, body and header names."""
    card = stack.card("adult card")
    wrong = await post_login(stack.client, card.barcode, "0000")
    unknown = await post_login(stack.client, "21234999999999", "0000")
    assert wrong.status == unknown.status == 403
    body_wrong, body_unknown = await wrong.text(), await unknown.text()
    assert GENERIC in body_wrong
    mask = re.compile(r'name="(?:csrf|card)" value="[^"]+"')  # the card typed is kept (#21)
    assert mask.sub("", body_wrong) == mask.sub("", body_unknown)
    assert sorted(wrong.headers.keys()) == sorted(unknown.headers.keys())


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("expired card", "expired on"),
        ("blocked card", "contact your library"),
        ("patron type without remote access", "does not include remote access"),
    ],
)
async def test_refusals_after_a_correct_pin(stack: Stack, note: str, message: str) -> None:
    """Expired, blocked and no-remote cards are told why, after a correct PIN."""
    card = stack.card(note)
    resp = await post_login(stack.client, card.barcode, card.secret)
    assert resp.status == 403
    assert message in await resp.text()
    assert "clamshell_session" not in resp.cookies


async def test_not_licensed_names_the_database(stack: Stack) -> None:
    """A WEST patron asking for BigDB is told their library does not license it."""
    card = stack.card("logs in with last name")
    resp = await post_login(
        stack.client, card.barcode, card.secret, target="https://search.bigdb.test/"
    )
    assert resp.status == 403
    assert "does not license BigDB Search" in await resp.text()


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.com/",
        "javascript:alert(1)",
        "//evil.com/x",
        "https://jstor.org.evil.com/",
        "https://www.acmejournals.test.evil.com/",
        "https://evil.com@www.acmejournals.test/",
        "https://127.0.0.1/",
        "https://[::1]/",
    ],
)
async def test_open_redirect_attempts_get_a_page_not_a_redirect(stack: Stack, target: str) -> None:
    """A target no rule covers gets the not-our-database page, never a redirect."""
    resp = await stack.client.get(f"/login?url={target}", headers=HOST, allow_redirects=False)
    assert resp.status == 404
    assert "not one of our licensed databases" in await resp.text()
    assert "Location" not in resp.headers


@pytest.mark.parametrize(
    ("token", "origin"),
    [
        ("missing", PUBLIC),
        ("forged.token", PUBLIC),
        ("valid", "https://evil.com"),
        ("valid", f"http://www-acmejournals-test.{PORTAL}"),
    ],
)
async def test_csrf_failures_refuse(stack: Stack, token: str, origin: str) -> None:
    """Missing or forged CSRF tokens and cross-site origins are refused without a session."""
    card = stack.card("adult card")
    valid, _ = await login_form(stack.client)
    data = {"card": card.barcode, "pin": card.secret, "url": ""}
    if token != "missing":
        data["csrf"] = valid if token == "valid" else token
    resp = await stack.client.post(
        "/login", data=data, headers={**HOST, "Origin": origin}, allow_redirects=False
    )
    assert resp.status == 403
    assert "clamshell_session" not in resp.cookies


async def test_signed_in_patron_is_redirected_at_once(stack: Stack) -> None:
    """A patron with a session who follows a start link goes straight on."""
    card = stack.card("adult card")
    login = await post_login(stack.client, card.barcode, card.secret)
    resp = await stack.client.get(
        qurl(ACME), headers={**HOST, **session_of(login)}, allow_redirects=False
    )
    assert resp.status == 302 and resp.headers["Location"] == MAPPED


async def test_logout_ends_the_session(stack: Stack) -> None:
    """After logout the menu asks for a login again and the old token is dead."""
    card = stack.card("adult card")
    resp = await post_login(stack.client, card.barcode, card.secret)
    token = resp.cookies["clamshell_session"].value
    out = await stack.client.post("/logout", headers={**HOST, **session_of(resp), "Origin": PUBLIC})
    assert "signed out" in await out.text()
    again = await stack.client.get(
        "/menu", headers={**HOST, "Cookie": f"clamshell_session={token}"}, allow_redirects=False
    )
    assert again.status == 302 and again.headers["Location"] == "/login"


async def test_session_expires_when_idle(stack: Stack) -> None:
    """An idle session expires after idle_minutes on the injected clock."""
    card = stack.card("adult card")
    auth = {**HOST, **session_of(await post_login(stack.client, card.barcode, card.secret))}
    assert (await stack.client.get("/menu", headers=auth, allow_redirects=False)).status == 200
    stack.clock.advance(minutes=stack.settings.sessions.idle_minutes + 1)
    assert (await stack.client.get("/menu", headers=auth, allow_redirects=False)).status == 302


async def test_card_lockout_after_repeated_failures(stack: Stack) -> None:
    """After card_attempts wrong PINs even the right PIN is refused, until the lockout ends."""
    card = stack.card("adult card")
    for _ in range(stack.settings.throttle.card_attempts):
        await post_login(stack.client, card.barcode, "0000")
    locked = await post_login(stack.client, card.barcode, card.secret)
    assert locked.status == 403 and GENERIC in await locked.text()
    stack.clock.advance(minutes=stack.settings.throttle.lockout_minutes + 1)
    ok = await post_login(stack.client, card.barcode, card.secret)
    assert ok.status == 302


async def test_one_pin_against_many_cards_trips_the_ip_limit(make_stack: StackFactory) -> None:
    """Spraying one PIN over many card numbers from one address locks that address."""
    stack: Stack = await make_stack(throttle={"ip_attempts": 5, "card_attempts": 5})
    for n in range(5):
        await post_login(stack.client, f"2123400000{n:03d}9", "1234")
    card = stack.card("adult card")
    blocked = await post_login(stack.client, card.barcode, card.secret)
    assert blocked.status == 403 and GENERIC in await blocked.text()


async def test_auto_login_from_on_site_network(make_stack: StackFactory) -> None:
    """A request from a library's on-site network gets an anonymous session without a card."""
    from proxy.demo.settings import DEMO_LIBRARIES

    libraries = [dict(DEMO_LIBRARIES[0], auto_login_networks=["127.0.0.0/8"]), DEMO_LIBRARIES[1]]
    stack: Stack = await make_stack(libraries=libraries)
    resp = await stack.client.get(qurl(ACME), headers=HOST, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == MAPPED
    assert "clamshell_session" in resp.cookies


async def test_auto_login_ignores_forged_forwarded_for(make_stack: StackFactory) -> None:
    """X-Forwarded-For from an untrusted peer cannot claim an on-site address."""
    from proxy.demo.settings import DEMO_LIBRARIES

    libraries = [
        dict(DEMO_LIBRARIES[0], auto_login_networks=["198.51.100.0/24"]),
        DEMO_LIBRARIES[1],
    ]
    stack: Stack = await make_stack(libraries=libraries)
    resp = await stack.client.get(
        qurl(ACME), headers={**HOST, "X-Forwarded-For": "198.51.100.7"}, allow_redirects=False
    )
    assert resp.status == 200  # the login form, no session


async def test_sessions_survive_a_restart(make_stack: StackFactory, tmp_path: Path) -> None:
    """A session created before a restart still works after it (SQLite store)."""
    first: Stack = await make_stack()
    card = first.card("adult card")
    resp = await post_login(first.client, card.barcode, card.secret)
    token = resp.cookies["clamshell_session"].value
    await first.client.close()
    second: Stack = await make_stack()
    menu = await second.client.get(
        "/menu", headers={**HOST, "Cookie": f"clamshell_session={token}"}, allow_redirects=False
    )
    assert menu.status == 200
