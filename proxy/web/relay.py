"""Mapped vendor hosts: decide, then relay with nothing identifying leaving.

Contract: ``relay_handler(request, host)`` answers every request for a host one label under
the proxy host. It decodes the host, finds the rule (unknown → 404; EZproxy's dotted form →
301 to the mapped host), the session (none → 302 to ``/login?qurl=<vendor URL>``), checks
the licence (→ 403) and suspensions (→ 403), then forwards: the upstream request
(relay_request.py), the response (relay_response.py), and the accounting of what was relayed
(usage statistics and abuse limits, no URL kept).
Not here: header policy (core/headers.py), cookie semantics (core/cookiejar.py), SSRF
checks and timeouts (upstream.py).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from aiohttp import web

from proxy.accesslog import VENDOR_KEY
from proxy.core.abuse import action_for
from proxy.core.hostmap import HostMapError
from proxy.core.rules import VendorRule
from proxy.core.targets import NotOurDatabase
from proxy.core.usage import is_download
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.stores.sessions import Session
from proxy.web.keys import (
    ABUSE,
    CLOCK,
    HOSTMAP,
    RULEBOOK,
    SETTINGS,
    SUSPENSIONS,
    USAGE,
)
from proxy.web.login import client_network, login_url_for
from proxy.web.relay_request import Resolved, mapper_for, send_upstream, tools_for
from proxy.web.relay_response import respond
from proxy.web.responses import found
from proxy.web.session_cookie import current_session, forget_tossed_cookies

log = get_logger("relay")


class NotLicensed(ClamshellError):
    """The patron's library does not license this vendor."""

    status_hint = 403

    def __init__(self, title: str) -> None:
        super().__init__(title)
        self.public_message = f"Your library does not license {title}."


class Suspended(ClamshellError):
    """The session crossed an abuse limit (EZproxy UsageLimit)."""

    status_hint = 403
    public_message = (
        "Your access has been paused because of unusually heavy use. Please contact your library."
    )


class LegacyHost(Exception):
    """An EZproxy dotted proxy-by-hostname request; carries where it moved to."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def legacy_location(request: web.Request, host: str) -> str | None:
    """``www.jstor.org.<proxy host>`` (EZproxy's dotted form) → our mapped URL, if covered."""
    bare = host.rsplit(":", 1)[0] if ":" in host else host
    suffix = "." + request.app[HOSTMAP].proxy_host
    vendor_host = bare[: -len(suffix)] if bare.endswith(suffix) else ""
    if "." not in vendor_host:
        return None
    mapper = mapper_for(request)
    origin = mapper.vendor_origin(vendor_host)
    return None if origin is None else mapper.mapped_origin(origin) + request.raw_path


def resolve_vendor(request: web.Request, host: str) -> Resolved:
    """Host → origin → rule; the origin must be the rule's own (scheme and port too)."""
    try:
        origin = request.app[HOSTMAP].origin_for(host)
    except HostMapError:
        location = legacy_location(request, host)
        if location is not None:
            raise LegacyHost(location) from None
        raise NotOurDatabase("not a mapped host") from None
    index = request.app[RULEBOOK].current.index
    rule = index.rule_for(origin.host)
    if rule is None or index.origin_for(origin.host) != origin:
        raise NotOurDatabase("no rule covers the host")
    return Resolved(rule, origin)


async def relay_handler(request: web.Request, host: str) -> web.StreamResponse:
    """Decide (vendor, session, licence), then forward."""
    try:
        vendor = resolve_vendor(request, host)
    except LegacyHost as moved:  # old EZproxy links and bookmarks keep working
        return web.Response(status=301, headers={"Location": moved.location})
    session = await current_session(request)
    if session is None:
        target = vendor.origin.url_prefix() + request.raw_path
        response = found(login_url_for(request.app[SETTINGS].public_url, target))
        forget_tossed_cookies(request, response)  # R7: two session cookies are none
        return response
    request[VENDOR_KEY] = vendor.rule.id
    if not vendor.rule.licensed_to(session.library, session.ptype):
        raise NotLicensed(vendor.rule.title)
    if request.app[SUSPENSIONS].is_suspended(session.key):
        raise Suspended()
    return await forward(request, vendor, session)


async def forward(request: web.Request, vendor: Resolved, session: Session) -> web.StreamResponse:
    """Send upstream and stream the answer back."""
    now = request.app[CLOCK]()
    upstream = await send_upstream(request, vendor, session, now)
    try:
        response, size, plan = await respond(request, vendor, session, upstream, now)
    finally:
        upstream.release()
    account(request, vendor.rule, session, size=size, content_type=upstream.content_type, now=now)
    if plan is not None:
        count_third_parties(request, vendor.rule, plan.rewriter.referenced_hosts, now)
    return response


def count_third_parties(
    request: web.Request, rule: VendorRule, hosts: Counter[str], now: datetime
) -> None:
    """Aggregate third-party host counts per vendor (no patron data)."""
    blocked = rule.third_party == "block"
    for host, count in hosts.items():
        request.app[USAGE].third_party(now.date(), rule.id, host, blocked=blocked, count=count)


def account(
    request: web.Request,
    rule: VendorRule,
    session: Session,
    *,
    size: int,
    content_type: str,
    now: datetime,
) -> None:
    """Aggregate statistics and abuse limits for one relayed response (no URL kept)."""
    app = request.app
    app[USAGE].request(
        now.date(),
        rule.id,
        session.library,
        patron=session.patron_key or session.key,
        session=session.key,
        size=size,
        content_type=content_type,
    )
    limits = tools_for(request).per_rule[rule.id].limits
    crossed = app[ABUSE].record(
        session.key, limits, size=size, download=is_download(content_type), now=now
    )
    if crossed is None and session.patron_key is not None:
        network = client_network(request)
        crossed = app[ABUSE].network_seen(session.patron_key, network, limits, now)
    if crossed is None:
        return
    if action_for(crossed, limits) == "log":
        app[SUSPENSIONS].suspend(session.key, rule.id, crossed.limit, now, action="logged")
        log.warning("usage_limit_logged", vendor=rule.id, limit=crossed.limit)
    elif not app[SUSPENSIONS].is_suspended(session.key):
        app[SUSPENSIONS].suspend(session.key, rule.id, crossed.limit, now)
        log.warning("session_suspended", vendor=rule.id, limit=crossed.limit)
