"""Logging: sensitive keys never reach output; client addresses are truncated."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr

import pytest
import structlog
from structlog.testing import capture_logs

from proxy.logconfig import configure_logging, get_logger, redact, truncate_ip


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
