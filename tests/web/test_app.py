"""The app shell: host dispatch, portal pages, health, and request-shape guards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config_loader import settings_from
from proxy.rulebook import Rulebook
from proxy.web.app import build_app

REPO = Path(__file__).resolve().parents[2]
PORTAL = "proxy.localhost:8080"


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    """The app on a real loopback socket with the shipped rules."""
    settings = settings_from(
        {
            "public_url": f"http://{PORTAL}",
            "data_dir": str(tmp_path),
            "rules_dir": str(REPO / "vendor_rules"),
            "libraries": [{"code": "MAIN", "name": "Main"}],
        },
        where="test",
        base=tmp_path,
    )
    book = Rulebook.open(settings.rules_dir, frozenset({"MAIN"}))
    return await aiohttp_client(build_app(settings, book))


async def test_portal_home_page(client: TestClient) -> None:
    """The portal host serves an accessible home page."""
    resp = await client.get("/", headers={"Host": PORTAL})
    assert resp.status == 200
    html = await resp.text()
    assert '<html lang="en">' in html and "Library databases" in html


async def test_healthz_reports_rules(client: TestClient) -> None:
    """/healthz answers JSON with the rule count."""
    resp = await client.get("/healthz", headers={"Host": PORTAL})
    assert await resp.json() == {"status": "ok", "rules": 2, "last_reload_ok": True}


async def test_unknown_portal_path_is_a_friendly_404(client: TestClient) -> None:
    """An unknown portal path is a 404 page with a way back."""
    resp = await client.get("/nope", headers={"Host": PORTAL})
    assert resp.status == 404
    assert "Back to the library databases" in await resp.text()


@pytest.mark.parametrize(
    "host",
    [
        "www-jstor-org.proxy.localhost:8080",
        "www-acmejournals-test---h.proxy.localhost:8080",
        "a-b.c.proxy.localhost:8080",
    ],
)
async def test_unknown_mapped_host_is_404(client: TestClient, host: str) -> None:
    """A mapped host no rule covers gets the "not one of our licensed databases" page."""
    resp = await client.get("/", headers={"Host": host})
    assert resp.status == 404
    assert "not one of our licensed databases" in await resp.text()


@pytest.mark.parametrize("host", ["user@proxy.localhost", "proxy.localhost:8080 x", ""])
async def test_odd_host_values_are_400(client: TestClient, host: str) -> None:
    """Host values with userinfo, spaces or nothing are refused with 400."""
    resp = await client.get("/", headers={"Host": host})
    assert resp.status == 400
