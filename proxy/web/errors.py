"""The one boundary that turns exceptions into responses, and request-shape guards.

Contract: ``error_boundary`` renders every ``ClamshellError`` as a friendly page with its
``status_hint`` and logs ``request_failed`` once with the error type (never its text from
upstream, never the URL). Unexpected exceptions become a 500 page, not a traceback.
``BadRequestShape`` covers absolute-form request lines and odd Host values (aiohttp accepts
both; see CONVENTIONS "Traps"), and framing that aiohttp's parser lets through
(``check_framing``: HTTP versions other than 1.0/1.1 → 505, any Transfer-Encoding but a lone
``chunked`` on HTTP/1.1 → 400). Refusals of the request's shape close the connection.
Not here: deciding what is an error (handlers, core).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11

from proxy.core.hostmap import HostMapError
from proxy.core.targets import NotOurDatabase
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.web.edge_headers import mark_own_page
from proxy.web.i18n import N_
from proxy.web.page_response import page

log = get_logger("web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A Host header we accept: DNS name (or IPv4 for direct health checks) and optional port.
HOST_HEADER: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?$")
# The only versions an HTTP/1 listener speaks; llhttp also parses "HTTP/2.0" and "HTTP/0.9"
# request lines and aiohttp then answers in that version (RFC 9110 §6.2, §15.6.6: 505).
SPOKEN_VERSIONS: Final = frozenset({HttpVersion10, HttpVersion11})
# The only Transfer-Encoding a request may carry: "chunked" alone, on HTTP/1.1. A list such as
# "identity, chunked" is accepted by the parser but read differently by other hops
# (RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; §6.3).
REQUEST_TRANSFER_CODINGS: Final = ("chunked",)


class BadRequestShape(ClamshellError):
    """The request line or Host header is malformed or ambiguous."""

    status_hint = 400
    public_message = "This request could not be understood."


class UnsupportedVersion(BadRequestShape):
    """The request line names an HTTP version this listener does not speak."""

    status_hint = 505
    public_message = "This HTTP version is not supported."


class NotFound(ClamshellError):
    """No such page on the portal."""

    status_hint = 404
    public_message = "There is no page at this address."


TITLES: Final = {
    400: N_("Bad request"),
    403: N_("Access not permitted"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    408: N_("The upload was too slow"),
    413: N_("The upload is too large"),
    415: N_("The upload cannot be relayed"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    502: N_("The database is not answering"),
    504: N_("The database is too slow"),
    505: N_("HTTP version not supported"),
}


def check_framing(request: web.BaseRequest) -> None:
    """Refuse HTTP versions other than 1.0/1.1 (505) and any Transfer-Encoding but chunked."""
    if request.version not in SPOKEN_VERSIONS:
        raise UnsupportedVersion("unsupported http version")
    codings = request.headers.getall("Transfer-Encoding", [])
    if not codings:
        return
    lone = tuple(c.strip().lower() for c in ",".join(codings).split(","))
    if request.version != HttpVersion11 or lone != REQUEST_TRANSFER_CODINGS:
        raise BadRequestShape("transfer-encoding other than chunked")


def checked_host(request: web.Request) -> str:
    """The single, well-formed Host value (lowercased) or BadRequestShape; framing checked."""
    check_framing(request)
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
    """The friendly page for an error, with the consortium's name and a way back to the
    portal (absolute links: on a vendor's host a relative one would go to the vendor)."""
    status = exc.status_hint
    mark_own_page(request)
    extra = getattr(exc, "response_headers", {})  # e.g. a 405's Allow, a 415's Accept-Encoding
    return page(
        request,
        "error.html",
        status=status,
        headers=dict(extra),
        title=TITLES.get(status, N_("Error")),
        message=exc.public_message,
    )


@web.middleware
async def error_boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ClamshellError and unexpected exceptions; let aiohttp redirects through."""
    try:
        return await handler(request)
    except PUBLIC_ERRORS as exc:
        log.info("request_failed", error=type(exc).__name__, status=exc.status_hint)
        response = render_error(request, exc)
        if isinstance(exc, BadRequestShape):
            response.force_close()  # an unread body must not be parsed as the next request
        return response
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
