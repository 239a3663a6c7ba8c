"""The admin console: its own aiohttp app on its own (loopback) listener, sharing the main app.

Contract: ``build_admin_app(main)`` returns an app that reads the main app's resources (rules,
sessions, stats, suspensions, clock) through ``main[KEY]`` and owns none of them;
``start_admin(main)`` binds ``settings.admin.listen`` when enabled (logging
``admin_listening_publicly`` off loopback) and returns the runner for the caller to clean up.
Every path but ``/login``, ``/logout`` and ``/admin.css`` needs the admin token, as
``Authorization: Bearer <token>`` (compared in constant time) or the HttpOnly SameSite=Strict
cookie the login form sets, holding only a server-side console session's random id; otherwise
401 with ``WWW-Authenticate: Bearer``. Any method but GET/HEAD is refused with 403 when
cross-site (Origin / Sec-Fetch-Site, core/csrf.py), and, when authenticated by the cookie,
without the page's CSRF token. Wrong method: 405. Every response carries a strict CSP (no
script at all), ``X-Frame-Options: DENY``, no referrer, no caching.
Here: the routes, the listener, and the middleware (``guard`` for the rules above, ``boundary``,
the one place refusals and failures become responses: JSON under /api/, else a page).
Privacy: only aggregates, rule files and pseudonymous session hashes are shown; no endpoint can
name a patron, a card, a session token or what anyone read (DESIGN P3).
Not here: the token and credential checks (auth.py), the JSON API (api.py, models.py, views.py,
openapi.py), the HTML handlers (dashboard.py), HTML and the SVG chart (pages.py), the reload
itself (proxy/rulebook.py), counting (core/usage.py), binding the patron listener and signals
(proxy/server.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from proxy.core.csrf import is_cross_site
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.web.admin.api import (
    api_block,
    api_health,
    api_openapi,
    api_reload,
    api_stats,
    api_suspend,
    api_suspensions,
    api_vendors,
)
from proxy.web.admin.auth import (
    AUTH,
    CONSOLE_SESSIONS,
    MAIN,
    STYLES,
    TOKEN_ENV,
    AdminAuth,
    AdminRefused,
    AdminSessions,
    admin_token,
    authenticate,
    require_csrf,
)
from proxy.web.admin.backends import api_auth_backends
from proxy.web.admin.dashboard import (
    dashboard,
    html,
    login_form,
    login_submit,
    logout,
    reload_form,
    stylesheet,
)
from proxy.web.admin.models import ErrorOut
from proxy.web.admin.pages import ADMIN_CSS, layout, login_page
from proxy.web.edge_headers import SERVER_NAME, hide_server_version
from proxy.web.errors import check_framing, checked_host
from proxy.web.keys import SETTINGS

__all__ = ["SECURITY_HEADERS", "build_admin_app", "is_loopback", "start_admin"]

log = get_logger("admin")

PUBLIC_PATHS: Final = frozenset({"/login", "/logout", "/admin.css"})
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})  # RFC 9110 §9.2.1: the rest may change state
IPV6_HOST: Final = re.compile(r"^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")  # RFC 3986 IP-literal
PORTAL_CSS: Final = Path(__file__).parents[1] / "static" / "portal.css"
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on the
    # console's own form posts, which the cross-site guard must refuse.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

# --- app, listener ----------------------------------------------------------------------


def build_admin_app(
    main: web.Application, *, environ: Mapping[str, str] = os.environ
) -> web.Application:
    """The admin app over ``main``'s resources (call after ``build_app``)."""
    admin = web.Application(middlewares=[boundary, guard], client_max_size=64 * 1024)
    admin[MAIN] = main
    admin[AUTH] = AdminAuth(admin_token(main[SETTINGS], environ))
    limits = main[SETTINGS].admin
    admin[CONSOLE_SESSIONS] = AdminSessions(
        timedelta(minutes=limits.session_idle_minutes), timedelta(hours=limits.session_hours)
    )
    admin[STYLES] = PORTAL_CSS.read_text("utf-8") + ADMIN_CSS
    admin.on_response_prepare.append(add_security_headers)
    admin.router.add_get("/", dashboard)
    admin.router.add_get("/admin.css", stylesheet)
    admin.router.add_get("/login", login_form)
    admin.router.add_post("/login", login_submit)
    admin.router.add_post("/logout", logout)
    admin.router.add_post("/reload", reload_form)
    admin.router.add_get("/api/openapi.json", api_openapi)
    admin.router.add_get("/api/health", api_health)
    admin.router.add_get("/api/auth-backends", api_auth_backends)  # #16
    admin.router.add_get("/api/vendors", api_vendors)
    admin.router.add_get("/api/stats", api_stats)
    admin.router.add_post("/api/reload", api_reload)
    admin.router.add_get("/api/suspensions", api_suspensions)
    admin.router.add_post("/api/sessions/suspend", api_suspend)
    admin.router.add_post("/api/patrons/block", api_block)
    return admin


async def start_admin(main: web.Application) -> web.AppRunner | None:
    """Bind the admin listener when enabled; the caller cleans the runner up on shutdown."""
    settings = main[SETTINGS]
    if not settings.admin.enabled:
        return None
    host, port = settings.admin.listen.host, settings.admin.listen.port
    if not is_loopback(host):
        log.warning("admin_listening_publicly", host=host, port=port)
    hide_server_version()
    runner = web.AppRunner(build_admin_app(main), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("admin_started", host=host, port=port, token_from_env=bool(os.environ.get(TOKEN_ENV)))
    return runner


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- middleware: one boundary, one guard, headers on everything -------------------------


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every admin response, errors included, gets the same protective headers."""
    response.headers.update(SECURITY_HEADERS)
    response.headers["Server"] = SERVER_NAME


@web.middleware
async def boundary(request: web.Request, handler: Any) -> web.StreamResponse:
    """The one place that turns refusals and failures into responses (JSON under /api/)."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except AdminRefused as exc:
        return refusal(request, exc.status_hint, exc.public_message, exc.problems, exc.headers)
    except ClamshellError as exc:
        return refusal(request, exc.status_hint, exc.public_message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return refusal(request, exc.status, exc.reason, headers=allow)
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{frame.filename}:{frame.lineno}"
        log.error("admin_request_failed", error=type(exc).__name__, status=500, where=where)
        return refusal(request, 500, "Something went wrong on our side.")


def refusal(
    request: web.Request,
    status: int,
    message: str,
    problems: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON error under /api/, else a page (the sign-in form for 401)."""
    if request.path.startswith("/api/"):
        body = ErrorOut(error=message, problems=list(problems)).model_dump(mode="json")
        return web.json_response(body, status=status, headers=headers)
    consortium = request.app[MAIN][SETTINGS].consortium_name
    if status == 401:
        return html(login_page(consortium, message), status=status, headers=headers)
    body_html = f'<p class="message" role="alert">{escape(message)}</p><p><a href="/">Back</a></p>'
    return html(layout("Refused", body_html, consortium=consortium), status=status, headers=headers)


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Host shape, cross-site refusal for unsafe methods, then authentication and CSRF."""
    check_host(request)
    unsafe = request.method not in SAFE_METHODS
    origin = f"{request.scheme}://{request.host}"
    headers = request.headers
    if unsafe and is_cross_site(headers.get("Origin"), headers.get("Sec-Fetch-Site"), origin):
        log.info("admin_cross_site_refused", method=request.method)
        raise AdminRefused(403, "Cross-site requests to the admin console are refused.")
    if request.path not in PUBLIC_PATHS:
        via = authenticate(request)
        if unsafe and via == "cookie":
            await require_csrf(request)
    response: web.StreamResponse = await handler(request)
    return response


def check_host(request: web.Request) -> None:
    """One well-formed Host (``[::1]:8081`` too: the admin may listen on IPv6 loopback)."""
    check_framing(request)
    hosts = request.headers.getall("Host", [])
    if len(hosts) == 1 and IPV6_HOST.match(hosts[0]) and request.raw_path.startswith("/"):
        return
    checked_host(request)
