"""The admin JSON API under ``/api/``: health, vendors, stats, reload, suspensions, blocks.

Contract: each handler reads the main app's resources through ``request.app[MAIN]``, answers
with one models.py body via ``as_json`` (by alias), and refuses with ``AdminRefused``:
400 for a body (``parse_body``, naming each problem, never echoing the input) or a
``/api/stats`` query (``parse_stats_query``: unknown parameters, a bad or reversed period, more
than 366 days, an over-long filter) that is not valid, 404 for an unknown vendor or session,
501 when the session store cannot look a session up by hash. ``POST /api/reload`` answers 422
with the problems when the new rules are refused (the old ones stay). Blocking store calls run
in a worker thread. Privacy: sessions are named only by their pseudonymous hash (DESIGN P3).
Not here: authentication and refusal rendering (auth.py, app.py), the models
(models.py), the OpenAPI document (openapi.py), the reload itself (rulebook.py),
tracing a pseudonym to a card (abuse_report.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Protocol, TypeVar, runtime_checkable

from aiohttp import web
from pydantic import BaseModel, ValidationError

from proxy.abuse_report import BlockDetails, CannotTrace, block_by_pseudonym, block_expiry
from proxy.logconfig import get_logger
from proxy.stores.backends import broadcast_reload
from proxy.stores.suspensions import Suspension, Suspensions
from proxy.web.admin.auth import AUDIT, MAIN, AdminRefused, audit, principal_of
from proxy.web.admin.models import (
    FILTER_MAX,
    AuditEntryOut,
    AuditOut,
    BlockIn,
    BlockOut,
    HealthOut,
    LoginCountOut,
    StatsOut,
    SuspendIn,
    SuspensionsOut,
    VendorsOut,
)
from proxy.web.admin.openapi import openapi_document
from proxy.web.admin.views import (
    CHART_DAYS,
    reload_view,
    suspension_view,
    third_party_rows,
    usage_rows,
    vendor_views,
)
from proxy.web.keys import (
    BLOCKS,
    CLOCK,
    EPOCHS,
    REGISTRY,
    RULEBOOK,
    SESSIONS,
    STATE,
    STATS,
    SUSPENSIONS,
    THROTTLE,
)

log = get_logger("admin")

MAX_RANGE_DAYS: Final = 366
ISO_DAY: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
STATS_PARAMS: Final = frozenset({"from", "to", "vendor", "library"})
STAFF_LIMIT: Final = "staff"


@runtime_checkable
class LiveSessionKeys(Protocol):
    """What a session store needs for staff suspensions by pseudonymous hash."""

    async def live_keys(self, now: datetime) -> list[str]: ...


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
            login_alarms_raised=main[THROTTLE].alarms_raised,  # R4
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
    main, who = request.app[MAIN], principal_of(request)
    q = parse_stats_query(request.query, main[CLOCK]().date())
    if q.library is not None and not who.sees(q.library):
        raise AdminRefused(403, "Your account does not cover this library.")
    usage = await usage_rows(main, q.start, q.end, vendor=q.vendor, library=q.library)
    logins = await asyncio.to_thread(main[STATS].logins, q.start, q.end)
    # Third-party counts are consortium-wide: library staff do not get them.
    third = [] if who.scoped else await third_party_rows(main, q.start, q.end, per_vendor=None)
    body = StatsOut(
        from_=q.start,
        to=q.end,
        usage=[u for u in usage if who.sees(u.library)],
        logins=[
            LoginCountOut(day=d, library=lib, outcome=o, count=n)
            for d, lib, o, n in logins
            if q.library in (None, lib) and who.sees(lib)
        ],
        third_parties=[t for t in third if q.vendor in (None, t.vendor)],
    )
    return as_json(body)


async def api_reload(request: web.Request) -> web.Response:
    """Reload the rules: 200 with the result, or 422 listing the problems (old rules kept)."""
    result = await request.app[MAIN][RULEBOOK].reload_async()
    await broadcast_reload(request.app[MAIN][STATE])  # #15: every node reloads
    await audit(request, "rules_reloaded", detail="ok" if result.ok else "refused")
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
    await audit(request, "session_suspended", detail=f"{wanted.vendor} {entry.session_hash}")
    return as_json(suspension_view(entry))


async def api_block(request: web.Request) -> web.Response:
    """Answer a vendor's abuse report: put the card behind a pseudonym on the block list
    (which no ILS import undoes, #18) and end its sessions."""
    main = request.app[MAIN]
    wanted = parse_body(BlockIn, await request.read())
    details = BlockDetails(
        now=main[CLOCK](),
        by=wanted.by,
        case=wanted.case,
        reason=wanted.reason,
        expires=block_expiry(wanted.expires),
    )
    try:
        result = await asyncio.to_thread(
            block_by_pseudonym,
            registry=main[REGISTRY],
            epochs=main[EPOCHS],
            blocks=main[BLOCKS],
            index=main[RULEBOOK].current.index,
            vendor_id=wanted.vendor,
            reported=wanted.pseudonym,
            day=wanted.day,
            details=details,
            may_block=principal_of(request).sees,
        )
    except CannotTrace as exc:
        raise AdminRefused(404, exc.public_message) from None
    ended = await main[SESSIONS].delete_by_patron(result.patron_key)
    await audit(request, "card_blocked", library=result.library, detail=result.case)
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


async def api_audit(request: web.Request) -> web.Response:
    """The newest staff actions (who, when, what)."""
    entries = await asyncio.to_thread(request.app[AUDIT].recent, 200)
    return as_json(
        AuditOut(entries=[AuditEntryOut.model_validate(e, from_attributes=True) for e in entries])
    )
