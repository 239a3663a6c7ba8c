"""The application factory: builds the aiohttp app and owns its resources.

Contract: ``build_app(settings, rulebook)`` returns a ready ``web.Application``: the host
dispatch decides portal vs mapped vendor host from a validated Host header only; portal
routes are registered here; each long-lived resource is created and closed in a cleanup
context. Not here: the handlers' logic (portal.py, relay.py), config parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from proxy.core.hostmap import HostMap
from proxy.core.settings import Settings
from proxy.rulebook import Rulebook
from proxy.web import portal
from proxy.web.errors import Handler, checked_host, error_boundary
from proxy.web.keys import CLOCK, HOSTMAP, RULEBOOK, SETTINGS
from proxy.web.relay import relay_handler

STATIC_DIR = Path(__file__).parent / "static"


def utc_now() -> datetime:
    """The real clock (tests inject their own)."""
    return datetime.now(UTC)


@web.middleware
async def host_dispatch(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Portal host → the router; any other host under the proxy → the relay."""
    host = checked_host(request)
    if request.app[HOSTMAP].is_portal(host):
        return await handler(request)
    return await relay_handler(request, host)


def build_app(
    settings: Settings,
    rulebook: Rulebook,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> web.Application:
    """Assemble the patron-facing application."""
    app = web.Application(middlewares=[error_boundary, host_dispatch], client_max_size=2**20)
    app[SETTINGS] = settings
    app[RULEBOOK] = rulebook
    app[HOSTMAP] = HostMap(settings.proxy_host, settings.proxy_port)
    app[CLOCK] = clock
    portal.add_routes(app)
    app.router.add_static("/static", STATIC_DIR, append_version=False)
    return app
