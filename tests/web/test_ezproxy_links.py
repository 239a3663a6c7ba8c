"""EZproxy link compatibility: /login/<name>, the dotted proxy-by-hostname form, and a vendor
served from a rule that only an imported config.txt stanza defines."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from proxy.ezproxy.importer import run_import
from tests.web.conftest import PORTAL, Stack, StackFactory
from tests.web.helpers import HOST, post_login, session_of

WWW = f"www-acmejournals-test.{PORTAL}"


@pytest.mark.parametrize("name", ["acme", "acme-journal-archive", "Acme-Journal-Archive"])
async def test_login_by_name_shows_the_rules_database(stack: Stack, name: str) -> None:
    """/login/<id or title> starts at the rule's URL."""
    resp = await stack.client.get(f"/login/{name}", headers=HOST)
    assert resp.status == 200
    assert "Acme Journal Archive" in await resp.text()


async def test_login_by_unknown_name_is_404(stack: Stack) -> None:
    """/login/<name> for no rule gets the not-our-database page."""
    resp = await stack.client.get("/login/nope", headers=HOST)
    assert resp.status == 404


@pytest.mark.parametrize(
    ("host", "location"),
    [
        (f"www.acmejournals.test.{PORTAL}", f"http://{WWW}/article/1?x=1"),
        (f"search.bigdb.test.{PORTAL}", f"http://search-bigdb-test.{PORTAL}/article/1?x=1"),
    ],
)
async def test_dotted_ezproxy_hosts_redirect(stack: Stack, host: str, location: str) -> None:
    """www.acmejournals.test.<proxy> (EZproxy's dotted form) moves to our mapped form."""
    resp = await stack.client.get("/article/1?x=1", headers={"Host": host}, allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == location


async def test_dotted_form_of_an_unknown_host_is_404(stack: Stack) -> None:
    """The dotted form of a host no rule covers is refused."""
    resp = await stack.client.get("/", headers={"Host": f"www.evil.com.{PORTAL}"})
    assert resp.status == 404


STANZA = """# a library's config.txt
Group Everyone
Title Acme Journal Archive (imported)
URL https://www.acmejournals.test/
HJ www.acmejournals.test
HJ cdn.acmejournals.test
DJ acmejournals.test
"""


async def test_vendor_defined_only_by_an_imported_stanza(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """import-ezproxy → rules load → the proxy serves the demo vendor through that rule."""
    config = tmp_path / "config.txt"
    config.write_text(STANZA, encoding="utf-8")
    out = tmp_path / "imported"
    args = argparse.Namespace(
        ezproxy_config=str(config),
        out=str(out),
        dry_run=False,
        groups=None,
        group=["Everyone=all"],
        config="none.yaml",
    )
    assert run_import(args) == 0
    stack: Stack = await make_stack(rules_dir=str(out))
    card = stack.card("adult card")
    auth = session_of(await post_login(stack.client, card.barcode, card.secret))
    page = await stack.client.get("/article/2", headers={"Host": WWW, **auth})
    assert page.status == 200
    assert [r.host for r in stack.vendor.records] == ["www.acmejournals.test"]
