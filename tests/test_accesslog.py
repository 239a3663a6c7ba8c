"""The optional access log: by default it writes no vendor path at all (R23)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.accesslog import VENDOR_KEY, DailyKey, access_logger
from proxy.core.settings import Settings
from proxy.server import start_site
from proxy.web.keys import SETTINGS
from tests.web.conftest import PORTAL, Stack, StackFactory, make_stack  # noqa: F401
from tests.web.helpers import post_login, session_of

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


WWW = f"www-acmejournals-test.{PORTAL}"


@pytest.fixture
async def served(make_stack: StackFactory, unused_tcp_port: int) -> AsyncIterator[Any]:  # noqa: F811
    """A factory: the demo stack on a real port with the access log on (settings overridable)."""
    runners: list[web.AppRunner] = []

    async def factory(**extra: Any) -> Stack:
        stack: Stack = await make_stack(access_log=True, **extra)
        runners.append(await start_site(stack.app, "127.0.0.1", unused_tcp_port, access_log=True))
        return stack

    yield factory
    for runner in runners:
        await runner.cleanup()


async def relayed(port: int, target: str, headers: dict[str, str]) -> int:
    """One request for the acme host through the real listener; its status."""
    url = f"http://127.0.0.1:{port}{target}"
    async with (
        aiohttp.ClientSession() as client,  # noqa: TID251
        client.get(url, headers={"Host": WWW, **headers}, allow_redirects=False) as response,
    ):
        await response.read()
        return response.status


async def test_18_login_redirect_is_logged_with_the_vendor_id(
    served: Any, access_lines: list[str], unused_tcp_port: int
) -> None:
    """#18: a relayed request redirected to the login page is logged as `acme:`, not `portal:`."""
    await served()
    assert await relayed(unused_tcp_port, "/article/2", {}) == 302
    (line,) = access_lines
    assert '"GET acme:- HTTP/1.1" 302 ' in line


def test_18_ezpaarse_session_field_changes_with_the_day() -> None:
    """#18: the session field is an HMAC under a daily key: stable within a day, new the next."""
    ids = DailyKey()
    day = datetime(2026, 11, 29, 9, tzinfo=UTC)
    first = ids.session_id("session-key-1", day)
    assert first == ids.session_id("session-key-1", day + timedelta(hours=14))
    assert first != ids.session_id("session-key-2", day)
    assert first != ids.session_id("session-key-1", day + timedelta(days=1))
    assert len(first) == 16 and "session-key" not in first


async def test_18_ezpaarse_line_has_the_vendor_url_and_no_secret(
    served: Any, tmp_path: Path, unused_tcp_port: int
) -> None:
    """#18: `ezpaarse` lines read `addr session - [time] "GET <vendor URL> ..." status size`
    and the file never holds the card number, PIN or session token."""
    stack: Stack = await served(access_log_format="ezpaarse")
    card = stack.card("adult card")
    cookie = session_of(await post_login(stack.client, card.barcode, card.secret))
    handler = logging.FileHandler(tmp_path / "access.log", encoding="utf-8")
    access_logger().addHandler(handler)
    try:
        assert await relayed(unused_tcp_port, "/article/2?q=canary", cookie) == 200
        assert await relayed(unused_tcp_port, "/article/3", {}) == 302
    finally:
        access_logger().removeHandler(handler)
        handler.close()
    text = (tmp_path / "access.log").read_text(encoding="utf-8")
    relayed_line, login_line = text.splitlines()
    shape = r'127\.0\.0\.0/24 [0-9a-f]{16} - \[[^]]+ \+0000\] "GET (\S+) HTTP/1\.1" 200 \d+'
    match = re.fullmatch(shape, relayed_line)
    assert match is not None, relayed_line
    assert match[1] == "https://www.acmejournals.test/article/2?q=canary"
    assert re.fullmatch(r'127\.0\.0\.0/24 - - \[[^]]+\] "GET acme:- HTTP/1\.1" 302 \d+', login_line)
    token = cookie["Cookie"].split("=", 1)[1]
    for secret in (card.barcode, card.secret, token):
        assert secret not in text
