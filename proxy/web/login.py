"""Portal login, logout and menu: EZproxy-compatible starting points.

Contract: ``GET /login?url=<raw URL>`` / ``?qurl=<encoded URL>`` shows the form (or redirects
at once when already signed in or on an auto-login network); ``POST /login`` checks the CSRF
token, throttle, card and licence and starts a session; ``/menu`` lists the databases
licensed to the patron's library. Handlers adapt and execute; decisions are core.login,
core.targets and core.throttle.

A starting URL that does not parse (a port of 65536) is "not one of our databases"
(pentest R22).
Not here: checking the card and throttling (card_check.py), page HTML (pages.py), card
storage (stores/patrons.py), the form body's limits (login_body.py), logout (logout.py).
"""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web

from proxy.core import csrf
from proxy.core.cards import library_for_barcode, normalize_barcode
from proxy.core.clientaddr import IPAddress, IPNetwork, client_address, in_networks
from proxy.core.databases import Database
from proxy.core.hostmap import HostMap, hostname_problem
from proxy.core.login import LoginRefused, Refusal
from proxy.core.menu import build_menu
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex
from proxy.core.settings import Library, Settings
from proxy.core.targets import NotOurDatabase, Target, resolve_target
from proxy.ilsauth.backends import CardCheckUnavailable
from proxy.logconfig import get_logger, truncate_ip
from proxy.web.card_check import check_card, login_keys
from proxy.web.keys import (
    CLOCK,
    HOSTMAP,
    RULEBOOK,
    SECRETS,
    SESSIONS,
    SETTINGS,
    THROTTLE,
    USAGE,
)
from proxy.web.login_body import read_login_form
from proxy.web.logout import logout, logout_page
from proxy.web.page_response import page
from proxy.web.responses import found
from proxy.web.session_cookie import current_session, session_token, set_session_cookie

log = get_logger("login")
CSRF_COOKIE: Final = "clamshell_csrf"


def raw_target(query_string: str) -> str:
    """EZproxy semantics: ``url=`` takes the rest of the query raw; ``qurl=`` is decoded."""
    for i, part in enumerate(query_string.split("&")):
        if part.startswith("url="):
            return "&".join(query_string.split("&")[i:])[4:]
        if part.startswith("qurl="):
            return unquote(part[5:])
    return ""


def resolve(request: web.Request, raw: str) -> Target | None:
    """The starting point, None when none was given; NotOurDatabase when it is not ours."""
    if not raw:
        return None
    try:
        return resolve_target(raw, request.app[RULEBOOK].current.index, request.app[HOSTMAP])
    except NotOurDatabase:
        raise
    except ValueError:  # R22: urlsplit's port 65536, a bad IPv6 bracket…: not ours either
        raise NotOurDatabase("malformed URL") from None


def destination(request: web.Request, target: Target | None) -> str:
    """Where a signed-in patron goes: the target's mapped URL, or the menu."""
    settings = request.app[SETTINGS]
    if target is None:
        return settings.public_url + "/menu"
    return target.mapped_url(request.app[HOSTMAP], settings.public_scheme)


def client_addr(request: web.Request) -> IPAddress | None:
    """The patron's address, trusting X-Forwarded-For only from configured front proxies."""
    return client_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", []),
        request.app[SETTINGS].trusted_proxies,
    )


def client_ip(request: web.Request) -> str:
    """The patron's address as text; '' when unknown."""
    addr = client_addr(request)
    return str(addr) if addr else ""


def client_network(request: web.Request) -> str:
    """The patron's network (/24, /48; 'invalid' when unknown), for the card-sharing check."""
    forwarded = tuple(request.headers.getall("X-Forwarded-For", ()))
    return _network_of(request.remote, forwarded, request.app[SETTINGS].trusted_proxies)


@functools.lru_cache(maxsize=4096)  # once per relayed request; peers repeat
def _network_of(
    peer: str | None, forwarded: tuple[str, ...], trusted: tuple[IPNetwork, ...]
) -> str:
    addr = client_address(peer, forwarded, trusted)
    return truncate_ip(str(addr) if addr else "")


def auto_login_library(request: web.Request) -> Library | None:
    """The library whose on-site network this request comes from (EZproxy AutoLoginIP)."""
    addr = client_addr(request)
    if addr is None:
        return None
    return next(
        (
            lib
            for lib in request.app[SETTINGS].libraries
            if in_networks(addr, lib.auto_login_networks)
        ),
        None,
    )


# How the second field is asked for (#21): its label and the keypad a phone shows.
SECRET_KINDS: Final = {frozenset({"pin"}): "pin", frozenset({"last_name"}): "last_name"}
SECRET_INPUTMODE: Final = {"pin": "numeric", "last_name": "text", "either": "text"}
CSRF_EXPIRED: Final = "csrf"  # the form's own refusal, beside core.login's Refusal values
UNRECOGNISED: Final = Refusal.UNRECOGNISED
UNAVAILABLE: Final = "unavailable"  # #16: the library's card system did not answer


def secret_kind(settings: Settings, library: Library | None) -> str:
    """'pin' or 'last_name' for a known library; when unknown, what all libraries share,
    else 'either'."""
    kinds = {library.login_with} if library else {lib.login_with for lib in settings.libraries}
    return SECRET_KINDS.get(frozenset(kinds or {"pin"}), "either")


def lock_remaining(request: web.Request, card: str) -> timedelta | None:
    """How long this card number / address / network stays locked, if it is (#21: the page
    says when to try again). Locks count typed card numbers whether or not a card exists, so
    saying so reveals nothing about the card; the refusal's words stay a wrong PIN's."""
    keys = login_keys(request, normalize_barcode(card), client_ip(request))
    now = request.app[CLOCK]()
    verdict = request.app[THROTTLE].blocked(keys, now)
    return verdict.until - now if verdict is not None else None


def form_library(settings: Settings, code: str, card: str) -> Library | None:
    """The library the form is for: named by the link (``lib=``), else the card's prefix."""
    named = settings.library(code) if code else None
    if named is not None or not card:
        return named
    return library_for_barcode(normalize_barcode(card), settings.libraries)


def render_form(
    request: web.Request,
    *,
    raw: str,
    target: Target | None,
    nonce: str,
    refusal: LoginRefused | None = None,
    reason: str = "",
    card: str = "",
    library_code: str = "",
    locked_for: timedelta | None = None,
    message: str = "",
    status: int = 200,
) -> web.Response:
    """The login form, with a CSRF token bound to ``nonce`` (set as a cookie); after an error
    the card number typed is kept (never the PIN), and the card's library chooses the label."""
    settings = request.app[SETTINGS]
    library = form_library(settings, library_code, card)
    kind = secret_kind(settings, library)
    response = page(
        request,
        "login.html",
        status=status,
        library=library.code if library else None,
        csrf=csrf.issue(request.app[SECRETS].csrf_key, nonce),
        target=raw,
        card=card,
        secret_kind=kind,
        secret_inputmode=SECRET_INPUTMODE[kind],
        reason=str(refusal.reason) if refusal else reason,
        details=dict(refusal.details) if refusal else {},
        database=target.rule.title if target else "",
        locked_for=locked_for,
        form_library=library.code if library else "",
        message=message,  # a patron-safe text (an error's public_message), translated on show
    )
    response.set_cookie(
        CSRF_COOKIE,
        nonce,
        path="/login",
        httponly=True,
        samesite="Strict",
        secure=settings.public_scheme == "https",
    )
    return response


async def login_get(request: web.Request) -> web.StreamResponse:
    """Show the form, or go straight on when signed in or on an on-site network."""
    raw = raw_target(request.query_string)
    try:
        return await start_or_form(request, raw)
    except NotOurDatabase:
        await count_unknown_host(request, raw)
        raise


async def count_unknown_host(request: web.Request, raw: str) -> None:
    """#17 (EZproxy needhost): a signed-in patron followed a link to a host no rule covers;
    count the host for the day (nothing about the patron)."""
    host = (urlsplit(raw).hostname or "").lower() if raw and len(raw) < 8192 else ""
    if not host or hostname_problem(host) is not None:
        return
    if await current_session(request) is not None:
        request.app[USAGE].unknown_host(request.app[CLOCK]().date(), host)


def count_start(request: web.Request, target: Target | None, library: str) -> None:
    """#17: usage per database where the starting point says which, else per platform."""
    if target is None:
        return
    rule = target.rule
    url = target.origin.url_prefix() + target.path_and_query
    database = request.app[RULEBOOK].current.index.database_for_url(rule, url)
    request.app[USAGE].start(
        request.app[CLOCK]().date(), rule.id, database.id if database else rule.id, library
    )


async def login_named(request: web.Request) -> web.StreamResponse:
    """EZproxy-style ``/login/<database id or title>``: that database's starting URL."""
    found = request.app[RULEBOOK].current.index.database_named(request.match_info["name"])
    if found is None:
        raise NotOurDatabase("no database with that name")
    return await start_or_form(request, found[1].url)


async def start_or_form(request: web.Request, raw: str) -> web.StreamResponse:
    """Redirect a signed-in or on-site patron onwards; otherwise show the login form."""
    target = resolve(request, raw)
    session = await current_session(request)
    if session is not None and (
        target is None or target.rule.licensed_to(session.library, session.ptype)
    ):
        count_start(request, target, session.library)
        return found(destination(request, target))
    library = auto_login_library(request)
    if library is not None and (target is None or target.rule.licensed_to(library.code)):
        return await start_session(request, library.code, None, None, target)
    code = request.query.get("lib", "")  # a library's own link: /login?lib=CODE&url=…
    return render_form(request, raw=raw, target=target, nonce=_new_nonce(), library_code=code)


async def login_post(request: web.Request) -> web.StreamResponse:
    """Check CSRF, throttle, card, PIN and licence; start a session or explain the refusal."""
    form = await read_login_form(request, request.app[SETTINGS].login)
    raw = str(form.get("url", ""))
    target = resolve(request, raw)
    nonce = request.cookies.get(CSRF_COOKIE, "")
    card, code = str(form.get("card", "")), str(form.get("lib", ""))
    if not _csrf_ok(request, nonce, str(form.get("csrf", ""))):
        log.info("login_failed", reason="csrf")
        return render_form(
            request,
            raw=raw,
            target=target,
            nonce=_new_nonce(),
            status=403,
            reason=CSRF_EXPIRED,
            card=card,
            library_code=code,
        )
    try:
        decision = await check_card(
            request, card, str(form.get("pin", "")), target, client_ip(request)
        )
    except CardCheckUnavailable as exc:  # #16: the ILS is down or slow; the form stays usable
        log.info("login_failed", reason="unavailable")
        return render_form(
            request,
            raw=raw,
            target=target,
            nonce=nonce,
            status=503,
            reason=UNAVAILABLE,
            message=exc.public_message,
            card=card,
            library_code=code,
        )
    if isinstance(decision, LoginRefused):
        log.info("login_failed", reason=str(decision.reason))
        return render_form(
            request,
            raw=raw,
            target=target,
            nonce=nonce,
            status=403,
            refusal=decision,
            card=card,
            library_code=code,
            locked_for=lock_remaining(request, card) if decision.reason is UNRECOGNISED else None,
        )
    log.info("login_succeeded", library=decision.library)
    return await start_session(
        request, decision.library, decision.ptype, decision.patron_key, target
    )


async def start_session(
    request: web.Request,
    library: str,
    ptype: str | None,
    patron_key: str | None,
    target: Target | None,
) -> web.StreamResponse:
    """A new session (never a pre-login id), its cookie, and the redirect onwards."""
    old = session_token(request)
    if old is not None:
        await request.app[SESSIONS].delete(old)
    token, _ = await request.app[SESSIONS].create(
        library=library,
        ptype=ptype,
        patron_key=patron_key,
        now=request.app[CLOCK](),
        max_per_patron=request.app[SETTINGS].sessions.max_per_card,
    )
    count_start(request, target, library)
    redirect = found(destination(request, target))
    set_session_cookie(redirect, token, request.app[SETTINGS])
    redirect.del_cookie(CSRF_COOKIE, path="/login")
    return redirect


async def menu(request: web.Request) -> web.StreamResponse:
    """The databases the patron's library licenses, A–Z, filtered by ``?q=`` (no JavaScript
    needed); with ``menu.public`` every database before login. A database whose link cannot
    be built is left out and logged, never a 404 for the page (#17)."""
    session = await current_session(request)
    settings = request.app[SETTINGS]
    if session is None and not settings.menu.public:
        return found("/login")
    index = request.app[RULEBOOK].current.index
    listed = build_menu(
        index.rules,
        library=session.library if session else None,
        ptype=session.ptype if session else None,
        link_for=functools.partial(menu_link, index, request.app[HOSTMAP]),
        query=request.query.get("q", ""),
    )
    for database, why in listed.skipped:
        log.warning("menu_entry_skipped", database=database, error=why)
    library = settings.library(session.library) if session else None
    shown = library.name if library else (session.library if session else "")
    return page(
        request,
        "menu.html",
        library=session.library if session else None,
        library_name=shown,
        databases=[(e.title, e.link, e.description) for e in listed.entries],
        query=request.query.get("q", ""),
        signed_in=session is not None,
    )


def menu_link(index: RuleIndex, hostmap: HostMap, rule: VendorRule, db: Database) -> str:
    """``/login/<database id>`` once its starting URL resolves to a rule (ValueError if not)."""
    target = resolve_target(db.url, index, hostmap)  # NotOurDatabase is a ValueError
    if target.rule.id != rule.id:
        raise ValueError(f"its starting URL is served by rule {target.rule.id!r}")
    return f"/login/{quote(db.id, safe='')}"


def login_url_for(public_url: str, vendor_url: str) -> str:
    """``/login?qurl=…`` for a vendor URL (used by the relay when there is no session)."""
    return f"{public_url}/login?qurl={quote(vendor_url, safe='')}"


def add_routes(app: web.Application) -> None:
    """Register login, logout and menu."""
    app.router.add_get("/login", login_get)
    app.router.add_get("/login/{name}", login_named)
    app.router.add_post("/login", login_post)
    app.router.add_get("/logout", logout_page)
    app.router.add_post("/logout", logout)
    app.router.add_get("/menu", menu)


def _csrf_ok(request: web.Request, nonce: str, token: str) -> bool:
    settings = request.app[SETTINGS]
    if csrf.is_cross_site(
        request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), settings.public_url
    ):
        return False
    return csrf.verify(request.app[SECRETS].csrf_key, nonce, token)


def _new_nonce() -> str:
    return secrets.token_urlsafe(24)
