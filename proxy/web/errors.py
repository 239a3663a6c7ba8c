"""The one boundary that turns exceptions into responses, and request-shape guards.

Contract: ``error_boundary`` renders every ``ClamshellError`` as a friendly page with its
``status_hint`` and logs ``request_failed`` once with the error type (never its text from
upstream, never the URL). Unexpected exceptions become a 500 page, not a traceback.
``BadRequestShape`` covers absolute-form request lines and odd Host values (aiohttp accepts
both; see CONVENTIONS "Traps").
Not here: deciding what is an error (handlers, core).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from proxy.core.hostmap import HostMapError
from proxy.core.targets import NotOurDatabase
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.web.keys import SETTINGS
from proxy.web.pages import error_page

log = get_logger("web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A Host header we accept: DNS name (or IPv4 for direct health checks) and optional port.
HOST_HEADER: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?$")


class BadRequestShape(ClamshellError):
    """The request line or Host header is malformed or ambiguous."""

    status_hint = 400
    public_message = "This request could not be understood."


class NotFound(ClamshellError):
    """No such page on the portal."""

    status_hint = 404
    public_message = "There is no page at this address."


TITLES: Final = {
    400: "Bad request",
    403: "Access not permitted",
    404: "Not found",
    405: "Method not allowed",
    408: "The upload was too slow",
    413: "The upload is too large",
    415: "The upload cannot be relayed",
    429: "Too many attempts",
    500: "Something went wrong",
    502: "The database is not answering",
    504: "The database is too slow",
}


def checked_host(request: web.Request) -> str:
    """The single, well-formed Host value (lowercased) or BadRequestShape."""
    values = request.headers.getall("Host", [])
    if len(values) != 1 or not HOST_HEADER.match(values[0]):
        raise BadRequestShape("bad host header")
    if not request.raw_path.startswith("/"):
        raise BadRequestShape("absolute-form request line")  # RFC 9112 §3.2.2: only for proxies
    return values[0].lower()


# Errors that carry ``status_hint`` and a patron-safe ``public_message``. The core's errors do
# not derive from ClamshellError so that proxy/core stays free of the shell's modules.
PUBLIC_ERRORS: Final = (ClamshellError, HostMapError, NotOurDatabase)


def render_error(
    request: web.Request, exc: ClamshellError | HostMapError | NotOurDatabase
) -> web.Response:
    """The friendly page for an error, with the consortium's name and a way back."""
    settings = request.app[SETTINGS]
    status = exc.status_hint
    html = error_page(
        TITLES.get(status, "Error"),
        exc.public_message,
        consortium=settings.consortium_name,
        back=settings.public_url + "/",
    )
    extra = getattr(exc, "response_headers", {})  # e.g. a 405's Allow, a 415's Accept-Encoding
    return web.Response(
        status=status,
        text=html,
        content_type="text/html",
        headers={"Cache-Control": "no-store", **extra},
    )


@web.middleware
async def error_boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ClamshellError and unexpected exceptions; let aiohttp redirects through."""
    try:
        return await handler(request)
    except PUBLIC_ERRORS as exc:
        log.info("request_failed", error=type(exc).__name__, status=exc.status_hint)
        return render_error(request, exc)
    except web.HTTPRedirection:
        raise
    except ConnectionResetError:  # the browser went away mid-response: not our failure
        log.info("client_disconnected")
        raise
    except web.HTTPException as exc:
        if exc.status == 404:
            return render_error(request, NotFound())
        raise
    except Exception as exc:
        # The location, not the message or traceback text: those can carry URLs (DESIGN P3).
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "request_failed",
            error=type(exc).__name__,
            status=500,
            where=f"{frame.filename}:{frame.lineno}",
        )
        return render_error(request, ClamshellError())
