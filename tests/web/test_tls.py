"""Real TLS on both legs: the proxy serves HTTPS and talks to the demo vendor over HTTPS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.certs import create_dev_ca, create_leaf, test_ca
from proxy.config_loader import settings_from
from proxy.demo.patrons import demo_cards, seed
from proxy.demo.settings import DEMO_LIBRARIES
from proxy.demo.tls import DEMO_TLS_HOSTS, start_vendor_tls
from proxy.demo.vendor import RequestRecorder
from proxy.rulebook import Rulebook
from proxy.server import start_site, tls_context
from proxy.tlsconfig import client_context
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY

REPO = Path(__file__).resolve().parents[2]


class Resolver(aiohttp.abc.AbstractResolver):
    """Browser-side name resolution: every *.proxy.localhost name is 127.0.0.1 (as in browsers)."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, Any]]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": 2,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


async def start_proxy(
    tmp_path: Path, vendor: str, vendor_ca: Path, port: int
) -> tuple[web.AppRunner, Path, Any]:
    """The proxy over HTTPS with a dev CA, trusting the vendor's test CA."""
    certs = tmp_path / "certs"
    ca = create_dev_ca(certs, "proxy.localhost", force=False, now=_now())
    leaf = create_leaf(certs, ca, "proxy.localhost", force=False, now=_now())
    settings = settings_from(
        {
            "public_url": f"https://proxy.localhost:{port}",
            "data_dir": str(tmp_path / "data"),
            "rules_dir": str(REPO / "vendor_rules"),
            "libraries": DEMO_LIBRARIES,
            "tls": {"cert": str(leaf.chain_path), "key": str(leaf.key_path)},
            "upstream_ca": str(vendor_ca),
            "upstream_overrides": {h: vendor for h in DEMO_TLS_HOSTS},
            "listen": {"host": "127.0.0.1", "port": port},
        },
        where="test",
        base=tmp_path,
    )
    book = Rulebook.open(settings.rules_dir, frozenset({"MAIN", "WEST"}))
    app = await build_app(settings, book)
    seed(app[REGISTRY], settings, _now().date())
    runner = await start_site(app, "127.0.0.1", port, ssl_context=tls_context(settings))
    return runner, ca.cert_path, demo_cards(settings, _now().date())[0]


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.fixture
async def browser_session(tmp_path: Path, unused_tcp_port: int) -> AsyncIterator[Any]:
    """A vendor on HTTPS, the proxy on HTTPS, and a client trusting the proxy's dev CA."""
    vendor_ca, cert, key = test_ca(tmp_path / "vendor-ca", list(DEMO_TLS_HOSTS))
    recorder = RequestRecorder()
    vendor_runner, vendor_port = await start_vendor_tls(recorder, cert=cert, key=key)
    runner, proxy_ca, card = await start_proxy(
        tmp_path, f"https://127.0.0.1:{vendor_port}", vendor_ca, unused_tcp_port
    )
    connector = aiohttp.TCPConnector(ssl=client_context(proxy_ca), resolver=Resolver())
    async with aiohttp.ClientSession(connector=connector) as client:  # noqa: TID251 — a browser
        yield client, unused_tcp_port, card, recorder
    await runner.cleanup()
    await vendor_runner.cleanup()


async def test_https_both_legs(browser_session: Any) -> None:
    """Login over HTTPS sets a Secure cookie, and a page comes from the vendor over TLS."""
    client, port, card, recorder = browser_session
    base = f"https://proxy.localhost:{port}"
    form = await (await client.get(f"{base}/login?url=https://www.acmejournals.test/")).text()
    token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    resp = await client.post(
        f"{base}/login",
        data={
            "csrf": token,
            "card": card.barcode,
            "pin": card.secret,
            "url": "https://www.acmejournals.test/",
        },
        headers={"Origin": base},
        allow_redirects=False,
    )
    assert resp.status == 302
    assert resp.cookies["clamshell_session"]["secure"]
    cookie = {"Cookie": f"clamshell_session={resp.cookies['clamshell_session'].value}"}
    page = await client.get(
        f"https://www-acmejournals-test.proxy.localhost:{port}/", headers=cookie
    )
    assert page.status == 200
    assert "Acme Journal Archive" in await page.text()
    assert [r.host for r in recorder.records] == ["www.acmejournals.test"]


async def test_vendor_with_untrusted_certificate_is_a_502(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    """A vendor whose certificate the proxy does not trust gets a 502 page, never a downgrade."""
    _, cert, key = test_ca(tmp_path / "vendor-ca", list(DEMO_TLS_HOSTS))
    other_ca, _, _ = test_ca(tmp_path / "other-ca", ["unrelated.test"])
    vendor_runner, vendor_port = await start_vendor_tls(None, cert=cert, key=key)
    runner, proxy_ca, card = await start_proxy(
        tmp_path, f"https://127.0.0.1:{vendor_port}", other_ca, unused_tcp_port
    )
    connector = aiohttp.TCPConnector(ssl=client_context(proxy_ca), resolver=Resolver())
    base = f"https://proxy.localhost:{unused_tcp_port}"
    try:
        async with aiohttp.ClientSession(connector=connector) as client:  # noqa: TID251
            form = await (await client.get(f"{base}/login")).text()
            token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            resp = await client.post(
                f"{base}/login",
                data={"csrf": token, "card": card.barcode, "pin": card.secret, "url": ""},
                headers={"Origin": base},
                allow_redirects=False,
            )
            cookie = {"Cookie": f"clamshell_session={resp.cookies['clamshell_session'].value}"}
            page = await client.get(
                f"https://www-acmejournals-test.proxy.localhost:{unused_tcp_port}/", headers=cookie
            )
            assert page.status == 502
            assert "could not be reached" in await page.text()
    finally:
        await runner.cleanup()
        await vendor_runner.cleanup()


async def test_hsts_on_portal_pages_in_tls_mode(browser_session: Any) -> None:
    """R21: over TLS the portal's pages carry HSTS for a year (no includeSubDomains by default)."""
    client, port, _card, _recorder = browser_session
    for path in ("/", "/login", "/nope"):
        resp = await client.get(f"https://proxy.localhost:{port}{path}")
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000", path
        assert resp.headers["Server"] == "clamshell"
