"""Answering a vendor's abuse report: pseudonym → card blocked, sessions ended, nobody named."""

from __future__ import annotations

from typing import Any

from proxy.cli.block import offline
from proxy.web.admin.app import build_admin_app
from tests.web.conftest import PORTAL, Stack, StackFactory
from tests.web.helpers import post_login, session_of

BIGDB = f"search-bigdb-test.{PORTAL}"
WWW = f"www-acmejournals-test.{PORTAL}"


async def reported_pseudonym(stack: Stack, note: str = "adult card") -> tuple[dict[str, str], str]:
    """A patron visits BigDB (daily pseudonyms); return their cookie and what BigDB saw."""
    card = stack.card(note)
    auth = session_of(await post_login(stack.client, card.barcode, card.secret))
    await stack.client.get("/", headers={"Host": BIGDB, **auth})
    seen = dict((n.lower(), v) for n, v in stack.vendor.records[-1].headers)["x-bigdb-user"]
    return auth, seen


async def test_block_via_admin_api_ends_sessions(stack: Stack, aiohttp_client: Any) -> None:
    """The admin API blocks the card behind a pseudonym, ends its session, names no one."""
    auth, seen = await reported_pseudonym(stack)
    admin = await aiohttp_client(
        build_admin_app(stack.app, environ={"CLAMSHELL_ADMIN_TOKEN": "t" * 43})
    )
    resp = await admin.post(
        "/api/patrons/block",
        headers={"Authorization": "Bearer " + "t" * 43},
        json={"vendor": "bigdb", "pseudonym": seen, "day": stack.clock.now.date().isoformat()},
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["library"] == "MAIN" and body["case"].startswith("CASE-")
    assert body["sessions_ended"] == 1
    card = stack.card("adult card")
    assert card.barcode not in repr(body)
    again = await stack.client.get("/", headers={"Host": WWW, **auth}, allow_redirects=False)
    assert again.status == 302
    relogin = await post_login(stack.client, card.barcode, card.secret)
    assert relogin.status == 403 and "contact your library" in await relogin.text()


async def test_session_pseudonyms_cannot_be_traced(stack: Stack, aiohttp_client: Any) -> None:
    """Acme's per-session pseudonyms cannot be traced, by design, and the API says so."""
    card = stack.card("adult card")
    auth = session_of(await post_login(stack.client, card.barcode, card.secret))
    await stack.client.get("/", headers={"Host": WWW, **auth})
    seen = dict((n.lower(), v) for n, v in stack.vendor.records[-1].headers)["x-patron-pseudonym"]
    admin = await aiohttp_client(
        build_admin_app(stack.app, environ={"CLAMSHELL_ADMIN_TOKEN": "t" * 43})
    )
    resp = await admin.post(
        "/api/patrons/block",
        headers={"Authorization": "Bearer " + "t" * 43},
        json={"vendor": "acme", "pseudonym": seen, "day": stack.clock.now.date().isoformat()},
    )
    assert resp.status == 404
    assert "cannot be traced" in (await resp.json())["error"]


async def test_offline_block_on_the_files(make_stack: StackFactory) -> None:
    """With the server stopped, the same flow works on the files; a wrong date finds nobody."""
    stack: Stack = await make_stack()
    _, seen = await reported_pseudonym(stack, "student card")
    today = stack.clock.now.date()
    await stack.client.close()  # the server is stopped: its stores are closed
    answer = await offline(stack.settings, "bigdb", seen, today)
    assert answer["library"] == "MAIN" and answer["sessions_ended"] == 1
    wrong_day = await offline(stack.settings, "bigdb", seen, today.replace(year=today.year - 1))
    assert "no longer exists" in wrong_day["error"] or "no card" in wrong_day["error"]
