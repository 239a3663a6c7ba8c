"""Logout: a page with a button on GET; the session ends only on a same-site POST.

Contract: ``GET /logout`` (the links libraries publish, as with EZproxy) shows a small page
whose button POSTs to ``/logout``, and changes nothing: an ``<img src=/logout>`` on a vendor
page used to sign the patron out (pentest R21). ``POST /logout`` refuses a cross-site request
(Origin / Sec-Fetch-Site, the test login uses) with 403 and the same page; otherwise it ends
the session and everything stored with it. The session cookie is cleared on every answer to
a POST, even when the deletion could not be written: the store then keeps the session
revoked in memory and retries the write (pentest R16). ``Clear-Site-Data: "cookies"`` also
wipes the vendor cookies that pass-mode rules let the browser keep (R6), but a browser
applies it to the whole registrable domain of the response, so it is sent only where that
domain is the proxy's own (``clear_site_data``; docs/security.md "Logout").
Not here: the session store (stores/sessions.py), page HTML (pages.py).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from proxy.core import csrf
from proxy.core.settings import Settings
from proxy.logconfig import get_logger
from proxy.rules_loader import is_public_suffix
from proxy.web.keys import SESSIONS, SETTINGS
from proxy.web.page_response import page
from proxy.web.session_cookie import clear_session_cookie, current_session, session_token

log = get_logger("login")
CLEAR_COOKIES: Final = {"Clear-Site-Data": '"cookies"'}  # W3C Clear Site Data §3.1


def clear_site_data(settings: Settings) -> bool:
    """Whether logout may send ``Clear-Site-Data: "cookies"``.

    "cookies" clears every cookie of the response's registrable domain and its subdomains:
    for ``proxy.lib.org`` that is all of ``lib.org``, the library's own site. In ``auto`` mode
    it is sent only when the proxy host is itself registrable (its parent is a public suffix,
    e.g. ``libproxy.org``), so that the domain cleared is the proxy's alone.
    """
    mode = settings.login.clear_site_data
    if mode != "auto":
        return mode == "always"
    parent = settings.proxy_host.partition(".")[2]
    return bool(parent) and is_public_suffix(parent)


async def logout_page(request: web.Request) -> web.Response:
    """GET: the sign-out button for a signed-in patron, else the signed-out page."""
    session = await current_session(request)
    name = "logout.html" if session is not None else "signed_out.html"
    return page(request, name, library=session.library if session else None)


async def logout(request: web.Request) -> web.Response:
    """POST: end the session and everything stored with it; always clear the cookie."""
    settings = request.app[SETTINGS]
    if csrf.is_cross_site(
        request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), settings.public_url
    ):
        log.info("logout_refused", reason="cross_site")
        return page(request, "logout.html", status=403)
    token = session_token(request)
    if token is not None and await request.app[SESSIONS].delete(token):
        log.info("logout_completed")
    headers = CLEAR_COOKIES if clear_site_data(settings) else {}
    response = page(request, "signed_out.html", headers=dict(headers))
    clear_session_cookie(response, settings)
    return response
