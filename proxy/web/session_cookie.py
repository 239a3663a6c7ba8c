"""The proxy's session cookie: one name, one scope, set and read in one place.

Contract: the cookie is ``HttpOnly; SameSite=Lax; Path=/``, scoped to the portal host's
domain so every mapped vendor host (``*.proxy.host``) receives it, and ``Secure`` when the
public URL is https. The relay strips it from every upstream request (DESIGN P1).
Not here: what a session holds (stores/sessions.py).
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from proxy.core.settings import Settings
from proxy.stores.sessions import Session
from proxy.web.keys import CLOCK, SESSIONS

SESSION_COOKIE: Final = "clamshell_session"


def set_session_cookie(response: web.StreamResponse, token: str, settings: Settings) -> None:
    """Attach a fresh session cookie (lifetime bounded by the session's absolute lifetime)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        domain=settings.proxy_host,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=settings.public_scheme == "https",
        max_age=settings.sessions.lifetime_hours * 3600,
    )


def clear_session_cookie(response: web.StreamResponse, settings: Settings) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(SESSION_COOKIE, domain=settings.proxy_host, path="/")


def session_token(request: web.Request) -> str | None:
    """The raw token from the request's cookie, if any.

    Read here rather than through ``request.cookies``: aiohttp turns every cookie of the
    request into a Morsel (profiled at ~14 µs on each relayed request) when one name is
    needed. RFC 6265 §4.2.1 syntax, ``name=value; name=value``; as with ``request.cookies``,
    the last occurrence wins and a double-quoted value is unquoted.
    """
    token = None
    for header in request.headers.getall(hdrs.COOKIE, ()):
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if sep and name.strip() == SESSION_COOKIE:
                value = value.strip()
                token = value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value
    return token or None


async def current_session(request: web.Request) -> Session | None:
    """The live session for this request, or None (unknown, idle or past its lifetime)."""
    token = session_token(request)
    if token is None:
        return None
    return await request.app[SESSIONS].get(token, request.app[CLOCK]())
