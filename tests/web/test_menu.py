"""#17: /menu never breaks — a database whose starting point another rule's host serves is
skipped and logged, the rest are listed; the filter works without JavaScript; the public
menu is opt-in."""

from __future__ import annotations

import shutil
from pathlib import Path

from structlog.testing import capture_logs

from proxy.web.keys import USAGE
from tests.web.conftest import PORTAL, REPO, StackFactory
from tests.web.helpers import post_login, session_of

HOST = {"Host": PORTAL}
PLATFORM = """id: journals
title: Journals Platform
hosts: [journals.example.org]
domains: [example.org]
databases:
  - id: good-db
    title: Good Database
    url: https://journals.example.org/good
    description: Peer-reviewed articles
  - id: broken-db
    title: Broken Database
    url: https://other.example.org/start
"""
OTHER = """id: other
title: Other Vendor
url: https://other.example.org/
hosts: [other.example.org]
libraries: [WEST]
"""


def rules_dir(tmp_path: Path) -> Path:
    """The shipped rules plus a platform whose second database starts on a host that another
    rule claims exactly (the index sends it there): a broken menu entry rules check misses."""
    out = tmp_path / "rules"
    shutil.copytree(REPO / "vendor_rules", out)
    (out / "journals.yaml").write_text(PLATFORM, encoding="utf-8")
    (out / "other.yaml").write_text(OTHER, encoding="utf-8")
    return out


async def test_a_broken_entry_is_skipped_and_logged_never_a_404(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """The menu answers 200 with the good databases; the broken one is logged by id."""
    stack = await make_stack(rules_dir=str(rules_dir(tmp_path)))
    card = stack.card("adult card")
    auth = session_of(await post_login(stack.client, card.barcode, card.secret))
    with capture_logs() as logs:
        resp = await stack.client.get("/menu", headers={**HOST, **auth})
    html = await resp.text()
    assert resp.status == 200
    assert "Good Database" in html and "Peer-reviewed articles" in html
    assert "Broken Database" not in html
    skipped = [e for e in logs if e["event"] == "menu_entry_skipped"]
    assert [e["database"] for e in skipped] == ["broken-db"]
    filtered = await (await stack.client.get("/menu?q=good", headers={**HOST, **auth})).text()
    assert "Good Database" in filtered and "Acme Journal Archive" not in filtered
    assert 'name="q" value="good"' in filtered


async def test_the_public_menu_is_opt_in(make_stack: StackFactory, tmp_path: Path) -> None:
    """Without a session /menu goes to login, unless menu.public is set."""
    closed = await make_stack()
    resp = await closed.client.get("/menu", headers=HOST, allow_redirects=False)
    assert resp.status == 302
    public = await make_stack(menu={"public": True})
    page = await (await public.client.get("/menu", headers=HOST)).text()
    assert "Acme Journal Archive" in page and "BigDB Search" in page
    assert "Sign out" not in page


async def test_starts_count_per_database_and_unknown_hosts_per_day(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """/login/<database> counts that database; a link to a host no rule covers is counted by
    host for the day, with nothing about the patron (EZproxy needhost)."""
    stack = await make_stack(rules_dir=str(rules_dir(tmp_path)))
    card = stack.card("adult card")
    auth = session_of(await post_login(stack.client, card.barcode, card.secret))
    usage = stack.app[USAGE]
    usage.drain()
    await stack.client.get("/login/good-db", headers={**HOST, **auth}, allow_redirects=False)
    await stack.client.get(
        "/login?url=https://journals.example.org/elsewhere",
        headers={**HOST, **auth},
        allow_redirects=False,
    )
    miss = await stack.client.get(
        "/login?url=https://unknown.example.net/a?card=123", headers={**HOST, **auth}
    )
    assert miss.status == 404
    await stack.client.get("/login?url=https://anon.example.net/", headers=HOST)  # no session
    drained = usage.drain()
    day = stack.clock.now.date()
    assert drained.starts == {
        (day, "journals", "good-db", "MAIN"): 1,
        (day, "journals", "journals", "MAIN"): 1,  # the link names no database: the platform
    }
    assert drained.unknown_hosts == {(day, "unknown.example.net"): 1}
