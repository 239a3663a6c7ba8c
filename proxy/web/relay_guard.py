"""While a response is relayed: its bytes against the limits, and the browser's time (R3).

Contract: ``BodyMeter.add(n)`` counts relayed body bytes against the abuse limits as they
stream and raises ``LimitReached`` the moment the bytes limit is crossed, so the body is cut
short rather than served (R3); ``meter.crossed`` then says which limit. ``StallWatcher``
closes the browser connection when it has accepted none of a response for
``relay.client_write_seconds`` while data waits to be sent — a browser that does not read
would otherwise hold its vendor connection forever (R3); the write that was waiting then
fails and the relay releases the vendor connection in its ``finally``.
``Refused`` carries a ``Deny`` to the error boundary; ``TooBusy`` is what a request over
the concurrency caps gets (429). ``over_limits`` counts a request against the abuse limits
before it is relayed (R10: one that would cross them is refused), ``suspend`` suspends the
card (or logs, for account sharing in ``log`` mode), ``account`` and ``count_third_parties``
add the aggregate statistics (no URL); each
receives the stores it needs, never the request.
Not here: the caps' counters (core/inflight.py), the limits (core/abuse.py), the flow
(relay.py), the suspensions' rows (stores/suspensions.py).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from aiohttp import web

from proxy.core.abuse import AbuseLimits, LimitCrossed, action_for
from proxy.core.clientaddr import IPNetwork, client_address
from proxy.core.decision import Accounting, Deny
from proxy.core.rules import VendorRule
from proxy.core.usage import UsageCounters
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.metrics import count_abuse_trip
from proxy.stores.abuse_counters import AbuseCounters
from proxy.stores.redis_state import StateUnavailable
from proxy.stores.sessions import Session
from proxy.stores.suspensions import Suspensions

log = get_logger("relay")
WATCH_STEPS = 4  # the stall check runs this many times per deadline: cut within 1.25x of it


class TooBusy(ClamshellError):
    """One session or address already has as many requests in flight as allowed."""

    status_hint = 429
    public_message = (
        "Too many pages are loading at once from your browser or network. "
        "Please wait a moment and try again."
    )


class Refused(ClamshellError):
    """A ``Deny`` decision (core/decision.py), for the error boundary to render."""

    def __init__(self, deny: Deny) -> None:
        super().__init__(deny.reason)
        self.status_hint = deny.status
        self.public_message = deny.message
        self.response_headers: Mapping[str, str] = MappingProxyType(dict(deny.headers or {}))


class LimitReached(ClamshellError):
    """A usage limit was crossed while a response was being relayed."""

    status_hint = 403
    public_message = (
        "Your access has been paused because of unusually heavy use. Please contact your library."
    )


class BodyMeter:
    """Counts one response's body bytes against a subject's bytes limit."""

    __slots__ = ("bytes", "count", "crossed")

    def __init__(
        self, counters: AbuseCounters, subject: str, limits: AbuseLimits, now: datetime
    ) -> None:
        self.count = counters.byte_count(subject, limits, now)
        self.bytes = 0
        self.crossed: LimitCrossed | None = None

    def add(self, size: int) -> None:
        """Count ``size`` bytes; ``LimitReached`` when they cross the limit (not sent then)."""
        self.bytes += size
        crossed = self.count.add(size)
        if crossed is not None:
            self.crossed = crossed
            raise LimitReached(crossed.limit)


class _Watched:
    """One response being watched: its socket, meter, and when its meter last moved."""

    __slots__ = ("last", "meter", "since", "transport", "vendor")

    def __init__(self, transport: asyncio.Transport, meter: BodyMeter, vendor: str) -> None:
        self.transport, self.meter, self.vendor = transport, meter, vendor
        self.last, self.since = meter.bytes, -1.0  # -1: not looked at yet


class StallWatcher:
    """Disconnects browsers that accept none of a response for ``seconds``. One per app: a
    timer runs only while responses stream, and looks at each one's meter and send buffer a
    few times per deadline (watching a response costs a set insertion, not a timer)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._watched: set[_Watched] = set()
        self._handle: asyncio.TimerHandle | None = None

    def watch(self, request: web.Request, meter: BodyMeter, vendor: str) -> _Watched | None:
        """Start watching one response; pass the result to ``unwatch`` when it is over."""
        transport = request.transport
        if transport is None:
            return None
        entry = _Watched(transport, meter, vendor)
        self._watched.add(entry)
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_later(self._seconds / WATCH_STEPS, self._check)
        return entry

    def unwatch(self, entry: _Watched | None) -> None:
        """The response is over (sent, cut or failed)."""
        if entry is not None:
            self._watched.discard(entry)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        self._handle, now = None, loop.time()
        for entry in list(self._watched):
            if self._stalled(entry, now):
                log.warning("client_write_stalled", vendor=entry.vendor)
                self._watched.discard(entry)
                entry.transport.abort()  # close() would wait for the unread buffer: forever
        if self._watched:
            self._handle = loop.call_later(self._seconds / WATCH_STEPS, self._check)

    def _stalled(self, entry: _Watched, now: float) -> bool:
        """No byte moved since the last look, data waits to be sent, for ``seconds``.

        A response is first looked at up to a quarter deadline after it started, so the
        cut comes between one and one and a half deadlines after the browser stopped.
        """
        transport = entry.transport
        if transport.is_closing():
            return False
        moved = entry.meter.bytes != entry.last or entry.since < 0
        if moved or transport.get_write_buffer_size() == 0:
            entry.last, entry.since = entry.meter.bytes, now  # moving, or waiting on the vendor
            return False
        return now - entry.since >= self._seconds

    def close(self) -> None:
        """Stop the timer (app shutdown)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._watched.clear()


def client_address_of(request: web.Request, trusted: tuple[IPNetwork, ...]) -> str:
    """The patron's address as text ('' when unknown), cached per (peer, X-Forwarded-For)."""
    forwarded = tuple(request.headers.getall("X-Forwarded-For", ()))
    return _address_of(request.remote, forwarded, trusted)


@functools.lru_cache(maxsize=4096)  # once per relayed request; peers repeat
def _address_of(
    peer: str | None, forwarded: tuple[str, ...], trusted: tuple[IPNetwork, ...]
) -> str:
    addr = client_address(peer, forwarded, trusted)
    return str(addr) if addr else ""


def is_suspended(book: Suspensions, session: Session, now: datetime) -> bool:
    """The card is suspended, or this very session is (staff suspend sessions by hash)."""
    if book.is_suspended(session.patron_key or session.key, now):
        return True
    return session.patron_key is not None and book.is_suspended(session.key, now)


async def over_limits(
    abuse: AbuseCounters,
    session: Session,
    network: str | None,
    limits: AbuseLimits,
    now: datetime,
) -> LimitCrossed | None:
    """R10: count the request, or say which limit it would cross, before anything is sent;
    ``network`` (the card-sharing check) is None when the check does not apply."""
    crossed = await abuse.admit(session.patron_key or session.key, limits, now)
    if crossed is None and network is not None and session.patron_key is not None:
        crossed = await abuse.network_seen(session.patron_key, network, limits, now)
    return crossed


async def settle(abuse: AbuseCounters, meter: BodyMeter) -> None:
    """The response is over: its bytes into the shared window (redis mode; a failure is
    logged, as the response has already gone)."""
    try:
        await abuse.settle(meter.count)
    except StateUnavailable:
        log.error("abuse_bytes_unsaved")


async def suspend(
    book: Suspensions,
    keys: Accounting,
    crossed: LimitCrossed,
    limits: AbuseLimits,
    now: datetime,
) -> None:
    """Suspend the card (or only log, for account sharing in ``log`` mode); the rows are
    written in a worker thread, the suspension takes effect at once in memory."""
    subject, vendor = keys.subject, keys.vendor
    count_abuse_trip(crossed.limit)
    if action_for(crossed, limits) == "log":
        entry = book.mark(subject, vendor, crossed.limit, now, action="logged")
        log.warning("usage_limit_logged", vendor=vendor, limit=crossed.limit)
        await asyncio.to_thread(book.write, entry, "logged")
    elif not book.is_suspended(subject, now):
        entry = book.mark(subject, vendor, crossed.limit, now)
        log.warning("session_suspended", vendor=vendor, limit=crossed.limit)
        await asyncio.to_thread(book.write, entry, "suspended")


def account(
    usage: UsageCounters, keys: Accounting, size: int, download: bool, now: datetime
) -> None:
    """Aggregate statistics for one relayed response (no URL kept)."""
    usage.request(
        now.date(),
        keys.vendor,
        keys.library,
        patron=keys.subject,
        session=keys.session,
        size=size,
        download=download,
    )


def count_third_parties(
    usage: UsageCounters, vendor: str, rule: VendorRule, hosts: Counter[str], now: datetime
) -> int:
    """Aggregate third-party host counts per vendor (no patron data); under
    ``third_party: block`` a host is blocked unless the rule's third_party_allow lists it.
    Returns how many references were blocked (for the session's transparency page)."""
    blocking = rule.third_party == "block"
    total = 0
    for host, count in hosts.items():
        blocked = blocking and not rule.third_party_allowed(host)
        usage.third_party(now.date(), vendor, host, blocked=blocked, count=count)
        total += count if blocked else 0
    return total
