"""The optional access log: by default it writes no vendor path at all (R23)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.accesslog import VENDOR_KEY, access_logger
from proxy.core.settings import Settings
from proxy.server import start_site
from proxy.web.keys import SETTINGS

PATH = "/stable/10.2307/canary-doi"
QUERY = "q=canary+search"


class Lines(logging.Handler):
    """Collects the access log's lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    """The lines the access log writes during the test."""
    handler = Lines()
    logger = access_logger()
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


async def one_request(settings: dict[str, Any], port: int) -> None:
    """Serve one vendor request on loopback with the access log on."""

    async def vendor_page(request: web.Request) -> web.Response:
        request[VENDOR_KEY] = "acme"
        return web.Response(text="ok")

    app = web.Application()
    app[SETTINGS] = Settings.model_validate({"access_log": True, **settings})
    app.router.add_get("/{tail:.*}", vendor_page)
    runner = await start_site(app, "127.0.0.1", port, access_log=True)
    try:
        url = f"http://127.0.0.1:{port}{PATH}?{QUERY}"
        async with aiohttp.ClientSession() as client, client.get(url) as response:  # noqa: TID251
            assert response.status == 200
    finally:
        await runner.cleanup()


async def test_R23_default_access_log_writes_no_path(
    access_lines: list[str], unused_tcp_port: int
) -> None:
    """R23: with only `access_log: true` the line holds the vendor id, never path or query."""
    await one_request({}, unused_tcp_port)
    (line,) = access_lines
    assert '"GET acme:- HTTP/1.1" 200 ' in line
    assert "canary" not in line and "10.2307" not in line and "stable" not in line


async def test_R23_combined_format_is_an_explicit_choice(
    access_lines: list[str], unused_tcp_port: int
) -> None:
    """R23: `access_log_format: combined` writes the path (still never the query)."""
    await one_request({"access_log_format": "combined"}, unused_tcp_port)
    (line,) = access_lines
    assert f'"GET acme:{PATH} HTTP/1.1" 200 ' in line
    assert QUERY not in line
