"""The main app's resources as admin API models, for both the JSON API and the dashboard.

Contract: pure conversions (``reload_view``, ``vendor_views``, ``suspension_view``) and two
readers of the stats store (``usage_rows``, ``third_party_rows``) that do their blocking reads
in a worker thread. They read ``main[KEY]`` and change nothing. ``suspension_view`` copies only
the pseudonymous fields and the times (since, until), whatever else a ``Suspension`` carries.
Not here: the models themselves (models.py), checking a request (api.py), HTML
(pages.py).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Final

from aiohttp import web

from proxy.rulebook import ReloadResult, Rulebook
from proxy.stores.suspensions import Suspension
from proxy.web.admin.models import ReloadOut, SuspensionOut, ThirdPartyOut, UsageRowOut, VendorOut
from proxy.web.keys import STATS

CHART_DAYS: Final = 30  # the dashboard's chart, and the API's default period
TOP_HOSTS_PER_VENDOR: Final = 5


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
    """Only the pseudonymous fields and the times, whatever else the object carries."""
    return SuspensionOut(
        session_hash=entry.session_hash,
        vendor=entry.vendor,
        limit=entry.limit,
        since=entry.since,
        until=entry.until,
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
    # Blocked hosts count too: under the default third_party: block most are never referenced.
    return sorted(out, key=lambda t: (t.vendor, -(t.referenced + t.blocked), t.host))
