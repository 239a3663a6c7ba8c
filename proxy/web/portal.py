"""Portal host routes: home page and health; login, logout and menu arrive with patrons.

Contract: handlers adapt a request to page functions and return responses.
Not here: HTML (pages.py), card checks (patrons).
"""

from __future__ import annotations

from aiohttp import web

from proxy.web.errors import NotFound
from proxy.web.keys import RULEBOOK, SETTINGS
from proxy.web.pages import home_page


async def home(request: web.Request) -> web.Response:
    """The portal's home page."""
    return web.Response(
        text=home_page(request.app[SETTINGS].consortium_name), content_type="text/html"
    )


async def healthz(request: web.Request) -> web.Response:
    """Liveness and rule status for load balancers (no patron data)."""
    book = request.app[RULEBOOK]
    return web.json_response(
        {
            "status": "ok",
            "rules": len(book.current.rules),
            "last_reload_ok": book.last_result.ok,
        }
    )


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
