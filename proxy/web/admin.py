"""The admin console: its own aiohttp app on its own (loopback) listener, sharing the main app.

Contract: ``build_admin_app(main)`` returns an app that reads the main app's resources (rules,
sessions, stats, suspensions, clock) through ``main[KEY]`` and owns none of them;
``start_admin(main)`` binds ``settings.admin.listen`` when enabled (logging
``admin_listening_publicly`` off loopback) and returns the runner for the caller to clean up.
Every path but ``/login``, ``/logout`` and ``/admin.css`` needs the admin token, as
``Authorization: Bearer <token>`` or the HttpOnly SameSite=Strict cookie the login form sets,
compared in constant time; otherwise 401 with ``WWW-Authenticate: Bearer``. Any method but
GET/HEAD is refused with 403 when cross-site (Origin / Sec-Fetch-Site, core/csrf.py), and, when
authenticated by the cookie, without the page's CSRF token. Wrong method: 405. Every response
carries a strict CSP (no script at all), ``X-Frame-Options: DENY``, no referrer, no caching.
The token is ``$CLAMSHELL_ADMIN_TOKEN`` when set (32+ URL-safe characters), else the unpadded
URL-safe base64 of the 32 random bytes in ``data_dir/admin.token`` (created 0600 on first use);
an admin prints it with ``basenc --base64url data/admin.token | tr -d =`` or ``admin_token()``.
Privacy: only aggregates, rule files and pseudonymous session hashes are shown; no endpoint can
name a patron, a card, a session token or what anyone read (DESIGN P3).
Not here: HTML and the SVG chart (admin_pages.py), the reload itself (rulebook.py), counting
(core/usage.py), binding the patron listener and signals (server.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from html import escape
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypeVar, runtime_checkable

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from proxy.abuse_report import CannotTrace, block_by_pseudonym
from proxy.core.csrf import is_cross_site
from proxy.core.settings import Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.rulebook import ReloadResult, Rulebook
from proxy.secretfiles import read_or_create_secret
from proxy.stores.suspensions import Suspension, Suspensions
from proxy.web.admin_pages import ADMIN_CSS, DashboardView, dashboard_page, layout, login_page
from proxy.web.errors import checked_host
from proxy.web.keys import (
    CLOCK,
    EPOCHS,
    REGISTRY,
    RULEBOOK,
    SESSIONS,
    SETTINGS,
    STATS,
    SUSPENSIONS,
)

log = get_logger("admin")

TOKEN_ENV: Final = "CLAMSHELL_ADMIN_TOKEN"  # noqa: S105 — a variable name
TOKEN_FILE: Final = "admin.token"  # noqa: S105 — a file name
TOKEN_SHAPE: Final = re.compile(r"^[A-Za-z0-9._~-]{32,256}$")  # safe in a header and a cookie
COOKIE: Final = "clamshell_admin"
PUBLIC_PATHS: Final = frozenset({"/login", "/logout", "/admin.css"})
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})  # RFC 9110 §9.2.1: the rest may change state
CHART_DAYS: Final = 30
MAX_RANGE_DAYS: Final = 366
TOP_HOSTS_PER_VENDOR: Final = 5
IPV6_HOST: Final = re.compile(r"^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")  # RFC 3986 IP-literal
ISO_DAY: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
FILTER_MAX: Final = 64
STATS_PARAMS: Final = frozenset({"from", "to", "vendor", "library"})
STAFF_LIMIT: Final = "staff"
PORTAL_CSS: Final = Path(__file__).parent / "static" / "portal.css"
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
CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="clamshell-admin"'}


class AdminTokenError(ClamshellError):
    """``CLAMSHELL_ADMIN_TOKEN`` is set but too short or has unsafe characters."""


class AdminRefused(ClamshellError):
    """A request the console refuses, with its status, message and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        problems: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_hint, self.public_message = status, message
        self.problems, self.headers = list(problems), dict(headers or {})


@dataclass(frozen=True, slots=True)
class AdminAuth:
    """The admin token and the form CSRF token derived from it."""

    token: str

    @property
    def csrf(self) -> str:
        """An HMAC of a fixed label under the token: only a holder of the token can know it."""
        mac = hmac.digest(self.token.encode(), b"clamshell-admin-csrf", hashlib.sha256)
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def accepts(self, presented: object, *, expected: str | None = None) -> bool:
        """Constant-time comparison with the token (or with ``expected``)."""
        if not isinstance(presented, str):
            return False
        want = self.token if expected is None else expected
        return hmac.compare_digest(_raw(presented), _raw(want))


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # compare_digest refuses non-ASCII str


@runtime_checkable
class LiveSessionKeys(Protocol):
    """What a session store needs for staff suspensions by pseudonymous hash."""

    async def live_keys(self, now: datetime) -> list[str]: ...


MAIN: web.AppKey[web.Application] = web.AppKey("admin_main", web.Application)
AUTH: web.AppKey[AdminAuth] = web.AppKey("admin_auth", AdminAuth)
STYLES: web.AppKey[str] = web.AppKey("admin_styles", str)

# --- token, app, listener ---------------------------------------------------------------


def admin_token(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """The admin token: from the environment, else derived from ``data_dir/admin.token``."""
    given = environ.get(TOKEN_ENV, "").strip()
    if given:
        if not TOKEN_SHAPE.match(given):
            raise AdminTokenError(
                f"{TOKEN_ENV} must be 32-256 characters from A-Z a-z 0-9 . _ ~ - "
                "(e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        return given
    raw = read_or_create_secret(Path(settings.data_dir) / TOKEN_FILE)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def build_admin_app(
    main: web.Application, *, environ: Mapping[str, str] = os.environ
) -> web.Application:
    """The admin app over ``main``'s resources (call after ``build_app``)."""
    admin = web.Application(middlewares=[boundary, guard], client_max_size=64 * 1024)
    admin[MAIN] = main
    admin[AUTH] = AdminAuth(admin_token(main[SETTINGS], environ))
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
    hosts = request.headers.getall("Host", [])
    if len(hosts) == 1 and IPV6_HOST.match(hosts[0]) and request.raw_path.startswith("/"):
        return
    checked_host(request)


def authenticate(request: web.Request) -> Literal["bearer", "cookie"]:
    """Which credential matched; an ``Authorization`` header, if sent, must be the one."""
    auth = request.app[AUTH]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, presented = header.strip().partition(" ")
        if scheme.lower() == "bearer" and auth.accepts(presented.strip()):
            return "bearer"
        raise AdminRefused(401, "The bearer token is not the admin token.", headers=CHALLENGE)
    if auth.accepts(request.cookies.get(COOKIE)):
        return "cookie"
    raise AdminRefused(401, "Sign in with the admin token.", headers=CHALLENGE)


async def require_csrf(request: web.Request) -> None:
    """A cookie-authenticated change must carry the page's token (form field or header)."""
    presented: object = request.headers.get("X-CSRF-Token")
    if presented is None and request.content_type == "application/x-www-form-urlencoded":
        presented = (await request.post()).get("csrf")
    auth = request.app[AUTH]
    if not auth.accepts(presented, expected=auth.csrf):
        raise AdminRefused(403, "The form is out of date; reload the page and try again.")


# --- pages ------------------------------------------------------------------------------


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
    """Check the pasted token; on success set the HttpOnly, SameSite=Strict cookie."""
    auth = request.app[AUTH]
    token = (await request.post()).get("token")
    if not auth.accepts(token.strip() if isinstance(token, str) else None):
        log.info("admin_login_failed")
        raise AdminRefused(401, "That is not the admin token.", headers=CHALLENGE)
    response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie(
        COOKIE, auth.token, httponly=True, samesite="Strict", secure=request.secure, path="/"
    )
    log.info("admin_logged_in")
    return response


async def logout(request: web.Request) -> web.Response:
    """Forget the cookie."""
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(COOKIE, path="/")
    return response


async def reload_form(request: web.Request) -> web.Response:
    """The dashboard's "Reload rules" button; the result shows in the reload table."""
    await request.app[MAIN][RULEBOOK].reload_async()
    return web.Response(status=303, headers={"Location": "/#reloads"})


async def dashboard(request: web.Request) -> web.Response:
    """The HTML dashboard."""
    main = request.app[MAIN]
    now = main[CLOCK]()
    days = tuple(now.date() - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1))
    book = main[RULEBOOK]
    view = DashboardView(
        consortium=main[SETTINGS].consortium_name,
        csrf=request.app[AUTH].csrf,
        active_sessions=await main[SESSIONS].count_active(now),
        vendors=vendor_views(book),
        reloads=[reload_view(r) for r in reversed(book.history)],
        days=days,
        usage=await usage_rows(main, days[0], days[-1]),
        third_parties=await third_party_rows(main, days[0], days[-1]),
        suspensions=[suspension_view(s) for s in main[SUSPENSIONS].list_active(now)],
    )
    return html(dashboard_page(view))


# --- JSON API ---------------------------------------------------------------------------


def as_json(model: BaseModel, *, status: int = 200) -> web.Response:
    """A JSON response from a model (by alias: ``from``, not ``from_``)."""
    return web.json_response(model.model_dump(mode="json", by_alias=True), status=status)


async def api_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(openapi_document())


async def api_health(request: web.Request) -> web.Response:
    """Liveness, rule count, last reload, active sessions."""
    main = request.app[MAIN]
    now, book = main[CLOCK](), main[RULEBOOK]
    active = await main[SESSIONS].count_active(now)
    return as_json(
        HealthOut(
            status="ok",
            now=now,
            rule_count=len(book.current.rules),
            last_reload_ok=book.last_result.ok,
            active_sessions=active,
        )
    )


async def api_vendors(request: web.Request) -> web.Response:
    """The vendor rules in use and the last reload."""
    book = request.app[MAIN][RULEBOOK]
    return as_json(
        VendorsOut(vendors=vendor_views(book), last_reload=reload_view(book.last_result))
    )


async def api_stats(request: web.Request) -> web.Response:
    """Aggregate usage, logins and third-party hosts for a period."""
    main = request.app[MAIN]
    q = parse_stats_query(request.query, main[CLOCK]().date())
    usage = await usage_rows(main, q.start, q.end, vendor=q.vendor, library=q.library)
    logins = await asyncio.to_thread(main[STATS].logins, q.start, q.end)
    third = await third_party_rows(main, q.start, q.end, per_vendor=None)
    body = StatsOut(
        from_=q.start,
        to=q.end,
        usage=usage,
        logins=[
            LoginCountOut(day=d, library=lib, outcome=o, count=n)
            for d, lib, o, n in logins
            if q.library in (None, lib)
        ],
        third_parties=[t for t in third if q.vendor in (None, t.vendor)],
    )
    return as_json(body)


async def api_reload(request: web.Request) -> web.Response:
    """Reload the rules: 200 with the result, or 422 listing the problems (old rules kept)."""
    result = await request.app[MAIN][RULEBOOK].reload_async()
    return as_json(reload_view(result), status=200 if result.ok else 422)


async def api_suspensions(request: web.Request) -> web.Response:
    """Sessions suspended now, by pseudonymous hash."""
    main = request.app[MAIN]
    active = main[SUSPENSIONS].list_active(main[CLOCK]())
    return as_json(SuspensionsOut(suspensions=[suspension_view(s) for s in active]))


async def api_suspend(request: web.Request) -> web.Response:
    """Suspend a live session by its pseudonymous hash (never by card or cookie)."""
    main = request.app[MAIN]
    wanted = parse_body(SuspendIn, await request.read())
    if wanted.vendor not in {rule.id for rule in main[RULEBOOK].current.rules}:
        raise AdminRefused(404, f"There is no vendor rule {wanted.vendor!r}.")
    store = main[SESSIONS]
    if not isinstance(store, LiveSessionKeys):
        raise AdminRefused(
            501,
            "This session store cannot find a session by its hash "
            "(it has no live_keys); suspend it from the abuse limits instead.",
        )
    now = main[CLOCK]()
    keys = await store.live_keys(now)
    entry = await asyncio.to_thread(suspend_by_hash, main[SUSPENSIONS], wanted, keys, now)
    if entry is None:
        raise AdminRefused(404, "No live session has this hash (it may have ended).")
    log.info("session_suspended_by_staff", vendor=wanted.vendor, session_hash=entry.session_hash)
    return as_json(suspension_view(entry))


async def api_block(request: web.Request) -> web.Response:
    """Answer a vendor's abuse report: block the card behind a pseudonym, end its sessions."""
    main = request.app[MAIN]
    wanted = parse_body(BlockIn, await request.read())
    try:
        result = await asyncio.to_thread(
            block_by_pseudonym,
            registry=main[REGISTRY],
            epochs=main[EPOCHS],
            index=main[RULEBOOK].current.index,
            vendor_id=wanted.vendor,
            reported=wanted.pseudonym,
            day=wanted.day,
        )
    except CannotTrace as exc:
        raise AdminRefused(404, exc.public_message) from None
    ended = await main[SESSIONS].delete_by_patron(result.patron_key)
    return as_json(BlockOut(library=result.library, case=result.case, sessions_ended=ended))


def suspend_by_hash(
    book: Suspensions, wanted: SuspendIn, keys: list[str], now: datetime
) -> Suspension | None:
    """Find the session (one keyed hash per live session) and suspend it; in a worker thread."""
    key = book.key_for_hash(wanted.session_hash, keys)
    return None if key is None else book.suspend(key, wanted.vendor, STAFF_LIMIT, now)


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], raw: bytes) -> M:
    """A JSON body as ``model``, or 400 naming each problem (never echoing the input)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise AdminRefused(400, "The request body is not valid.", problems=problems) from None


# --- the API's shapes, views of the main app's resources, the OpenAPI document ----------
# (one block: it can move to its own module, admin_api.py, without touching the rest)


class Out(BaseModel):
    """Base of every JSON body: immutable, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ErrorOut(Out):
    """Why a request was refused."""

    error: str
    problems: list[str] = []


class ReloadOut(Out):
    """One rules load attempt; when ``ok`` is false the previous rules stay in use."""

    at: datetime
    ok: bool
    rule_count: int
    problems: list[str]


class VendorOut(Out):
    """One vendor rule in use and the state of its file."""

    id: str
    title: str
    hosts: int
    domains: int
    source: str
    libraries: Literal["all"] | list[str]
    status: Literal["ok", "file_has_errors"]


class VendorsOut(Out):
    """The rules in use and the last reload."""

    vendors: list[VendorOut]
    last_reload: ReloadOut


class HealthOut(Out):
    """Liveness and the numbers a monitor wants."""

    status: Literal["ok"]
    now: datetime
    rule_count: int
    last_reload_ok: bool
    active_sessions: int


class UsageRowOut(Out):
    """Aggregate usage for one (day, vendor, member library)."""

    day: date
    vendor: str
    library: str
    sessions: int
    uniques: int
    requests: int
    bytes: int
    downloads: int


class LoginCountOut(Out):
    """Logins for one (day, member library, outcome)."""

    day: date
    library: str
    outcome: str
    count: int


class ThirdPartyOut(Out):
    """A third-party host referenced by a vendor's pages, summed over the period."""

    vendor: str
    host: str
    referenced: int
    blocked: int


class StatsOut(Out):
    """Aggregate statistics for a period (inclusive, UTC days)."""

    from_: date = Field(alias="from")
    to: date
    usage: list[UsageRowOut]
    logins: list[LoginCountOut]
    third_parties: list[ThirdPartyOut]


class SuspensionOut(Out):
    """A suspended session, by its pseudonymous hash only."""

    session_hash: str
    vendor: str
    limit: str
    since: datetime


class SuspensionsOut(Out):
    """Sessions suspended now."""

    suspensions: list[SuspensionOut]


class BlockIn(Out):
    """A vendor's abuse report: its service, the pseudonym it saw, the day."""

    vendor: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    pseudonym: str = Field(pattern=r"^[a-zA-Z2-7]{26}$")
    day: date


class BlockOut(Out):
    """What staff may know: the member library and a case number, never the card."""

    library: str
    case: str
    sessions_ended: int


class SuspendIn(Out):
    """Suspend the live session whose pseudonymous hash is given."""

    session_hash: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    vendor: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


# --- reading the main app's resources ---------------------------------------------------


def reload_view(result: ReloadResult) -> ReloadOut:
    """A reload result as JSON."""
    return ReloadOut(
        at=result.at, ok=result.ok, rule_count=result.rule_count, problems=list(result.problems)
    )


def vendor_views(book: Rulebook) -> list[VendorOut]:
    """The rules in use; a rule whose file failed the last reload is flagged (old one kept)."""
    last, sources = book.last_result, book.current.sources
    failing = [] if last.ok else list(last.problems)
    views = []
    for rule in book.current.rules:
        source = sources.get(rule.id, "")
        broken = any(p.startswith(source + ":") for p in failing)
        libraries = rule.libraries if rule.libraries == "all" else list(rule.libraries)
        views.append(
            VendorOut(
                id=rule.id,
                title=rule.title,
                hosts=len(rule.hosts),
                domains=len(rule.domains),
                source=source,
                libraries=libraries,
                status="file_has_errors" if broken else "ok",
            )
        )
    return views


def suspension_view(entry: Suspension) -> SuspensionOut:
    """Only the four pseudonymous fields, whatever else the object carries."""
    return SuspensionOut(
        session_hash=entry.session_hash, vendor=entry.vendor, limit=entry.limit, since=entry.since
    )


async def usage_rows(
    main: web.Application,
    start: date,
    end: date,
    *,
    vendor: str | None = None,
    library: str | None = None,
) -> list[UsageRowOut]:
    """Daily aggregate rows from the stats store (read in a worker thread)."""
    rows = await asyncio.to_thread(main[STATS].daily, start, end, vendor=vendor, library=library)
    return [UsageRowOut.model_validate(row, from_attributes=True) for row in rows]


async def third_party_rows(
    main: web.Application, start: date, end: date, *, per_vendor: int | None = TOP_HOSTS_PER_VENDOR
) -> list[ThirdPartyOut]:
    """Third-party hosts by vendor, most referenced first, at most ``per_vendor`` each."""
    rows = await asyncio.to_thread(main[STATS].third_parties, start, end, 500)
    seen: dict[str, int] = {}
    out = []
    for vendor, host, referenced, blocked in rows:
        seen[vendor] = seen.get(vendor, 0) + 1
        if per_vendor is None or seen[vendor] <= per_vendor:
            out.append(
                ThirdPartyOut(vendor=vendor, host=host, referenced=referenced, blocked=blocked)
            )
    return sorted(out, key=lambda t: (t.vendor, -t.referenced, t.host))


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """A checked ``/api/stats`` query."""

    start: date
    end: date
    vendor: str | None
    library: str | None


def parse_stats_query(query: Mapping[str, str], today: date) -> StatsQuery:
    """``from``/``to`` (default: the last 30 days), at most 366 days; 400 on anything else."""
    unknown = sorted(set(query) - STATS_PARAMS)
    if unknown:  # a typo such as ?form= must not silently widen the period
        raise AdminRefused(400, f"Unknown query parameter(s): {', '.join(map(repr, unknown))}.")
    end = _day_param(query, "to") or today
    start = _day_param(query, "from") or date.fromordinal(max(1, end.toordinal() - CHART_DAYS + 1))
    if start > end:
        raise AdminRefused(400, f"'from' ({start}) is after 'to' ({end}).")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise AdminRefused(400, f"The period may span at most {MAX_RANGE_DAYS} days.")
    return StatsQuery(start, end, _filter_param(query, "vendor"), _filter_param(query, "library"))


def _day_param(query: Mapping[str, str], name: str) -> date | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        if ISO_DAY.match(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise AdminRefused(400, f"'{name}' must be a date like 2026-11-29.")


def _filter_param(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is not None and not 1 <= len(value) <= FILTER_MAX:
        raise AdminRefused(400, f"'{name}' must be 1 to {FILTER_MAX} characters.")
    return value


# --- the OpenAPI document ---------------------------------------------------------------

REASONS: Final = {
    400: "The request is not valid.",
    401: "The admin token is missing or wrong.",
    403: "Cross-site request refused.",
    404: "No such vendor or live session.",
    501: "The session store cannot look sessions up by hash.",
}


def _op(summary: str, ok: str, *errors: int, **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _content(ok, "OK")}
    for status in (*errors, 401):
        responses[str(status)] = _content("ErrorOut", REASONS[status])
    return {
        "summary": summary,
        "operationId": summary.lower().replace(" ", "_"),
        "responses": responses,
        **extra,
    }


def _content(model: str, description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The API as OpenAPI 3.1, components generated from the models above (do not mutate)."""
    outs = (
        ErrorOut,
        HealthOut,
        VendorsOut,
        StatsOut,
        ReloadOut,
        SuspensionOut,
        SuspensionsOut,
        BlockOut,
    )
    _, schemas = models_json_schema(
        [*((m, "serialization") for m in outs), (SuspendIn, "validation"), (BlockIn, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "clamshell admin API",
            "version": "1",
            "description": "Aggregates and pseudonymous handles only: nothing here names "
            "a patron or what anyone read.",
        },
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": _paths(),
    }


def _paths() -> dict[str, Any]:
    reload_op = _op("Reload rules", "ReloadOut", 403)
    reload_op["responses"]["422"] = _content("ReloadOut", "Rules invalid; old rules kept.")
    stats_params = [
        _query("from", "First day (UTC), default 29 days before 'to'.", format="date"),
        _query("to", "Last day (UTC), default today.", format="date"),
        _query("vendor", "Only this vendor id.", minLength=1, maxLength=FILTER_MAX),
        _query("library", "Only this member library.", minLength=1, maxLength=FILTER_MAX),
    ]
    body = {"required": True, "content": _content("SuspendIn", "")["content"]}
    suspend = _op("Suspend session", "SuspensionOut", 400, 403, 404, 501, requestBody=body)
    block_body = {"required": True, "content": _content("BlockIn", "")["content"]}
    block = _op(
        "Block the card behind a pseudonym", "BlockOut", 400, 403, 404, requestBody=block_body
    )
    return {
        "/api/health": {"get": _op("Health", "HealthOut")},
        "/api/vendors": {"get": _op("List vendors", "VendorsOut")},
        "/api/stats": {"get": _op("Usage statistics", "StatsOut", 400, parameters=stats_params)},
        "/api/reload": {"post": reload_op},
        "/api/suspensions": {"get": _op("List suspensions", "SuspensionsOut")},
        "/api/sessions/suspend": {"post": suspend},
        "/api/patrons/block": {"post": block},
    }
