"""Requests relayed without a session (#17): CORS preflights and a rule's ``anonymous`` entries.

Contract: ``relay_anonymous(request, stores, snapshot, plan, now)`` relays an anonymous
``ForwardPlan`` (core/decision.py decided it): within the per-address in-flight cap and the
per-address quota (stores/address_quotas.py; 429 beyond it), with the plan's policy headers
only — no session, no vendor cookies, no pseudonym, nothing patron-derived (relay_request.py
adds none for an anonymous plan; relay_response.py keeps no Set-Cookie from its answer) — and
counted in statistics under the library key ``(anonymous)``. The answer is rewritten as any other
(Access-Control-Allow-Origin mapped by core/headers.py).
Not here: which requests qualify (core/decision.py), the quota's arithmetic (core/addressquota.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Final

from aiohttp import web

from proxy.core.decision import Deny, ForwardPlan
from proxy.core.snapshot import RuleSnapshot
from proxy.core.usage import is_download_answer
from proxy.logconfig import get_logger
from proxy.web.exchange import Exchange
from proxy.web.keys import RelayStores
from proxy.web.relay_guard import Refused, TooBusy, account, client_address_of
from proxy.web.relay_request import send_upstream
from proxy.web.relay_response import respond

log = get_logger("relay")
OVER_QUOTA: Final = Deny(
    429,
    "Too many requests from your network. Please wait a minute.",
    "anonymous_quota",
    {"Retry-After": "60"},  # RFC 6585 §4
)


async def relay_anonymous(
    request: web.Request,
    stores: RelayStores,
    snapshot: RuleSnapshot,
    plan: ForwardPlan,
    now: datetime,
) -> web.StreamResponse:
    """Relay one anonymous request within the per-address quota and in-flight cap."""
    address = client_address_of(request, stores.settings.trusted_proxies)
    if not await stores.anonymous.admit(address, now.timestamp()):
        log.warning("anonymous_refused", vendor=plan.rule.id, reason="quota")
        raise Refused(replace(OVER_QUOTA, vendor=plan.rule.id))
    caps = stores.settings.relay
    key = f"anonymous:{address}"  # one in-flight slot set per address, never a session's
    refused = stores.in_flight.enter(
        key, address, caps.concurrent_per_session, caps.concurrent_per_address
    )
    if refused is not None:
        raise TooBusy(refused)
    try:
        return await _forward(Exchange(request, stores, snapshot, plan, None, now))
    finally:
        stores.in_flight.leave(key, address)


async def _forward(ex: Exchange) -> web.StreamResponse:
    upstream = await send_upstream(ex)
    try:
        sent = await respond(ex, upstream)
        download = is_download_answer(
            ex.request.method, upstream.status, upstream.headers.get("Content-Type", "")
        )
    finally:
        upstream.release()
    account(ex.stores.usage, ex.plan.accounting, sent.size, download, ex.now)
    return sent.response
