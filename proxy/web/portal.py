"""Portal host routes: home page and health; login, logout and menu arrive with patrons.

Contract: handlers adapt a request to page functions and return responses. ``/healthz``
answers 503 ``{"status": "unhealthy", "store": NAME}`` when a store's file can no longer be
read (pentest R15), naming the store only: no path, no error text.
Not here: HTML (pages.py), card checks (patrons).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from proxy.logconfig import get_logger
from proxy.stores.redis_state import StateUnavailable
from proxy.web.errors import NotFound
from proxy.web.keys import EPOCHS, REGISTRY, RULEBOOK, SESSIONS
from proxy.web.page_response import page

log = get_logger("portal")
STORES: Final = ("patrons", "keys", "sessions")  # the order /healthz probes them in


async def home(request: web.Request) -> web.Response:
    """The portal's home page."""
    return page(request, "home.html")


async def healthz(request: web.Request) -> web.Response:
    """Liveness, store health and rule status for load balancers (no patron data)."""
    failed = await unreadable_store(request.app)
    if failed is not None:
        return web.json_response({"status": "unhealthy", "store": failed}, status=503)
    book = request.app[RULEBOOK]
    return web.json_response(
        {
            "status": "ok",
            "rules": len(book.current.rules),
            "last_reload_ok": book.last_result.ok,
        }
    )


async def unreadable_store(app: web.Application) -> str | None:
    """The first store whose file cannot be read (a tiny query each), or None."""
    probes: dict[str, Callable[[], Awaitable[None]]] = {
        "patrons": lambda: asyncio.to_thread(app[REGISTRY].check),
        "keys": lambda: asyncio.to_thread(app[EPOCHS].check),
        "sessions": app[SESSIONS].check,
    }
    for name in STORES:
        try:
            await probes[name]()
        except (sqlite3.Error, StateUnavailable) as exc:  # #15: Redis down is unhealthy too
            log.error("store_unhealthy", store=name, error=type(exc).__name__)
            return name
    return None


async def not_found(request: web.Request) -> web.Response:
    """Any other portal path: the friendly 404 page."""
    raise NotFound()


def add_catch_all(app: web.Application) -> None:
    """Register last: every path then matches a route. Without it aiohttp builds an
    HTTPNotFound for every relayed request (mapped hosts bypass the router in a middleware,
    but routing runs first), which measurably costs on the relay's hot path."""
    app.router.add_route("*", "/{tail:.*}", not_found)


def add_routes(app: web.Application) -> None:
    """Register the portal routes."""
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
