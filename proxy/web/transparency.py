"""The transparency page (``/privacy`` on the portal): what was sent on the patron's behalf.

Contract: ``GET /privacy`` shows, for the current session only, each vendor the proxy relayed
to: the header names sent (values only for harmless ones, core/disclosure.py), the pseudonym
and how often it changes, the names (never values) of the cookies held server-side, and how
many third-party references were blocked on its pages; then what the consortium keeps,
generated from the running settings. Without a session it shows only the latter.
``POST /privacy/forget`` (one vendor, or all) drops the session's vendor cookies;
``POST /privacy/end`` ends every session of the card (or this one, card-less). Both need a
CSRF token bound to the session and a same-site request (Origin / Sec-Fetch-Site): a
vendor's page cannot post them, and cannot frame or read this page (portal host only,
``frame-ancestors 'none'``, no CORS). Nothing here writes anything; values come from memory
that dies with the session, and nothing from the page is logged but the event name.
Not here: recording what was sent (web/relay_request.py → core/disclosure.py).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from proxy.core import csrf
from proxy.core.keyedhash import keyed_hash
from proxy.core.rules import VendorRule
from proxy.core.settings import Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.stores.sessions import Session
from proxy.web.i18n import N_
from proxy.web.keys import CLOCK, DISCLOSURES, JARS, RULEBOOK, SECRETS, SESSIONS, SETTINGS
from proxy.web.page_response import page
from proxy.web.responses import found
from proxy.web.session_cookie import clear_session_cookie, current_session, session_token

log = get_logger("privacy")


class ActionRefused(ClamshellError):
    """A transparency-page button posted cross-site, without a session or a valid token."""

    status_hint = 403
    public_message = N_("This button had expired. Please open the privacy page and try again.")


CSRF_PURPOSE: Final = "privacy-csrf"  # the token is bound to the session and to this page


def keeps(settings: Settings) -> dict[str, Any]:
    """What the consortium keeps, from the running settings (never a fixed text)."""
    return {
        "stats_days": settings.retention.daily_stats_days,
        "epoch_days": settings.retention.epoch_key_days,
        "abuse_days": settings.retention.abuse_event_days,
        "access_log": settings.access_log,
        "access_log_paths": settings.access_log and settings.access_log_format != "no_path",
        "idle_minutes": settings.sessions.idle_minutes,
        "lifetime_hours": settings.sessions.lifetime_hours,
    }


def vendor_rows(request: web.Request, session: Session) -> list[dict[str, Any]]:
    """One row per vendor this session reached or holds cookies for."""
    app = request.app
    rules: dict[str, VendorRule] = {r.id: r for r in app[RULEBOOK].current.rules}
    sent = app[DISCLOSURES].of(session.key)
    cookies = app[JARS].names(session.key, app[CLOCK]())
    rows = []
    for vendor in sorted(set(sent) | {v for v, names in cookies.items() if names}):
        rule, facts = rules.get(vendor), sent.get(vendor)
        rows.append(
            {
                "id": vendor,
                "title": rule.title if rule else vendor,
                "headers": sorted(facts.header_names) if facts else [],
                "values": dict(sorted(facts.shown_values.items())) if facts else {},
                "pseudonym": facts.pseudonym if facts else None,
                "rotate": rule.pseudonym.rotate if rule and rule.pseudonym else None,
                "blocked": facts.blocked_references if facts else 0,
                "cookies": cookies.get(vendor, []),
            }
        )
    return rows


def token_for(request: web.Request, session: Session) -> str:
    """The CSRF token of this session's buttons."""
    return csrf.issue(request.app[SECRETS].csrf_key, csrf_nonce(request, session))


def csrf_nonce(request: web.Request, session: Session) -> str:
    """A nonce derived from the session (the page never shows the session's own key)."""
    return keyed_hash(request.app[SECRETS].csrf_key, CSRF_PURPOSE, session.key)


async def privacy_page(request: web.Request) -> web.Response:
    """GET /privacy."""
    session = await current_session(request)
    settings = request.app[SETTINGS]
    return page(
        request,
        "privacy.html",
        library=session.library if session else None,
        signed_in=session is not None,
        vendors=vendor_rows(request, session) if session else [],
        token=token_for(request, session) if session else "",
        keeps=keeps(settings),
        done=request.query.get("done", ""),
    )


async def checked_post(request: web.Request) -> tuple[Session | None, dict[str, str]]:
    """The session and form of a same-site POST with this session's token, or (None, {})."""
    settings = request.app[SETTINGS]
    form = {k: str(v) for k, v in (await request.post()).items()}
    session = await current_session(request)
    cross = csrf.is_cross_site(
        request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), settings.public_url
    )
    if session is None or cross:
        return None, {}
    if not csrf.verify(
        request.app[SECRETS].csrf_key, csrf_nonce(request, session), form.get("csrf")
    ):
        return None, {}
    return session, form


async def forget_cookies(request: web.Request) -> web.StreamResponse:
    """POST /privacy/forget: drop one vendor's cookies (``vendor=ID``) or all of them."""
    session, form = await checked_post(request)
    if session is None:
        log.info("privacy_action_refused", action="forget")
        raise ActionRefused()
    jars, vendor = request.app[JARS], form.get("vendor", "")
    if vendor:
        jars.drop_vendor(session.key, vendor)
    else:
        for name in list(jars.names(session.key, request.app[CLOCK]())):
            jars.drop_vendor(session.key, name)
    log.info("vendor_cookies_forgotten", scope="vendor" if vendor else "all")
    return found("/privacy?done=forgot")


async def end_everywhere(request: web.Request) -> web.StreamResponse:
    """POST /privacy/end: end every session of this card (this one when card-less)."""
    session, _ = await checked_post(request)
    if session is None:
        log.info("privacy_action_refused", action="end")
        raise ActionRefused()
    sessions, token = request.app[SESSIONS], session_token(request)
    if session.patron_key:
        await sessions.delete_by_patron(session.patron_key)
    if token is not None:
        await sessions.delete(token)
    log.info("sessions_ended_everywhere")
    response = found("/logout")
    clear_session_cookie(response, request.app[SETTINGS])
    return response


def add_routes(app: web.Application) -> None:
    """Register the transparency page and its buttons."""
    app.router.add_get("/privacy", privacy_page)
    app.router.add_post("/privacy/forget", forget_cookies)
    app.router.add_post("/privacy/end", end_everywhere)
