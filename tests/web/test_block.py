"""Answering a vendor's abuse report: pseudonym → card blocked, sessions ended, nobody named."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from proxy.abuse_report import BlockDetails
from proxy.cli.block import offline, run_blocks, run_unblock
from proxy.core.login import MESSAGES, Refusal
from proxy.demo.patrons import demo_cards
from proxy.stores.patron_import import import_lines
from proxy.stores.patrons import PatronRegistry
from proxy.web.admin.app import build_admin_app
from proxy.web.keys import BLOCKS, REGISTRY
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


# --- #18 item 1: the local block list, apart from the ILS status ------------------------

TOKEN = "t" * 43


def reimport(stack: Stack, *, replace: bool) -> None:
    """Import the same ILS export again (what the nightly ``patrons import`` does)."""
    lines = ["barcode,pin,last_name,library,ptype,expires,status"]
    for card in demo_cards(stack.settings, stack.clock.now.date()):
        pin, last = (card.secret, "") if card.library == "MAIN" else ("", card.secret)
        lines.append(
            f"{card.barcode},{pin},{last},{card.library},{card.ptype},"
            f"{card.expires.isoformat()},{card.status}"
        )
    summary = import_lines(
        stack.app[REGISTRY], lines, source="<export>", settings=stack.settings, replace=replace
    )
    assert summary.committed


async def block_via_api(stack: Stack, aiohttp_client: Any, **extra: str) -> dict[str, Any]:
    """Report the adult card's BigDB pseudonym through the admin API; its JSON answer."""
    _, seen = await reported_pseudonym(stack)
    environ = {"CLAMSHELL_ADMIN_TOKEN": TOKEN}
    admin = await aiohttp_client(build_admin_app(stack.app, environ=environ))
    body = {"vendor": "bigdb", "pseudonym": seen, "day": stack.clock.now.date().isoformat()}
    resp = await admin.post(
        "/api/patrons/block", headers={"Authorization": f"Bearer {TOKEN}"}, json=body | extra
    )
    answer: dict[str, Any] = await resp.json()
    assert resp.status == 200, answer
    return answer


async def login_status(stack: Stack, note: str = "adult card", secret: str = "") -> int:
    """The status of a login with a demo card (its own secret unless one is given)."""
    card = stack.card(note)
    return (await post_login(stack.client, card.barcode, secret or card.secret)).status


async def test_block_survives_the_next_ils_import(stack: Stack, aiohttp_client: Any) -> None:
    """#18 item 1: a block outlives `patrons import` of the same export, with and without
    --replace (the MERGE used to set the status back to ok)."""
    answer = await block_via_api(stack, aiohttp_client, case="ABUSE-7", reason="bulk download")
    assert answer["case"] == "ABUSE-7"
    for replace in (False, True):
        reimport(stack, replace=replace)
        assert await login_status(stack) == 403, f"replace={replace}"
    [entry] = stack.app[BLOCKS].list_all()
    assert (entry.case, entry.reason, entry.by, entry.library) == (
        "ABUSE-7",
        "bulk download",
        "admin API",
        "MAIN",
    )
    assert stack.app[BLOCKS].lift_case("ABUSE-7") == 1
    assert await login_status(stack) in (200, 302, 303)


async def test_blocked_card_with_wrong_pin_learns_nothing(
    stack: Stack, aiohttp_client: Any
) -> None:
    """#18 item 1: the block is told only after a correct PIN; a wrong one gets the usual 'not
    recognised' refusal, and a blocked card's message is the ILS-blocked one."""
    await block_via_api(stack, aiohttp_client)
    card = stack.card("adult card")
    wrong = await post_login(stack.client, card.barcode, "9999")
    assert "not recognised" in await wrong.text()
    right = await post_login(stack.client, card.barcode, card.secret)
    ils_blocked = stack.card("blocked card")
    status_blocked = await post_login(stack.client, ils_blocked.barcode, ils_blocked.secret)
    assert right.status == status_blocked.status == 403
    assert MESSAGES[Refusal.BLOCKED] in await right.text()
    assert MESSAGES[Refusal.BLOCKED] in await status_blocked.text()


async def test_block_expiry_is_honoured(stack: Stack, aiohttp_client: Any) -> None:
    """#18 item 1: a block with an expiry day ends after that day (injected clock)."""
    today = stack.clock.now.date()
    await block_via_api(stack, aiohttp_client, expires=today.isoformat())
    assert await login_status(stack) == 403
    stack.clock.advance(days=1)
    assert await login_status(stack) in (200, 302, 303)


async def test_cli_lists_and_unblocks_without_card_numbers(
    make_stack: StackFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """#18 item 1: `patrons block` (offline) writes the list; `patrons blocks` lists it with no
    card number; `patrons unblock --case` lifts it; the registry status is left alone."""
    stack: Stack = await make_stack()
    _, seen = await reported_pseudonym(stack, "student card")
    today = stack.clock.now.date()
    await stack.client.close()
    details = BlockDetails(now=stack.clock.now, by="jdoe", case="C-42", reason="scraping")
    assert (await offline(stack.settings, "bigdb", seen, today, details))["case"] == "C-42"
    card = stack.card("student card")
    with PatronRegistry.open(Path(stack.settings.data_dir)) as registry:
        record = registry.lookup(card.barcode)
    assert record is not None and record.status == "ok"
    capsys.readouterr()
    assert run_blocks(argparse.Namespace(), stack.settings) == 0
    listing = capsys.readouterr().out
    assert "C-42" in listing and "scraping" in listing and "jdoe" in listing
    assert "MAIN" in listing and card.barcode not in listing
    assert run_unblock(argparse.Namespace(case="C-42", hash=None), stack.settings) == 0
    assert run_unblock(argparse.Namespace(case="C-42", hash=None), stack.settings) == 1
    assert run_blocks(argparse.Namespace(), stack.settings) == 0
    assert "No card is blocked" in capsys.readouterr().out
