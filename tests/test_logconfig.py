"""Logging: sensitive keys never reach output; client addresses are truncated."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import redirect_stderr

import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs

from proxy.logconfig import (
    LIBRARY_LOGGERS,
    LibraryLogBridge,
    RateLimit,
    configure_logging,
    get_logger,
    redact,
    truncate_ip,
)
from proxy.server import start_site

CANARY_TOKEN = "canary-session-7d1f0e22"
CANARY_CARD = "4111111111111111"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo configure_logging: structlog's defaults, the library loggers as they were."""
    saved = {
        n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in LIBRARY_LOGGERS
    }
    yield
    structlog.reset_defaults()
    for name, (level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for bridge in [h for h in logger.handlers if isinstance(h, LibraryLogBridge)]:
            logger.removeHandler(bridge)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.mark.parametrize(
    ("ip", "net"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("not-an-ip", "invalid"),
    ],
)
def test_truncate_ip(ip: str, net: str) -> None:
    """IPv4 addresses keep their /24, IPv6 their /48, junk becomes 'invalid'."""
    assert truncate_ip(ip) == net


def test_redact_drops_sensitive_keys() -> None:
    """Card, PIN, cookie, session and URL keys are dropped, and named as dropped."""
    event = redact(
        None,
        "info",
        {
            "event": "login_failed",
            "card": "21234000000001",
            "PIN": "9999",
            "cookie": "sid=abc",
            "session_id": "s",
            "vendor": "acme",
            "client_ip": "198.51.100.9",
        },
    )
    assert event == {
        "event": "login_failed",
        "vendor": "acme",
        "client_ip": "198.51.100.0/24",
        "redacted": ["card", "PIN", "cookie", "session_id"],
    }


def test_rendered_json_lines_hold_no_canary() -> None:
    """With the production chain, a planted canary in a sensitive key never reaches stderr."""
    buffer = io.StringIO()
    with redirect_stderr(buffer):
        configure_logging("json")
        get_logger("test").info(
            "login_failed", barcode="CANARY-21234", vendor="acme", client_ip="192.0.2.44"
        )
    structlog.reset_defaults()
    line = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert line["event"] == "login_failed"
    assert line["client_ip"] == "192.0.2.0/24"
    assert "CANARY" not in buffer.getvalue()


def test_events_have_stable_names() -> None:
    """Components log snake_case event names with a component field."""
    with capture_logs() as logs:
        get_logger("rules").info("rules_reloaded", rule_count=2)
    assert logs == [
        {"event": "rules_reloaded", "component": "rules", "rule_count": 2, "log_level": "info"}
    ]


def test_access_line_holds_no_query_no_host_no_full_address() -> None:
    """The optional access log truncates the address, drops the query, names the vendor."""
    from datetime import UTC, datetime

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from proxy.accesslog import VENDOR_KEY, access_line

    request = make_mocked_request(
        "GET", "/article/1?q=canary+search", headers={"Host": "www-acme-test.proxy.localhost"}
    )
    request[VENDOR_KEY] = "acme"
    response = web.Response(body=b"x" * 12)
    line = access_line(request, response, datetime(2026, 11, 29, 12, tzinfo=UTC))
    assert '"GET acme:/article/1 HTTP/1.1" 200 ' in line
    assert line.endswith(' "-" "-"')
    assert "canary" not in line and "proxy.localhost" not in line


async def send_raw(port: int, data: bytes) -> bytes:
    """Send raw bytes to the listener and read its answer until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def test_aiohttp_errors_reach_output_without_address_header_or_url(
    unused_tcp_port: int, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """R8: "Error handling request" records quoting a header or URL leave no canary, no full IP."""
    configure_logging("json")
    runner = await start_site(web.Application(), "127.0.0.1", unused_tcp_port)
    try:
        bad_header = b"GET / HTTP/1.1\r\nHost: a\r\nX-Session: " + CANARY_TOKEN.encode()
        await send_raw(unused_tcp_port, bad_header + b"\x01\r\n\r\n")
        bad_line = b"GET /search?q=" + CANARY_TOKEN.encode() + b"&card=" + CANARY_CARD.encode()
        await send_raw(unused_tcp_port, bad_line + b" HTTP/1.2\r\nHost: a\r\n\r\n")
    finally:
        await runner.cleanup()
    out, err = capfd.readouterr()
    for text in (out, err, caplog.text):
        assert CANARY_TOKEN not in text and CANARY_CARD not in text and "127.0.0.1" not in text
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"request_unparsable"} <= {e["event"] for e in events}
    assert all("Traceback" not in line for line in err.splitlines())


async def test_repeated_accept_errors_are_rate_limited(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """R8: a storm of asyncio accept failures (EMFILE) writes one line, not one per failure."""
    configure_logging("json")
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:
        for _ in range(1000):
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files"),
                    "socket": sock,
                }
            )
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert [(e["event"], e["error"]) for e in lines] == [("accept_failed", "OSError")]
    assert caplog.records == []  # nothing went round the bridge either


def test_client_disconnects_log_nothing(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """R8: a client disconnect inside aiohttp writes no line and no traceback."""
    configure_logging("json")
    try:
        raise ConnectionResetError("Connection lost from 203.0.113.9")
    except ConnectionResetError:
        logging.getLogger("aiohttp.server").exception("Unhandled exception")
    assert capfd.readouterr().err == ""
    assert caplog.records == []


def test_rate_limit_counts_what_it_held_back() -> None:
    """R8: after the interval the next line says how many were held back."""
    now = [0.0]
    limit = RateLimit(10.0, clock=lambda: now[0])
    assert limit.check("k") == 0
    assert [limit.check("k") for _ in range(5)] == [None] * 5
    now[0] = 10.5
    assert limit.check("k") == 5
    assert limit.check("other") == 0
