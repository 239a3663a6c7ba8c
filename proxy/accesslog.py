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
Not here: the structlog events (logconfig.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from proxy.logconfig import truncate_ip
from proxy.web.keys import SETTINGS

VENDOR_KEY: Final = web.RequestKey("clamshell_vendor", str)  # set by the relay, read here
PORTAL_VENDOR: Final = "portal"


class PrivacyAccessLogger(AbstractAccessLogger):
    """Combined format, minus everything that identifies a patron or a search."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Write one line; the path only when proxy.yaml says ``access_log_format: combined``."""
        now = datetime.now(UTC)
        self.logger.info(access_line(request, response, now, with_path=_with_path(request)))


def _with_path(request: web.BaseRequest) -> bool:
    """True only when the app's settings ask for paths (no settings: no path)."""
    app = getattr(request, "app", None)
    settings = app.get(SETTINGS) if app is not None else None
    return settings is not None and settings.access_log_format == "combined"


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
