"""structlog, configured once: JSON lines in production, readable console in development.

Contract: ``configure_logging(fmt)`` installs the processor chain; ``redact`` is a structlog
processor that drops known-sensitive keys (it never tries to mask them: a dropped key cannot
leak) and truncates client addresses to their network (/24 for IPv4, /48 for IPv6).
Event names are stable snake_case past-tense facts (``rules_reloaded``, ``login_failed``).
Not here: what to log (each component), access logs (a later issue).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, Literal

import structlog

# Keys that may hold patron secrets or session material; they are dropped, not masked
# (DESIGN P3: no log line holds a card number, PIN, name or session id).
SENSITIVE_KEYS: Final = frozenset(
    {
        "card",
        "barcode",
        "pin",
        "password",
        "passwd",
        "last_name",
        "name",
        "email",
        "cookie",
        "cookies",
        "set_cookie",
        "authorization",
        "session",
        "session_id",
        "sid",
        "token",
        "csrf",
        "patron",
        "patron_id",
        "patron_key",
        "pseudonym",
        "url",
        "path",
        "query",
        "referer",
    }
)
CLIENT_ADDRESS_KEYS: Final = frozenset({"client_ip", "peer", "remote"})
LogFormat = Literal["auto", "json", "console"]


@functools.lru_cache(maxsize=4096)  # per request on the relay's hot path; addresses repeat
def truncate_ip(value: str) -> str:
    """'203.0.113.77' → '203.0.113.0/24'; '2001:db8::1' → '2001:db8::/48'; junk → 'invalid'."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return "invalid"
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop sensitive keys and truncate client addresses (a structlog processor)."""
    for key in [k for k in event if k.lower() in SENSITIVE_KEYS]:
        del event[key]
        event.setdefault("redacted", []).append(key)
    for key in CLIENT_ADDRESS_KEYS & event.keys():
        event[key] = truncate_ip(str(event[key]))
    return event


def shared_processors() -> list[Any]:
    """Processors common to every renderer (tests use them with capture_logs)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def configure_logging(fmt: LogFormat = "auto", *, level: int = logging.INFO) -> None:
    """Install the processor chain once; ``auto`` is JSON unless stderr is a TTY."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared_processors(), structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(component: str) -> Any:
    """A lazy logger carrying a component name.

    Lazy on purpose: ``get_logger().bind()`` at import time would freeze the processor chain
    configured at that moment, and later configuration (or ``capture_logs`` in tests) would
    not reach module-level loggers.
    """
    return structlog.get_logger(component=component)
