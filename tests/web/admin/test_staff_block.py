"""Library staff answer abuse reports for their own cards only (issue #20)."""

from __future__ import annotations

from typing import Any

from proxy.web.admin.app import build_admin_app
from proxy.web.admin.auth import AUDIT, STAFF
from proxy.web.keys import BLOCKS
from tests.web.conftest import Stack
from tests.web.test_block import login_status, reported_pseudonym


async def report(stack: Stack, aiohttp_client: Any, library: str) -> tuple[int, dict[str, Any]]:
    """Report the adult (MAIN) card's BigDB pseudonym with a key scoped to ``library``."""
    _, seen = await reported_pseudonym(stack)
    client = await aiohttp_client(build_admin_app(stack.app, environ={}))
    admin = client.server.app
    key = admin[STAFF].create_key(
        f"desk-{library.lower()}", "library-staff", (library,), stack.clock()
    )
    resp = await client.post(
        "/api/patrons/block",
        headers={"Authorization": f"Bearer {key}"},
        json={"vendor": "bigdb", "pseudonym": seen, "day": stack.clock.now.date().isoformat()},
    )
    body: dict[str, Any] = await resp.json()
    if resp.status == 200:
        entries = admin[AUDIT].recent()
        assert entries[0].action == "card_blocked" and entries[0].library == library
        assert stack.card("adult card").barcode not in repr(entries)
    return resp.status, body


async def test_another_librarys_card_is_answered_like_no_match(
    stack: Stack, aiohttp_client: Any
) -> None:
    """WEST staff reporting a MAIN card: 404 'no card matches', nothing blocked."""
    status, body = await report(stack, aiohttp_client, "WEST")
    assert status == 404 and "no card" in body["error"]
    assert stack.app[BLOCKS].list_all() == []
    assert await login_status(stack) in (302, 303)  # signed in: not refused


async def test_own_librarys_card_is_blocked(stack: Stack, aiohttp_client: Any) -> None:
    """MAIN staff block the MAIN card; the answer names only library and case."""
    status, body = await report(stack, aiohttp_client, "MAIN")
    assert status == 200 and body["library"] == "MAIN"
    assert await login_status(stack) == 403
