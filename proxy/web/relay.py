"""Mapped vendor hosts: decide, then relay with nothing identifying leaving.

Contract: ``relay_handler(request, host)`` answers every request for a host one label under
the proxy host. It decodes the host, finds the rule (unknown → 404; EZproxy's dotted form →
301 to the mapped host), the session (none → 302 to ``/login?qurl=<vendor URL>``), checks
the licence (→ 403) and suspensions of the card or session (→ 403), and the concurrency caps
per session and per client address (→ 429, R3); then forwards: the abuse limits are checked
before the work (R10: a request that would cross them, a download over the limit seen in the
response head, or bytes over the limit while streaming are refused or cut, not served), the
upstream request (relay_request.py), the response (relay_response.py) metered and watched
for a browser that stops reading (relay_guard.py), and the aggregate accounting (no URL).
Not here: header policy (core/headers.py), cookie semantics (core/cookiejar.py), SSRF
checks and timeouts (upstream/client.py).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from datetime import datetime

from aiohttp import web

from proxy.accesslog import VENDOR_KEY
from proxy.core.abuse import AbuseLimits, LimitCrossed, action_for
from proxy.core.clientaddr import IPNetwork, client_address
from proxy.core.hostmap import HostMapError
from proxy.core.rules import VendorRule
from proxy.core.targets import NotOurDatabase
from proxy.core.usage import is_download
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.stores.sessions import Session
from proxy.stores.suspensions import Suspensions
from proxy.upstream.client import UpstreamResponse
from proxy.web.bodies import BodyPlan
from proxy.web.keys import (
    ABUSE,
    CLOCK,
    HOSTMAP,
    IN_FLIGHT,
    RULEBOOK,
    SETTINGS,
    STALLS,
    SUSPENSIONS,
    USAGE,
)
from proxy.web.login import client_network, login_url_for
from proxy.web.relay_guard import (
    BodyMeter,
    LimitReached,
    TooBusy,
)
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
    """Decide (vendor, session, licence, suspension), then forward within the caps."""
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
    if is_suspended(request.app[SUSPENSIONS], session, request.app[CLOCK]()):
        raise Suspended()
    return await within_caps(request, vendor, session)


def client_address_of(request: web.Request) -> str:
    """The patron's address as text ('' when unknown), cached per (peer, X-Forwarded-For)."""
    forwarded = tuple(request.headers.getall("X-Forwarded-For", ()))
    return _address_of(request.remote, forwarded, request.app[SETTINGS].trusted_proxies)


@functools.lru_cache(maxsize=4096)  # once per relayed request; peers repeat
def _address_of(
    peer: str | None, forwarded: tuple[str, ...], trusted: tuple[IPNetwork, ...]
) -> str:
    addr = client_address(peer, forwarded, trusted)
    return str(addr) if addr else ""


def subject_of(session: Session) -> str:
    """Whom abuse limits and suspensions count: the card (its keyed hash) across all its
    sessions (R10), or the session itself when it has no card (auto-login networks)."""
    return session.patron_key or session.key


def is_suspended(book: Suspensions, session: Session, now: datetime) -> bool:
    """The card is suspended, or this very session is (staff suspend sessions by hash)."""
    if book.is_suspended(subject_of(session), now):
        return True
    return session.patron_key is not None and book.is_suspended(session.key, now)


async def within_caps(
    request: web.Request, vendor: Resolved, session: Session
) -> web.StreamResponse:
    """Forward, unless this session or address already has its cap of requests in flight
    (R3: one patron must not hold every vendor connection); counted down in ``finally``."""
    caps = request.app[SETTINGS].relay
    address = client_address_of(request)
    in_flight = request.app[IN_FLIGHT]
    refused = in_flight.enter(
        session.key, address, caps.concurrent_per_session, caps.concurrent_per_address
    )
    if refused is not None:
        log.warning("relay_concurrency_refused", vendor=vendor.rule.id, cap=refused)
        raise TooBusy(refused)
    try:
        return await forward(request, vendor, session)
    finally:
        in_flight.leave(session.key, address)


async def forward(request: web.Request, vendor: Resolved, session: Session) -> web.StreamResponse:
    """Check the limits, send upstream and stream the answer back, metered and watched."""
    app, rule = request.app, vendor.rule
    now, subject = app[CLOCK](), subject_of(session)
    limits = tools_for(request).per_rule[rule.id].limits
    await refuse_if_over(request, rule, session, limits, now)
    upstream = await send_upstream(request, vendor, session, now)
    meter = BodyMeter(app[ABUSE], subject, limits, now)
    sent: tuple[web.StreamResponse, int, BodyPlan | None] | None = None
    crossed: LimitCrossed | None = None
    try:
        download = is_download_response(request, upstream)
        if download:
            crossed = app[ABUSE].add_download(subject, limits, now)
        if crossed is None:
            sent = await respond_watched(request, vendor, session, upstream, meter, now)
    except LimitReached:  # over the bytes limit before anything was sent
        pass
    finally:
        upstream.release()  # an unread body closes the vendor connection rather than reuse it
    account(request, rule, session, sent, download, now)
    crossed = crossed or meter.crossed
    if crossed is not None:
        await suspend(request, rule, session, crossed, limits, now)
    if sent is None:  # a download or a body over the limit: refused before it was sent
        raise Suspended()
    response, _, plan = sent
    if plan is not None:
        count_third_parties(request, rule, plan.rewriter.referenced_hosts, now)
    return response


async def refuse_if_over(
    request: web.Request, rule: VendorRule, session: Session, limits: AbuseLimits, now: datetime
) -> None:
    """R10: count the request, or refuse it (``Suspended``) when it would cross a limit, before
    anything is sent upstream; account sharing in ``log`` mode is only logged."""
    crossed = request.app[ABUSE].admit(subject_of(session), limits, now) or shared_card(
        request, session, limits, now
    )
    if crossed is None:
        return
    await suspend(request, rule, session, crossed, limits, now)
    if action_for(crossed, limits) == "suspend":
        raise Suspended()


async def respond_watched(
    request: web.Request,
    vendor: Resolved,
    session: Session,
    upstream: UpstreamResponse,
    meter: BodyMeter,
    now: datetime,
) -> tuple[web.StreamResponse, int, BodyPlan | None]:
    """``respond``, with a browser that stops reading disconnected after the deadline."""
    stalls = request.app[STALLS]
    watched = stalls.watch(request, meter, vendor.rule.id)
    try:
        return await respond(request, vendor, session, upstream, now, meter)
    finally:
        stalls.unwatch(watched)


def is_download_response(request: web.Request, upstream: UpstreamResponse) -> bool:
    """A document the vendor is sending: a full 200 answer to GET/POST, typed as one (an
    untyped redirect or a HEAD answer is not a download)."""
    if upstream.status != 200 or request.method == "HEAD":
        return False
    return is_download(upstream.headers.get("Content-Type", ""))


def count_third_parties(
    request: web.Request, rule: VendorRule, hosts: Counter[str], now: datetime
) -> None:
    """Aggregate third-party host counts per vendor (no patron data)."""
    blocked = rule.third_party == "block"
    for host, count in hosts.items():
        request.app[USAGE].third_party(now.date(), rule.id, host, blocked=blocked, count=count)


def shared_card(
    request: web.Request, session: Session, limits: AbuseLimits, now: datetime
) -> LimitCrossed | None:
    """The card-sharing check (too many client networks for one card), before relaying."""
    if session.patron_key is None or limits.card_networks is None:
        return None
    network = client_network(request)
    return request.app[ABUSE].network_seen(session.patron_key, network, limits, now)


def account(
    request: web.Request,
    rule: VendorRule,
    session: Session,
    sent: tuple[web.StreamResponse, int, BodyPlan | None] | None,
    download: bool,
    now: datetime,
) -> None:
    """Aggregate statistics for one relayed response (no URL kept)."""
    if sent is None:
        return
    app = request.app
    app[USAGE].request(
        now.date(),
        rule.id,
        session.library,
        patron=session.patron_key or session.key,
        session=session.key,
        size=sent[1],
        download=download,
    )


async def suspend(
    request: web.Request,
    rule: VendorRule,
    session: Session,
    crossed: LimitCrossed,
    limits: AbuseLimits,
    now: datetime,
) -> None:
    """Suspend the card (or only log, for account sharing in ``log`` mode); the rows are
    written in a worker thread, the suspension takes effect at once in memory."""
    book, subject = request.app[SUSPENSIONS], subject_of(session)
    if action_for(crossed, limits) == "log":
        entry = book.mark(subject, rule.id, crossed.limit, now, action="logged")
        log.warning("usage_limit_logged", vendor=rule.id, limit=crossed.limit)
        await asyncio.to_thread(book.write, entry, "logged")
    elif not book.is_suspended(subject, now):
        entry = book.mark(subject, rule.id, crossed.limit, now)
        log.warning("session_suspended", vendor=rule.id, limit=crossed.limit)
        await asyncio.to_thread(book.write, entry, "suspended")
