"""Mapped vendor hosts: adapt the request, decide in the core, execute the decision.

A relayed request passes through web/app.py (host dispatch) → web/relay.py (this shell:
snapshot, session, view) → core/decision.py (Redirect, Deny or Forward) → web/relay_guard.py
(caps, abuse limits, meter, stalls, accounting) → web/relay_request.py (upstream request) →
core/responseplan.py (Leave, Deny or Relay) → web/relay_response.py (headers, cookies, body).

Contract: ``relay_handler(request, host)`` answers every request for a host one label under
the proxy host. It reads the live ``RuleSnapshot`` once (a reload during the request cannot
mix two rule sets), the session and whether it is suspended, and asks ``decide``: a
``Redirect`` is sent (clearing tossed session cookies, R7), a ``Deny`` raised as ``Refused``
for the error boundary, a ``Forward`` relayed within the in-flight caps (R3): the abuse
limits counted before it is sent (R10), the response metered and watched, then accounted.
Not here: any relay rule (core/decision.py), header policy (core/headers.py), SSRF checks
and timeouts (upstream/client.py).
"""

from __future__ import annotations

import time

from aiohttp import hdrs, web

from proxy.accesslog import SESSION_KEY, UPSTREAM_URL_KEY, VENDOR_KEY
from proxy.core.abuse import LimitCrossed, action_for
from proxy.core.decision import SUSPENDED, Deny, Forward, Redirect, RequestView, decide
from proxy.core.usage import is_download_answer
from proxy.logconfig import get_logger
from proxy.metrics import count_response, observe_upstream
from proxy.upstream.client import UpstreamResponse
from proxy.web.exchange import Exchange
from proxy.web.keys import CLOCK, RELAY, RULEBOOK
from proxy.web.login import client_network
from proxy.web.page_response import note_library
from proxy.web.relay_anonymous import relay_anonymous
from proxy.web.relay_guard import (
    BodyMeter,
    LimitReached,
    Refused,
    TooBusy,
    account,
    client_address_of,
    count_third_parties,
    is_suspended,
    over_limits,
    settle,
    suspend,
)
from proxy.web.relay_request import send_upstream
from proxy.web.relay_response import Sent, respond
from proxy.web.responses import found
from proxy.web.session_cookie import current_session, forget_tossed_cookies

log = get_logger("relay")


async def relay_handler(request: web.Request, host: str) -> web.StreamResponse:
    """Snapshot once, session, decide; then redirect, refuse or forward."""
    app = request.app
    snapshot, now, stores = app[RULEBOOK].snapshot, app[CLOCK](), app[RELAY]
    session = await current_session(request)
    if session is not None:
        note_library(request, session.library)  # #21: a refusal page wears its library's brand
    suspended = session is not None and is_suspended(stores.suspensions, session, now)
    decision = decide(view_of(request, host), session, now, snapshot, suspended=suspended)
    if isinstance(decision, Forward) and decision.plan.anonymous:
        request[VENDOR_KEY] = decision.plan.rule.id
        return await relay_anonymous(request, stores, snapshot, decision.plan, now)
    if isinstance(decision, Forward) and session is not None:
        request[VENDOR_KEY] = decision.plan.rule.id
        request[UPSTREAM_URL_KEY] = decision.plan.origin.url_prefix() + decision.plan.target
        request[SESSION_KEY] = session.key  # only ever logged as a daily-keyed HMAC (#18)
        exchange = Exchange(request, stores, snapshot, decision.plan, session, now)
        return await within_caps(exchange)
    if isinstance(decision, Redirect):
        if decision.vendor:
            request[VENDOR_KEY] = decision.vendor
        response = found(decision.location)
        response.set_status(decision.status)
        forget_tossed_cookies(request, response)  # R7: two session cookies are none
        return response
    assert isinstance(decision, Deny)
    if decision.vendor:
        request[VENDOR_KEY] = decision.vendor
    log.info("relay_refused", reason=decision.reason, vendor=decision.vendor or None)
    raise Refused(decision)


def view_of(request: web.Request, host: str) -> RequestView:
    """The request as the decision reads it."""
    return RequestView(
        request.method,
        host,
        request.raw_path,
        list(request.headers.items()),
        request.content_length,
        tuple(request.headers.getall(hdrs.CONTENT_ENCODING, ())),
    )


async def within_caps(ex: Exchange) -> web.StreamResponse:
    """Forward, unless this session or address already has its cap of requests in flight
    (R3: one patron must not hold every vendor connection); counted down in ``finally``."""
    stores, session = ex.stores, ex.session
    assert session is not None  # anonymous plans go through relay_anonymous
    caps = stores.settings.relay
    address = client_address_of(ex.request, stores.settings.trusted_proxies)
    refused = stores.in_flight.enter(
        session.key, address, caps.concurrent_per_session, caps.concurrent_per_address
    )
    if refused is not None:
        log.warning("relay_concurrency_refused", vendor=ex.plan.rule.id, cap=refused)
        raise TooBusy(refused)
    try:
        return await forward(ex)
    finally:
        stores.in_flight.leave(session.key, address)


async def forward(ex: Exchange) -> web.StreamResponse:
    """Check the limits, send upstream and stream the answer back, metered and watched."""
    stores, plan, now = ex.stores, ex.plan, ex.now
    keys, limits = plan.accounting, plan.limits
    await refuse_if_over(ex)
    started = time.perf_counter()
    upstream = await send_upstream(ex)
    observe_upstream(keys.vendor, time.perf_counter() - started)
    meter = BodyMeter(stores.abuse, keys.subject, limits, now)
    sent: Sent | None = None
    crossed: LimitCrossed | None = None
    try:
        content_type = upstream.headers.get("Content-Type", "")
        download = is_download_answer(ex.request.method, upstream.status, content_type)
        if download:
            crossed = await stores.abuse.add_download(keys.subject, limits, now)
        if crossed is None:
            sent = await respond_watched(ex, upstream, meter)
    except LimitReached:  # over the bytes limit before anything was sent
        pass
    finally:
        upstream.release()  # an unread body closes the vendor connection rather than reuse it
        await settle(stores.abuse, meter)
    if sent is not None:
        account(stores.usage, keys, sent.size, download, now)
        count_response(keys.vendor, upstream.status, sent.size)
    crossed = crossed or meter.crossed
    if crossed is not None:
        await suspend(stores.suspensions, keys, crossed, limits, now)
    if sent is None:  # a download or a body over the limit: refused before it was sent
        raise Refused(SUSPENDED)
    if sent.third_parties:
        blocked = count_third_parties(stores.usage, keys.vendor, plan.rule, sent.third_parties, now)
        if ex.session is not None:  # #21: the transparency page's blocked references
            stores.disclosures.blocked(ex.session.key, plan.rule.id, blocked)
    return sent.response


async def refuse_if_over(ex: Exchange) -> None:
    """R10: count the request, or refuse it when it would cross a limit, before anything is
    sent upstream; account sharing in ``log`` mode is only logged."""
    limits, now = ex.plan.limits, ex.now
    network = client_network(ex.request) if limits.card_networks is not None else None
    assert ex.session is not None  # anonymous plans go through relay_anonymous
    crossed = await over_limits(ex.stores.abuse, ex.session, network, limits, now)
    if crossed is None:
        return
    await suspend(ex.stores.suspensions, ex.plan.accounting, crossed, limits, now)
    if action_for(crossed, limits) == "suspend":
        raise Refused(SUSPENDED)


async def respond_watched(ex: Exchange, upstream: UpstreamResponse, meter: BodyMeter) -> Sent:
    """``respond``, with a browser that stops reading disconnected after the deadline."""
    watched = ex.stores.stalls.watch(ex.request, meter, ex.plan.rule.id)
    try:
        return await respond(ex, upstream, meter)
    finally:
        ex.stores.stalls.unwatch(watched)
