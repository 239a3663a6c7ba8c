"""Response headers set at the edge: our own name on everything, protections on our pages.

Contract: ``add_edge_headers`` (an ``on_response_prepare`` hook) sets ``Server: clamshell`` on
every response of the app, relayed ones included, and, on responses the proxy itself wrote
(portal pages, and error pages on any host), ``PORTAL_SECURITY_HEADERS`` with
``frame-ancestors 'none'`` merged into any CSP already there, plus HSTS when the proxy serves
TLS. Relayed vendor responses keep the vendor's own framing/referrer/CSP policy.
``hide_server_version`` makes aiohttp's own low-level answers (parse errors, which never reach
the app) say ``clamshell`` too. ``mark_relayed`` and ``mark_own_page`` tell the hook which kind
of response it sees.
Not here: the vendor's headers (core/headers.py), the admin console's headers (admin/app.py).
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web, web_response

from proxy.web.keys import SETTINGS

# No product version on the wire (RFC 9110 §10.2.4: it helps attackers find known holes).
SERVER_NAME: Final = "clamshell"
# Our own pages: no framing (clickjacking), no MIME sniffing, no referrer to vendors.
PORTAL_SECURITY_HEADERS: Final = {
    "X-Frame-Options": "DENY",  # RFC 7034; older browsers ignore frame-ancestors
    "X-Content-Type-Options": "nosniff",  # Fetch standard §X-Content-Type-Options
    "Referrer-Policy": "same-origin",  # W3C Referrer Policy; same-origin keeps Origin on posts
}
FRAME_ANCESTORS: Final = "frame-ancestors 'none'"  # CSP Level 2 §7.7
# RFC 6797: one year. includeSubDomains only when tls.hsts_include_subdomains says so: it pins
# every name under the proxy host to HTTPS for a year, including ones the operator may run
# elsewhere over plain HTTP.
HSTS_MAX_AGE: Final = 31_536_000
RELAYED: Final = web.RequestKey("clamshell_relayed", bool)
OWN_PAGE: Final = web.RequestKey("clamshell_own_page", bool)


def hide_server_version() -> None:
    """aiohttp's default ``Server`` (``Python/3.x aiohttp/3.y``) becomes ``clamshell``."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


def mark_relayed(request: web.Request) -> None:
    """This request goes to a vendor: its response carries the vendor's own policy."""
    request[RELAYED] = True


def mark_own_page(request: web.Request) -> None:
    """The proxy wrote this response (an error page), whatever the host."""
    request[OWN_PAGE] = True


def with_frame_ancestors(csp: str | None) -> str:
    """``csp`` with ``frame-ancestors 'none'`` (replacing any frame-ancestors it had)."""
    if not csp:
        return FRAME_ANCESTORS
    kept = [d.strip() for d in csp.split(";") if d.strip()]
    kept = [d for d in kept if d.split(None, 1)[0].lower() != "frame-ancestors"]
    return "; ".join([*kept, FRAME_ANCESTORS])


def hsts_value(include_subdomains: bool) -> str:
    """The Strict-Transport-Security value."""
    return f"max-age={HSTS_MAX_AGE}" + ("; includeSubDomains" if include_subdomains else "")


async def add_edge_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Our name on everything; the page protections on what we wrote ourselves."""
    response.headers[hdrs.SERVER] = SERVER_NAME
    if request.get(RELAYED) and not request.get(OWN_PAGE):
        return
    headers = response.headers
    headers.update(PORTAL_SECURITY_HEADERS)
    headers[hdrs.CONTENT_SECURITY_POLICY] = with_frame_ancestors(
        headers.get(hdrs.CONTENT_SECURITY_POLICY)
    )
    tls = request.app[SETTINGS].tls
    if tls is not None:
        headers[hdrs.STRICT_TRANSPORT_SECURITY] = hsts_value(tls.hsts_include_subdomains)
