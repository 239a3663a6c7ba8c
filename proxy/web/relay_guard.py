"""While a response is relayed: its bytes against the limits, and the browser's time (R3).

Contract: ``BodyMeter.add(n)`` counts relayed body bytes against the abuse limits as they
stream and raises ``LimitReached`` the moment the bytes limit is crossed, so the body is cut
short rather than served (R3); ``meter.crossed`` then says which limit. ``StallWatcher``
closes the browser connection when it has accepted none of a response for
``relay.client_write_seconds`` while data waits to be sent — a browser that does not read
would otherwise hold its vendor connection forever (R3); the write that was waiting then
fails and the relay releases the vendor connection in its ``finally``.
``TooBusy`` is what a request over the concurrency caps gets (429).
Not here: the caps' counters (core/inflight.py, used by relay.py), the limits
(core/abuse.py), suspending (relay.py, stores/suspensions.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web

from proxy.core.abuse import AbuseLimits, AbuseMonitor, LimitCrossed
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger

log = get_logger("relay")
WATCH_STEPS = 4  # the stall check runs this many times per deadline: cut within 1.25x of it


class TooBusy(ClamshellError):
    """One session or address already has as many requests in flight as allowed."""

    status_hint = 429
    public_message = (
        "Too many pages are loading at once from your browser or network. "
        "Please wait a moment and try again."
    )


class LimitReached(ClamshellError):
    """A usage limit was crossed while a response was being relayed."""

    status_hint = 403
    public_message = (
        "Your access has been paused because of unusually heavy use. Please contact your library."
    )


class BodyMeter:
    """Counts one response's body bytes against a subject's bytes limit."""

    __slots__ = ("_count", "bytes", "crossed")

    def __init__(
        self, monitor: AbuseMonitor, subject: str, limits: AbuseLimits, now: datetime
    ) -> None:
        self._count = monitor.byte_count(subject, limits, now)
        self.bytes = 0
        self.crossed: LimitCrossed | None = None

    def add(self, size: int) -> None:
        """Count ``size`` bytes; ``LimitReached`` when they cross the limit (not sent then)."""
        self.bytes += size
        crossed = self._count.add(size)
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
