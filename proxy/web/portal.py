"""Portal host routes: home page and health; login, logout and menu arrive with patrons.

Contract: handlers adapt a request to page functions and return responses.
Not here: HTML (pages.py), card checks (patrons).
"""

from __future__ import annotations

from aiohttp import web

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


def add_routes(app: web.Application) -> None:
    """Register the portal routes."""
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
