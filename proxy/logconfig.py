"""structlog, configured once: JSON lines in production, readable console in development.

Contract: ``configure_logging(fmt)`` installs the processor chain; ``redact`` is a structlog
processor that drops known-sensitive keys (it never tries to mask them: a dropped key cannot
leak) and truncates client addresses to their network (/24 for IPv4, /48 for IPv6).
Event names are stable snake_case past-tense facts (``rules_reloaded``, ``login_failed``).
``configure_logging`` also bridges the stdlib loggers of aiohttp and asyncio
(``LIBRARY_LOGGERS``): their records never reach output as text (messages and tracebacks quote
client addresses, header lines and URLs); each becomes one of our events with the logger's
name and the exception's type only, client disconnects are dropped, and each kind of record is
written at most once per ``LIBRARY_LOG_INTERVAL_S`` with a count of those held back
(``RateLimit``).
Not here: what to log (each component), access logs (accesslog.py).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import sys
import time
from collections.abc import Callable, Hashable, MutableMapping
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
# Libraries that log through the stdlib with text we cannot vouch for (CONVENTIONS "Traps":
# "Error handling request from <client IP>" with tracebacks quoting header lines and URLs).
LIBRARY_LOGGERS: Final = (
    "aiohttp.server",
    "aiohttp.access",
    "aiohttp.web",
    "aiohttp.internal",
    "aiohttp.client",
    "aiohttp.websocket",
    "asyncio",
)
# Known library messages (by how they start) → our event names; any other is library_logged.
LIBRARY_EVENTS: Final = (
    ("Error handling request", "request_unparsable"),
    ("Unhandled exception", "request_crashed"),
    ("socket.accept() out of system resource", "accept_failed"),
    ("Fatal error on", "transport_failed"),
    ("Task exception was never retrieved", "task_failed"),
)
# The browser went away: not our failure, and no line at all (one per disconnect added up to
# megabytes of tracebacks).
DISCONNECT_ERRORS: Final = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
LIBRARY_LOG_INTERVAL_S: Final = 10.0  # at most one line per kind of record per interval


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


class RateLimit:
    """At most one pass per key per ``interval`` seconds; counts the ones held back."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = interval, clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def check(self, key: Hashable) -> int | None:
        """None when held back; else how many were held back since the last pass."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


def library_event(record: logging.LogRecord) -> str:
    """Our event name for a library's record (from its message template, never its text)."""
    template = record.msg if isinstance(record.msg, str) else ""
    return next((e for start, e in LIBRARY_EVENTS if template.startswith(start)), "library_logged")


class LibraryLogBridge(logging.Handler):
    """Turns library records into our events: logger name and exception type, nothing else."""

    def __init__(self, limit: RateLimit) -> None:
        super().__init__(level=logging.WARNING)
        self.limit = limit

    def emit(self, record: logging.LogRecord) -> None:
        """Drop disconnects; write the rest as a rate-limited event."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DISCONNECT_ERRORS):
            return
        event, error = library_event(record), type(exc).__name__ if exc else None
        held = self.limit.check((record.name, event, error))
        if held is None:
            return
        fields: dict[str, Any] = {"logger": record.name, "error": error}
        if held:
            fields["suppressed"] = held
        logger = get_logger("library")
        if record.levelno >= logging.ERROR:
            logger.error(event, **fields)
        else:
            logger.warning(event, **fields)


def bridge_library_loggers(interval: float = LIBRARY_LOG_INTERVAL_S) -> LibraryLogBridge:
    """Route ``LIBRARY_LOGGERS`` through one bridge (replacing any earlier one)."""
    bridge = LibraryLogBridge(RateLimit(interval))
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, LibraryLogBridge)]:
            logger.removeHandler(old)
        logger.addHandler(bridge)
        logger.setLevel(logging.WARNING)
        logger.propagate = False  # never to the root's handlers, which would print the text
    return bridge


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
    bridge_library_loggers()


def get_logger(component: str) -> Any:
    """A lazy logger carrying a component name.

    Lazy on purpose: ``get_logger().bind()`` at import time would freeze the processor chain
    configured at that moment, and later configuration (or ``capture_logs`` in tests) would
    not reach module-level loggers.
    """
    return structlog.get_logger(component=component)
