"""#16: the admin API's read-only view of the live card-check back-ends (SIP2, LDAP).

Contract: ``GET /api/auth-backends`` answers ``BackendsOut``: per library and back-end, the
checks and failures counted, last success, last failure and its error type, the last and
mean latency — from the main app's in-memory ``BackendHealth`` (this process only, since its
start). Nothing about any card or patron is in it.
Not here: recording (proxy/ilsauth/backends.py), authentication (auth.py).
"""

from __future__ import annotations

from aiohttp import web

from proxy.web.admin.auth import MAIN
from proxy.web.admin.models import BackendHealthOut, BackendsOut
from proxy.web.keys import LIVE_AUTH


async def api_auth_backends(request: web.Request) -> web.Response:
    """Health of each library's live back-ends."""
    rows = request.app[MAIN][LIVE_AUTH].health.rows()
    body = BackendsOut(
        backends=[
            BackendHealthOut(
                library=row.library,
                backend=row.backend,
                checks=row.checks,
                failures=row.failures,
                last_success=row.last_success,
                last_failure=row.last_failure,
                last_error=row.last_error,
                last_latency_ms=row.last_latency_ms,
                mean_latency_ms=row.mean_latency_ms,
            )
            for row in rows
        ]
    )
    return web.json_response(body.model_dump(mode="json"))
