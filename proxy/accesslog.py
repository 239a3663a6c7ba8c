"""An optional access log for operations, in combined format, without identifying data.

Contract: ``PrivacyAccessLogger`` is an aiohttp access logger that writes one combined-format
line per request with the client address truncated (/24, /48), no user field, the vendor id
instead of the mapped host, no Referer or User-Agent, and — by default
(``access_log_format: no_path``) — no path: the request column reads ``acme:-``. Only
``access_log_format: combined`` writes the path (never the query string), and a vendor path
is a DOI, an article or a search term: with the (truncated) address and the time it is a
reading history (R23; docs/privacy.md). The log is off by default (``access_log: true`` in
proxy.yaml turns it on) because even a truncated address is more than statistics need
(DESIGN P3); the structlog events never carry paths at all.
``access_log_format: ezpaarse`` (#18, opt-in) writes EZproxy-style lines ezPAARSE reads with
``Log-Format-ezproxy: %h %{ezproxy-session}i %u %t "%r" %s %b``: the truncated address, a
session field, user ``-``, the time, the request with the **absolute vendor URL, query
included** (a reading history), status and size. The session field is
``HMAC(daily key, session key)``: the daily key is random, held in this process's memory only,
replaced at the first line after UTC midnight and never written, so a day's lines can be
grouped into visits but yesterday's ids can no longer be recomputed from a session.
Not here: the structlog events (logconfig.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from datetime import UTC, date, datetime
from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from proxy.logconfig import truncate_ip
from proxy.web.keys import SETTINGS

VENDOR_KEY: Final = web.RequestKey("clamshell_vendor", str)  # set by the relay, read here
UPSTREAM_URL_KEY: Final = web.RequestKey("clamshell_upstream_url", str)  # relayed requests only
SESSION_KEY: Final = web.RequestKey("clamshell_session_key", str)  # only ever HMACed here
PORTAL_VENDOR: Final = "portal"
SESSION_ID_HEX: Final = 16  # 64 bits: enough to group a day's visits, too short to be a key


class DailyKey:
    """A random key per UTC day, in memory only; the old one is overwritten at the change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day: date | None = None
        self._key = bytearray(32)

    def session_id(self, session_key: str, now: datetime) -> str:
        """``HMAC-SHA256(today's key, session key)``, shortened; never the session key."""
        with self._lock:
            day = now.astimezone(UTC).date()
            if day != self._day:
                self._key[:] = secrets.token_bytes(32)  # overwrite in place, never written
                self._day = day
            mac = hmac.new(self._key, session_key.encode(), hashlib.sha256)
        return mac.hexdigest()[:SESSION_ID_HEX]


SESSION_IDS: Final = DailyKey()


class PrivacyAccessLogger(AbstractAccessLogger):
    """Combined format, minus everything that identifies a patron or a search."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Write one line; the path only when proxy.yaml says ``access_log_format: combined``."""
        now = datetime.now(UTC)
        fmt = _format(request)
        if fmt == "ezpaarse":
            self.logger.info(ezpaarse_line(request, response, now))
            return
        self.logger.info(access_line(request, response, now, with_path=fmt == "combined"))


def _format(request: web.BaseRequest) -> str:
    """The app's ``access_log_format`` (no settings: ``no_path``)."""
    app = getattr(request, "app", None)
    settings = app.get(SETTINGS) if app is not None else None
    return "no_path" if settings is None else settings.access_log_format


def ezpaarse_line(
    request: web.BaseRequest,
    response: web.StreamResponse,
    now: datetime,
    ids: DailyKey = SESSION_IDS,
) -> str:
    """``198.51.100.0/24 3f2a… - [date] "GET https://www.acme.test/a?q=x HTTP/1.1" 200 512``:
    the vendor URL for relayed requests, ``vendor:-`` for the rest (portal, login redirects)."""
    client = truncate_ip(request.remote or "")
    url = request.get(UPSTREAM_URL_KEY) or f"{request.get(VENDOR_KEY, PORTAL_VENDOR)}:-"
    session_key = request.get(SESSION_KEY)
    session = "-" if session_key is None else ids.session_id(session_key, now)
    version = f"HTTP/{request.version.major}.{request.version.minor}"
    stamp = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    quoted = url.replace('"', "%22")  # the request stays one quoted field
    request_line = f"{request.method} {quoted} {version}"
    return (
        f'{client} {session} - [{stamp}] "{request_line}" {response.status} {response.body_length}'
    )


def access_line(
    request: web.BaseRequest, response: web.StreamResponse, now: datetime, *, with_path: bool = True
) -> str:
    """One line: ``198.51.100.0/24 - - [date] "GET acme:/x HTTP/1.1" 200 512 "-" "-"``
    (``acme:-`` without the path)."""
    client = truncate_ip(request.remote or "")
    vendor = request.get(VENDOR_KEY, PORTAL_VENDOR)
    path = request.rel_url.path if with_path else "-"  # never the query: searches live there
    version = f"HTTP/{request.version.major}.{request.version.minor}"
    stamp = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    size = response.body_length
    return (
        f'{client} - - [{stamp}] "{request.method} {vendor}:{path} {version}" '
        f'{response.status} {size} "-" "-"'
    )


def access_logger() -> logging.Logger:
    """The stdlib logger the access log writes to (stderr unless configured otherwise)."""
    logger = logging.getLogger("clamshell.access")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
