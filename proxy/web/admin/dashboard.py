"""The admin console's HTML handlers: sign-in, sign-out, the dashboard, its reload button.

Contract: handlers for ``GET /`` (the dashboard), ``GET /admin.css``, ``GET``/``POST /login``
(a correct pasted token starts a server-side console session and sets its random id in the
HttpOnly, SameSite=Strict cookie, then redirects to ``/``; a wrong one is
``AdminRefused(401)``), ``POST /logout`` (revokes that session) and ``POST /reload`` (303 to
``/#reloads``). They gather values from the main app and hand them to pages.py; ``html``
is the one constructor of their HTML responses.
Not here: the HTML itself (pages.py), authentication and CSRF checks for these routes
(auth.py, run by the middleware in app.py), the JSON API (api.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta

from aiohttp import web

from proxy.core.staffroles import Principal
from proxy.logconfig import get_logger
from proxy.stores.backends import broadcast_reload
from proxy.web.admin.auth import (
    AUTH,
    CHALLENGE,
    CONSOLE_SESSIONS,
    MAIN,
    STAFF,
    STYLES,
    TOKEN_PRINCIPAL,
    AdminRefused,
    audit,
    cookie_name,
    principal_of,
)
from proxy.web.admin.pages import DashboardView, dashboard_page, login_page
from proxy.web.admin.views import (
    CHART_DAYS,
    reload_view,
    suspension_view,
    third_party_rows,
    usage_rows,
    vendor_views,
)
from proxy.web.keys import CLOCK, RULEBOOK, SESSIONS, SETTINGS, STATE, SUSPENSIONS, THROTTLE

log = get_logger("admin")


def html(text: str, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """An HTML response."""
    return web.Response(text=text, status=status, content_type="text/html", headers=headers)


async def stylesheet(request: web.Request) -> web.Response:
    """The portal's look plus the console's tables and chart colours."""
    return web.Response(text=request.app[STYLES], content_type="text/css")


async def login_form(request: web.Request) -> web.Response:
    """The sign-in form for people."""
    return html(login_page(request.app[MAIN][SETTINGS].consortium_name))


async def login_submit(request: web.Request) -> web.Response:
    """Check a staff name and password (and code), or the pasted admin token; on success
    start a console session, its id in the cookie."""
    form = await request.post()
    who = await _staff_sign_in(request, form) if "name" in form else _token_sign_in(request, form)
    session_id = request.app[CONSOLE_SESSIONS].create(request.app[MAIN][CLOCK](), who)
    response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie(
        cookie_name(request.secure),
        session_id,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    log.info("admin_logged_in", role=who.role)
    await audit(request, "signed_in", actor=who.name)
    return response


def _token_sign_in(request: web.Request, form: Mapping[str, object]) -> Principal:
    token = form.get("token")
    if not request.app[AUTH].accepts(token.strip() if isinstance(token, str) else None):
        log.info("admin_login_failed")
        raise AdminRefused(401, "That is not the admin token.", headers=CHALLENGE)
    return TOKEN_PRINCIPAL


async def _staff_sign_in(request: web.Request, form: Mapping[str, object]) -> Principal:
    name, password, code = (str(form.get(k, "")) for k in ("name", "password", "code"))
    now = request.app[MAIN][CLOCK]()
    who = await asyncio.to_thread(request.app[STAFF].verify, name.strip(), password, code, now)
    if who is None:
        log.info("admin_login_failed")
        # Only an existing account's name is recorded: never whatever was typed (a card?).
        known = await asyncio.to_thread(request.app[STAFF].exists, name.strip())
        actor = name.strip() if known else "?"
        await audit(request, "sign_in_failed", actor=actor)
        raise AdminRefused(
            401,
            "The name, password or code is wrong, or the account is locked for a while.",
            headers=CHALLENGE,
        )
    return who


async def logout(request: web.Request) -> web.Response:
    """Revoke the console session server-side and forget the cookie."""
    name = cookie_name(request.secure)
    session_id = request.cookies.get(name)
    if session_id:
        who = request.app[CONSOLE_SESSIONS].touch(session_id, request.app[MAIN][CLOCK]())
        request.app[CONSOLE_SESSIONS].revoke(session_id)
        log.info("admin_logged_out")
        if who is not None:
            await audit(request, "signed_out", actor=who.name)
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(name, path="/", secure=request.secure, httponly=True, samesite="Strict")
    return response


async def reload_form(request: web.Request) -> web.Response:
    """The dashboard's "Reload rules" button; the result shows in the reload table."""
    result = await request.app[MAIN][RULEBOOK].reload_async()
    await broadcast_reload(request.app[MAIN][STATE])  # #15: every node reloads
    await audit(request, "rules_reloaded", detail="ok" if result.ok else "refused")
    return web.Response(status=303, headers={"Location": "/#reloads"})


async def dashboard(request: web.Request) -> web.Response:
    """The HTML dashboard."""
    main, who = request.app[MAIN], principal_of(request)
    now = main[CLOCK]()
    days = tuple(now.date() - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1))
    book = main[RULEBOOK]
    wide = who.may("view_consortium")  # library staff: their libraries' usage, nothing else
    usage = await usage_rows(main, days[0], days[-1])
    view = DashboardView(
        consortium=main[SETTINGS].consortium_name,
        csrf=request.app[AUTH].csrf,
        active_sessions=await main[SESSIONS].count_active(now) if wide else None,
        vendors=vendor_views(book),
        reloads=[reload_view(r) for r in reversed(book.history)],
        days=days,
        usage=[u for u in usage if who.sees(u.library)],
        third_parties=await third_party_rows(main, days[0], days[-1]) if wide else [],
        suspensions=[suspension_view(s) for s in main[SUSPENSIONS].list_active(now)]
        if wide
        else [],
        login_alarms=main[THROTTLE].alarms_raised if wide else None,
        who=who,
    )
    return html(dashboard_page(view))
