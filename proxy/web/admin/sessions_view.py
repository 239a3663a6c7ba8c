"""Patron sessions on the admin console (issue #20): counts per library, end them.

Contract: ``GET /api/sessions/libraries`` counts live sessions per member library (library
staff get only theirs); ``POST /api/sessions/end-library`` (``EndLibraryIn``) ends every
session of one library; ``POST /api/sessions/end`` (``EndSessionIn``) ends one session named
by its pseudonymous hash (404 when none is live). Both changes are audited (library, hash).
A session store without these operations answers 501. ``sessions_table`` and
``end_library_form`` are the operations page's part. Nothing here names a patron.
Not here: suspensions (api.py), the stores (stores/sessions.py).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from html import escape
from typing import Protocol, runtime_checkable

from aiohttp import web

from proxy.web.admin.api import as_json, parse_body
from proxy.web.admin.auth import MAIN, AdminRefused, audit, principal_of
from proxy.web.admin.models import (
    EndedOut,
    EndLibraryIn,
    EndSessionIn,
    LibrarySessionsOut,
    SessionsByLibraryOut,
)
from proxy.web.admin.pages import csrf_field, table, td
from proxy.web.keys import CLOCK, SESSIONS, SUSPENSIONS


@runtime_checkable
class LibrarySessions(Protocol):
    """What a session store needs for the per-library operations."""

    async def count_by_library(self, now: datetime) -> dict[str, int]: ...
    async def delete_by_library(self, library: str) -> int: ...
    async def delete_keys(self, keys: list[str]) -> int: ...
    async def live_keys(self, now: datetime) -> list[str]: ...


def library_sessions(request: web.Request) -> LibrarySessions:
    """The session store, when it can do this (else 501)."""
    store = request.app[MAIN][SESSIONS]
    if not isinstance(store, LibrarySessions):
        raise AdminRefused(501, "This session store cannot count or end sessions by library.")
    return store


async def session_counts(request: web.Request) -> list[LibrarySessionsOut]:
    """Live sessions per library that the caller may see."""
    who, now = principal_of(request), request.app[MAIN][CLOCK]()
    counts = await library_sessions(request).count_by_library(now)
    return [
        LibrarySessionsOut(library=lib, active=n)
        for lib, n in sorted(counts.items())
        if who.sees(lib)
    ]


async def api_sessions_by_library(request: web.Request) -> web.Response:
    """Live sessions per member library."""
    return as_json(SessionsByLibraryOut(libraries=await session_counts(request)))


async def api_end_library(request: web.Request) -> web.Response:
    """End every session of one member library."""
    wanted = parse_body(EndLibraryIn, await request.read())
    ended = await end_library(request, wanted.library)
    return as_json(EndedOut(ended=ended))


async def end_library(request: web.Request, library: str) -> int:
    """End a library's sessions and audit it; returns how many."""
    if not principal_of(request).sees(library):
        raise AdminRefused(403, "Your account does not cover this library.")
    ended = await library_sessions(request).delete_by_library(library)
    await audit(request, "sessions_ended", library=library, detail=f"{ended} session(s)")
    return ended


async def end_library_form(request: web.Request) -> web.Response:
    """The operations page's "End all" button."""
    form = await request.post()
    raw = json.dumps({"library": str(form.get("library", ""))})
    await end_library(request, parse_body(EndLibraryIn, raw.encode()).library)
    return web.Response(status=303, headers={"Location": "/operations"})


def sessions_table(counts: list[LibrarySessionsOut], csrf: str) -> str:
    """Live sessions per library, an "End all" button each."""
    rows = [
        (td(c.library), td(c.active, num=True), f"<td>{_end_all(c.library, csrf)}</td>")
        for c in counts
    ]
    head = ("Library", "Sessions", "Action")
    return table("Live sessions per library", head, rows, "No live sessions.")


def _end_all(library: str, csrf: str) -> str:
    lib = escape(library, quote=True)
    return (
        f'<form method="post" action="/operations/sessions/end-library">{csrf_field(csrf)}'
        f'<input type="hidden" name="library" value="{lib}">'
        f'<button aria-label="End all sessions of {lib}">End all</button></form>'
    )


async def api_end_session(request: web.Request) -> web.Response:
    """End one live session by its pseudonymous hash."""
    wanted = parse_body(EndSessionIn, await request.read())
    main, store = request.app[MAIN], library_sessions(request)
    keys = await store.live_keys(main[CLOCK]())
    key = await asyncio.to_thread(main[SUSPENSIONS].key_for_hash, wanted.session_hash, keys)
    if key is None:
        raise AdminRefused(404, "No live session has this hash (it may have ended).")
    ended = await store.delete_keys([key])
    await audit(request, "sessions_ended", detail=wanted.session_hash)
    return as_json(EndedOut(ended=ended))
