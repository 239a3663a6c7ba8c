"""``GET /metrics`` on the admin listener: the Prometheus exposition (issue #20).

Contract: ``metrics(request)`` sets the scrape-time gauges (active sessions, rules in use,
failed-login alarms) from the main app and answers proxy/metrics.py's text.
``scrape_allowed(request)`` is true when the peer address is in ``admin.metrics_allow`` (a
Prometheus host scraping without a key); otherwise the route needs a staff API key whose role
may see consortium-wide figures (the route table in app.py).
Not here: what is counted and with which labels (proxy/metrics.py).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from proxy.metrics import render
from proxy.web.admin.auth import MAIN
from proxy.web.keys import CLOCK, RULEBOOK, SESSIONS, SETTINGS, THROTTLE

PATH = "/metrics"


async def metrics(request: web.Request) -> web.Response:
    """The metrics, aggregates only."""
    main = request.app[MAIN]
    body, content_type = render(
        active_sessions=await main[SESSIONS].count_active(main[CLOCK]()),
        rules=len(main[RULEBOOK].current.rules),
        alarms=main[THROTTLE].alarms_raised,
    )
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def scrape_allowed(request: web.Request) -> bool:
    """The peer is an allow-listed scraper (only for ``GET /metrics``)."""
    allow = request.app[MAIN][SETTINGS].admin.metrics_allow
    if request.path != PATH or not allow or request.remote is None:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    return any(peer in network for network in allow)
