"""Mapped vendor hosts: decode the host, find the rule, then (next issue) relay.

Contract: ``relay_handler(request, host)`` answers every request for a host under the proxy
that is not the portal. Today it resolves the vendor rule and refuses what no rule covers;
forwarding arrives with the relay issue.
Not here: header policy, cookie jars, upstream I/O.
"""

from __future__ import annotations

from aiohttp import web

from proxy.core.hostmap import HostMapError
from proxy.errors import ClamshellError
from proxy.web.keys import HOSTMAP, RULEBOOK


class UnknownDatabase(ClamshellError):
    """The address is not one of the consortium's licensed databases."""

    status_hint = 404
    public_message = "This address is not one of our licensed databases."


class NotYetRelayed(ClamshellError):
    """The relay is not built yet."""

    status_hint = 503
    public_message = "This database is not available through the proxy yet."


async def relay_handler(request: web.Request, host: str) -> web.StreamResponse:
    """Resolve the vendor for a mapped host; refuse unknown ones with a 404 page."""
    try:
        origin = request.app[HOSTMAP].origin_for(host)
    except HostMapError:
        raise UnknownDatabase() from None
    index = request.app[RULEBOOK].current.index
    rule = index.rule_for(origin.host)
    if rule is None or index.origin_for(origin.host) != origin:  # scheme/port must match too
        raise UnknownDatabase()
    raise NotYetRelayed()
