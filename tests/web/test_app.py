"""The app shell: host dispatch, portal pages, health, and request-shape guards."""

from __future__ import annotations

import pytest

from tests.web.conftest import PORTAL, Stack


async def test_portal_home_page(stack: Stack) -> None:
    """The portal host serves an accessible home page."""
    resp = await stack.client.get("/", headers={"Host": PORTAL})
    assert resp.status == 200
    html = await resp.text()
    assert '<html lang="en" dir="ltr">' in html and "Library databases" in html


async def test_healthz_reports_rules(stack: Stack) -> None:
    """/healthz answers JSON with the rule count."""
    resp = await stack.client.get("/healthz", headers={"Host": PORTAL})
    assert await resp.json() == {"status": "ok", "rules": 2, "last_reload_ok": True}


async def test_unknown_portal_path_is_a_friendly_404(stack: Stack) -> None:
    """An unknown portal path is a 404 page with a way back."""
    resp = await stack.client.get("/nope", headers={"Host": PORTAL})
    assert resp.status == 404
    assert "Back to the library databases" in await resp.text()


@pytest.mark.parametrize(
    "host",
    [
        "www-jstor-org.proxy.localhost:8080",
        "www-acmejournals-test---h.proxy.localhost:8080",
        "a-b.c.proxy.localhost:8080",
        "z---aaaaaaaaaaaaaaaa.proxy.localhost:8080",
    ],
)
async def test_unknown_mapped_host_is_404(stack: Stack, host: str) -> None:
    """A mapped host no rule covers gets the "not one of our licensed databases" page."""
    resp = await stack.client.get("/", headers={"Host": host})
    assert resp.status == 404
    assert "not one of our licensed databases" in await resp.text()


@pytest.mark.parametrize("host", ["user@proxy.localhost", "proxy.localhost:8080 x", ""])
async def test_odd_host_values_are_400(stack: Stack, host: str) -> None:
    """Host values with userinfo, spaces or nothing are refused with 400."""
    resp = await stack.client.get("/", headers={"Host": host})
    assert resp.status == 400
