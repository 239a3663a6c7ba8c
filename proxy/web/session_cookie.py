"""The proxy's session cookie: one name, one scope, set and read in one place.

Contract: the cookie is ``HttpOnly; SameSite=Lax; Path=/``, a browser-session cookie (no
Max-Age/Expires: closing the browser on a shared library PC forgets it; the server's idle and
absolute limits still end the session) unless ``sessions.persistent_cookie`` asks for
``Max-Age`` = the absolute lifetime, scoped to the portal host's
domain so every mapped vendor host (``*.proxy.host``) receives it, and ``Secure`` when the
public URL is https. The relay strips it from every upstream request (DESIGN P1). The Cookie
header is parsed once per request by ``core.cookieheader`` (the same pairs serve the token and
what a ``cookies: pass`` vendor gets). A request carrying more than one session cookie has no
session: a sibling vendor host can toss its own ``clamshell_session`` onto the proxy domain,
and picking either one could swap the patron into someone else's session (R7); such a
request is logged ``session_cookie_conflict`` and ``forget_tossed_cookies`` clears both scopes.
Not here: what a session holds (stores/sessions.py), the residual risk (docs/security.md).
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from proxy.core.cookieheader import CookiePair, parse_cookie_header, session_tokens
from proxy.core.settings import Settings
from proxy.logconfig import get_logger
from proxy.stores.sessions import Session
from proxy.web.keys import CLOCK, SESSIONS, SETTINGS

SESSION_COOKIE: Final = "clamshell_session"
COOKIE_PAIRS: Final = web.RequestKey("clamshell_cookie_pairs", tuple)  # parsed once per request
COOKIE_CONFLICT: Final = web.RequestKey("clamshell_cookie_conflict", bool)
EXPIRED: Final = "; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"  # RFC 6265 §5.3

log = get_logger("session")


def set_session_cookie(response: web.StreamResponse, token: str, settings: Settings) -> None:
    """Attach a fresh session cookie: browser-session, or persistent for the session's lifetime."""
    persistent = settings.sessions.persistent_cookie
    response.set_cookie(
        SESSION_COOKIE,
        token,
        domain=settings.proxy_host,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=settings.public_scheme == "https",
        max_age=settings.sessions.lifetime_hours * 3600 if persistent else None,
    )


def clear_session_cookie(response: web.StreamResponse, settings: Settings) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(SESSION_COOKIE, domain=settings.proxy_host, path="/")


def forget_tossed_cookies(request: web.Request, response: web.StreamResponse) -> None:
    """After a conflict: clear the session cookie on the proxy domain and host-only (R7).

    A tossed cookie with another path or a parent domain outlives this (docs/security.md).
    """
    if request.get(COOKIE_CONFLICT):  # raw headers: aiohttp keeps one Set-Cookie per name
        domain = request.app[SETTINGS].proxy_host
        for scope in (f"; Domain={domain}", ""):
            response.headers.add(hdrs.SET_COOKIE, f"{SESSION_COOKIE}={scope}{EXPIRED}")


def cookie_pairs(request: web.Request) -> tuple[CookiePair, ...]:
    """The request's cookies, parsed once (the relay's hot path reads them twice)."""
    pairs = request.get(COOKIE_PAIRS)
    if pairs is None:
        pairs = request[COOKIE_PAIRS] = parse_cookie_header(request.headers.getall(hdrs.COOKIE, ()))
    return pairs


def session_token(request: web.Request) -> str | None:
    """The raw token from the request's one session cookie; None for none or several.

    Read here rather than through ``request.cookies``: aiohttp turns every cookie of the
    request into a Morsel (profiled at ~14 µs on each relayed request) when one name is
    needed, and its quote-aware parse disagrees with how browsers build the header.
    """
    if hdrs.COOKIE not in request.headers:
        return None
    tokens = session_tokens(cookie_pairs(request), SESSION_COOKIE)
    if len(tokens) > 1:
        if not request.get(COOKIE_CONFLICT):
            request[COOKIE_CONFLICT] = True
            log.warning("session_cookie_conflict", cookies=len(tokens))
        return None
    return tokens[0] or None if tokens else None


async def current_session(request: web.Request) -> Session | None:
    """The live session for this request, or None (unknown, idle or past its lifetime)."""
    token = session_token(request)
    if token is None:
        return None
    return await request.app[SESSIONS].get(token, request.app[CLOCK]())
