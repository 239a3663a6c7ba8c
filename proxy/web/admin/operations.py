"""Operational views of the admin console (issue #20): login lockouts and the SQLite files.

Contract: ``GET /api/lockouts`` lists the card, address and network lockouts in force by
scope, the first ``SHOWN_KEY`` characters of their keyed hash and their end (never a card or
an address); ``POST /api/lockouts/clear`` (``LockoutClearIn``) lifts those of one scope whose
hash starts with the given prefix, and records it in the audit log; ``GET /api/datastores``
lists each ``*.sqlite3`` of the data dir with its size, WAL size and schema version, ``ok``
when it opens read-only and answers; ``GET /operations`` shows both as a page with a lift
button per lockout. Who may call them: the route table in app.py.
Hooks for later work (issues 16, 17): back-end health, unknown-host hits and the link builder
are meant as their own small modules here, each adding rows to ``ROUTES`` in app.py.
``GET /api/registry`` gives cards per library (library staff: theirs) and the last
``patrons import``'s counts (consortium-wide roles only).
The page also shows live sessions per library with an "End all" button (sessions_view.py).
Not here: the counters themselves (core/throttle.py), ending sessions (sessions_view.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from html import escape
from pathlib import Path
from typing import Final

from aiohttp import web

from proxy.stores.registry_status import last_import
from proxy.web.admin.api import as_json, parse_body
from proxy.web.admin.auth import AUTH, MAIN, audit, principal_of
from proxy.web.admin.dashboard import html
from proxy.web.admin.models import (
    ClearedOut,
    DataStoreOut,
    DataStoresOut,
    LastImportOut,
    LibraryRowsOut,
    LockoutClearIn,
    LockoutOut,
    LockoutsOut,
    RegistryOut,
)
from proxy.web.admin.pages import csrf_field, layout, table, td, when
from proxy.web.admin.sessions_view import LibrarySessions, session_counts, sessions_table
from proxy.web.keys import CLOCK, REGISTRY, SESSIONS, SETTINGS, THROTTLE

SHOWN_KEY: Final = 16  # enough to tell lockouts apart and to lift one


def lockout_views(request: web.Request) -> list[LockoutOut]:
    """The lockouts in force, newest end last."""
    main = request.app[MAIN]
    locks = main[THROTTLE].locks(main[CLOCK]())
    return [
        LockoutOut(scope=scope, key=key[:SHOWN_KEY], until=until)
        for scope, key, until in sorted(locks, key=lambda item: item[2])
        if scope != "global"
    ]


async def api_lockouts(request: web.Request) -> web.Response:
    """Login lockouts in force."""
    return as_json(LockoutsOut(lockouts=lockout_views(request)))


async def api_lockouts_clear(request: web.Request) -> web.Response:
    """Lift lockouts of one scope by hash prefix."""
    wanted = parse_body(LockoutClearIn, await request.read())
    cleared = request.app[MAIN][THROTTLE].clear(wanted.scope, wanted.key)
    await audit(request, "lockout_cleared", detail=f"{wanted.scope} {wanted.key[:SHOWN_KEY]}")
    return as_json(ClearedOut(cleared=cleared))


async def lockouts_clear_form(request: web.Request) -> web.Response:
    """The page's lift button (the same checks as the API)."""
    form = await request.post()
    raw = json.dumps({"scope": str(form.get("scope", "")), "key": str(form.get("key", ""))})
    wanted = parse_body(LockoutClearIn, raw.encode())
    request.app[MAIN][THROTTLE].clear(wanted.scope, wanted.key)
    await audit(request, "lockout_cleared", detail=f"{wanted.scope} {wanted.key[:SHOWN_KEY]}")
    return web.Response(status=303, headers={"Location": "/operations"})


async def registry_view(request: web.Request) -> RegistryOut:
    """Cards per library the caller may see; the last import for consortium-wide roles."""
    main, who = request.app[MAIN], principal_of(request)
    counts = await asyncio.to_thread(main[REGISTRY].count_by_library)
    last = last_import(Path(main[SETTINGS].data_dir)) if who.may("view_consortium") else None
    return RegistryOut(
        libraries=[
            LibraryRowsOut(library=lib, rows=n)
            for lib, n in sorted(counts.items())
            if who.sees(lib)
        ],
        last_import=None
        if last is None
        else LastImportOut.model_validate(last, from_attributes=True),
    )


async def api_registry(request: web.Request) -> web.Response:
    """The patron registry's status."""
    return as_json(await registry_view(request))


def registry_html(view: RegistryOut) -> str:
    """Cards per library and the last import, as HTML."""
    rows = [(td(r.library), td(r.rows, num=True)) for r in view.libraries]
    last = view.last_import
    summary = (
        "<p>No <code>patrons import</code> recorded yet.</p>"
        if last is None
        else f"<p>Last import {escape(when(last.at))} UTC: {last.imported:,} imported, "
        f"{last.updated:,} updated, {last.unchanged:,} unchanged, {last.rejected:,} rejected, "
        f"{last.removed:,} removed{'' if last.committed else ' (nothing committed)'}.</p>"
    )
    return table("Patron registry", ("Library", "Cards"), rows, "The registry is empty.") + summary


async def api_datastores(request: web.Request) -> web.Response:
    """The SQLite files of the data dir."""
    data = Path(request.app[MAIN][SETTINGS].data_dir)
    return as_json(DataStoresOut(stores=await asyncio.to_thread(datastore_views, data)))


def datastore_views(data: Path) -> list[DataStoreOut]:
    """Size, WAL size and schema version of each ``*.sqlite3`` (read-only; a worker thread)."""
    out = []
    for path in sorted(data.glob("*.sqlite3")):
        wal = Path(f"{path}-wal")
        version: int | None = None
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            pass
        out.append(
            DataStoreOut(
                name=path.name,
                bytes=path.stat().st_size,
                wal_bytes=wal.stat().st_size if wal.exists() else 0,
                schema_version=version,
                ok=version is not None,
            )
        )
    return out


async def operations_page(request: web.Request) -> web.Response:
    """Lockouts (with a lift button each) and the SQLite files."""
    main, csrf = request.app[MAIN], request.app[AUTH].csrf
    locks = [
        (td(lock.scope), td(lock.key), td(when(lock.until)), f"<td>{_lift(lock, csrf)}</td>")
        for lock in lockout_views(request)
    ]
    data = Path(main[SETTINGS].data_dir)
    stores = [
        (
            td(s.name),
            td(s.bytes, num=True),
            td(s.wal_bytes, num=True),
            td("—" if s.schema_version is None else s.schema_version),
            td("ok" if s.ok else "cannot open", cls="ok" if s.ok else "bad"),
        )
        for s in await asyncio.to_thread(datastore_views, data)
    ]
    sessions = ""
    if isinstance(main[SESSIONS], LibrarySessions):
        sessions = sessions_table(await session_counts(request), csrf)
    body = (
        sessions
        + registry_html(await registry_view(request))
        + table(
            "Login lockouts",
            ("Scope", "Keyed hash (start)", "Until (UTC)", "Action"),
            locks,
            "No card, address or network is locked out.",
        )
        + table(
            "SQLite files",
            ("File", "Bytes", "WAL bytes", "Schema", "State"),
            stores,
            "No SQLite files in the data dir.",
        )
    )
    page = layout(
        "Operations",
        body,
        consortium=main[SETTINGS].consortium_name,
        csrf=csrf,
        who=principal_of(request),
    )
    return html(page)


def _lift(lock: LockoutOut, csrf: str) -> str:
    return (
        f'<form method="post" action="/operations/lockouts/clear">{csrf_field(csrf)}'
        f'<input type="hidden" name="scope" value="{escape(lock.scope, quote=True)}">'
        f'<input type="hidden" name="key" value="{escape(lock.key, quote=True)}">'
        f'<button aria-label="Lift the {escape(lock.scope)} lockout {escape(lock.key)}">'
        "Lift</button></form>"
    )
