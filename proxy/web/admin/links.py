"""Admin console: the link builder and the unknown hosts (#17), self-contained.

Contract: the handlers of ``GET /links`` (an HTML form: paste a vendor
URL, get the proxied link, the covering rule and database and each member library's licence,
or the domain to add; then the hosts patrons were sent to that no rule covers, per host over
the last 30 days), ``GET /api/links?url=`` (the same report as JSON) and ``GET
/api/unknown-hosts?days=`` (``[{host, hits}]``) and ``GET /api/database-starts?days=``
(``[{vendor, database, library, starts}]``: starting points followed, per database where the
link said which, else per platform). They are rows of the console's ROUTES table (app.py), guarded
like every other path: token or console session, no script, no caching. Nothing here
names a patron: unknown hosts are counted per host per day only.
Not here: the report (core/links.py), counting (core/usage.py, stores/stats.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import timedelta
from html import escape
from typing import Final

from aiohttp import web

from proxy.core.links import LinkReport, link_report
from proxy.rules_loader import is_public_suffix
from proxy.web.admin.api import as_json
from proxy.web.admin.auth import MAIN, AdminRefused
from proxy.web.admin.models import (
    DatabaseStartOut,
    DatabaseStartsOut,
    LinkReportOut,
    UnknownHostOut,
    UnknownHostsOut,
)
from proxy.web.keys import CLOCK, HOSTMAP, RULEBOOK, SETTINGS, STATS

UNKNOWN_DAYS: Final = 30
MAX_URL: Final = 8192


def report_for(main: web.Application, url: str) -> LinkReport:
    """The link report against the live rules."""
    settings = main[SETTINGS]
    return link_report(
        url[:MAX_URL],
        main[RULEBOOK].current.index,
        main[HOSTMAP],
        public_url=settings.public_url,
        libraries=[lib.code for lib in settings.libraries],
        is_public_suffix=is_public_suffix,
    )


async def unknown_hosts(main: web.Application, days: int) -> list[tuple[str, int]]:
    """(host, hits) over the last ``days`` days, most hit first."""
    today = main[CLOCK]().date()
    return await asyncio.to_thread(
        main[STATS].unknown_hosts, today - timedelta(days=days - 1), today
    )


async def database_starts(main: web.Application, days: int) -> list[tuple[str, str, str, int]]:
    """(vendor, database, library, starts) over the last ``days`` days."""
    today = main[CLOCK]().date()
    return await asyncio.to_thread(
        main[STATS].database_starts, today - timedelta(days=days - 1), today
    )


def _only(request: web.Request, *allowed: str) -> None:
    """A typo such as ``?day=`` is refused, not silently ignored (as ``/api/stats`` does)."""
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise AdminRefused(400, f"Unknown query parameter(s): {', '.join(map(repr, unknown))}.")


def _days(request: web.Request) -> int | None:
    _only(request, "days")
    raw = request.query.get("days", str(UNKNOWN_DAYS))
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 400 else None


async def api_database_starts(request: web.Request) -> web.Response:
    """``GET /api/database-starts?days=N`` (1–400, default 30)."""
    days = _days(request)
    if days is None:
        return web.json_response({"error": "days must be 1 to 400"}, status=400)
    rows = await database_starts(request.app[MAIN], days)
    out = DatabaseStartsOut(
        [DatabaseStartOut(vendor=v, database=d, library=lib, starts=n) for v, d, lib, n in rows]
    )
    return as_json(out)


async def api_links(request: web.Request) -> web.Response:
    """``GET /api/links?url=``: the link report as JSON."""
    _only(request, "url")
    url = request.query.get("url", "")
    if not url:
        return web.json_response({"error": "url is required"}, status=400)
    return as_json(LinkReportOut(**asdict(report_for(request.app[MAIN], url))))


async def api_unknown_hosts(request: web.Request) -> web.Response:
    """``GET /api/unknown-hosts?days=N`` (1–400, default 30)."""
    days = _days(request)
    if days is None:
        return web.json_response({"error": "days must be 1 to 400"}, status=400)
    rows = await unknown_hosts(request.app[MAIN], days)
    return as_json(UnknownHostsOut([UnknownHostOut(host=h, hits=n) for h, n in rows]))


async def links_page(request: web.Request) -> web.Response:
    """``GET /links``: the form, the report for ``?url=``, the unknown hosts."""
    main = request.app[MAIN]
    url = request.query.get("url", "")
    report = report_for(main, url) if url else None
    rows = await unknown_hosts(main, UNKNOWN_DAYS)
    body = _form(url) + (_report_html(report) if report else "") + _unknown_html(rows)
    return web.Response(text=_page(main, body), content_type="text/html")


def _page(main: web.Application, body: str) -> str:
    consortium = escape(main[SETTINGS].consortium_name)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Link builder · {consortium}</title>"
        '<link rel="stylesheet" href="/admin.css"></head><body><main id="main">'
        f'<p><a href="/">Dashboard</a></p><h1>Link builder</h1>{body}</main></body></html>'
    )


def _form(url: str) -> str:
    return (
        '<form method="get" action="/links"><label for="url">Vendor URL</label>'
        f'<input type="url" id="url" name="url" value="{escape(url, quote=True)}" required>'
        "<button>Build the link</button></form>"
    )


def _report_html(r: LinkReport) -> str:
    if not r.covered:
        add = (
            f" Add the domain <code>{escape(r.suggestion)}</code> to a rule."
            if r.suggestion
            else ""
        )
        return (
            f'<p class="message" role="alert">No rule covers this URL ({escape(r.why)}).{add}</p>'
        )
    database = f"database <code>{escape(r.database_id)}</code>" if r.database_id else "the platform"
    rows = "".join(
        f"<tr><td>{escape(code)}</td><td>{'yes' if ok else 'no'}</td></tr>"
        for code, ok in r.licensed.items()
    )
    return (
        f"<p>Covered by rule <code>{escape(r.rule_id)}</code>, {database}: {escape(r.title)}</p>"
        '<p>Proxied link: <input readonly aria-label="Proxied link" '
        f'value="{escape(r.link, quote=True)}"></p>'
        f"<table><caption>Licensed by member library</caption><tr><th>Library</th>"
        f"<th>Licensed</th></tr>{rows}</table>"
    )


def _unknown_html(rows: list[tuple[str, int]]) -> str:
    items = (
        "".join(f"<tr><td>{escape(host)}</td><td>{hits}</td></tr>" for host, hits in rows)
        or '<tr><td colspan="2">None recorded.</td></tr>'
    )
    return (
        f"<h2>Hosts no rule covers (last {UNKNOWN_DAYS} days)</h2>"
        "<p>Patrons were sent to these hosts from the proxy; add the ones that belong to a "
        "licensed database to its rule.</p>"
        f"<table><tr><th>Host</th><th>Times</th></tr>{items}</table>"
    )
