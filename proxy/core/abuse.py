"""Abuse limits without reading histories (EZproxy UsageLimit and security rules).

Contract: ``AbuseMonitor`` counts a subject's requests, bytes and document downloads in
one-minute buckets over a sliding interval, subject = the card's keyed hash (or the session
key for card-less sessions), so a new login does not reset them. Limits are checked before
the work: ``admit`` refuses a request that would cross, ``add_download`` is called when a
response head shows a document, ``add_bytes`` per body chunk; each returns the limit crossed
(or None). ``network_seen(...)`` counts the distinct client networks (/24, /48) a card used
within an interval, for account sharing. Counters are keyed by opaque keys, hold no URL,
and are dropped with ``forget``/``expire``. Pure, injected ``now``.
Not here: suspending a session and recording the event (stores/suspensions.py).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from proxy.core.rules import RuleLimits
from proxy.core.settings import UsageLimits

MAX_TRACKED: Final = 200_000  # bounds memory: oldest entries are dropped beyond it


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    """Thresholds per session within ``interval`` (None: no limit)."""

    interval: timedelta = timedelta(hours=1)
    requests: int | None = None
    bytes: int | None = None
    downloads: int | None = None
    card_networks: int | None = None
    card_networks_interval: timedelta = timedelta(hours=1)
    card_networks_action: Literal["log", "block"] = "log"


LimitName = Literal["requests", "bytes", "downloads", "card_networks"]


@dataclass(frozen=True, slots=True)
class LimitCrossed:
    """Which limit a session crossed."""

    limit: LimitName
    value: int
    threshold: int


Totals = tuple[int, int, int]  # requests, bytes, downloads within the interval
REQUESTS, BYTES, DOWNLOADS = 0, 1, 2  # indexes into a window's counts


@dataclass(slots=True)
class _Window:
    """One subject's counts per minute, with running totals over the minutes kept."""

    minutes: dict[int, list[int]] = field(default_factory=dict)  # oldest first
    totals: list[int] = field(default_factory=lambda: [0, 0, 0])
    rolled_at: int = -1  # the minute of the last roll: within one minute nothing expires

    def add(self, minute: int, what: int, amount: int) -> None:
        bucket = self.minutes.get(minute)
        if bucket is None:
            bucket = self.minutes[minute] = [0, 0, 0]
        bucket[what] += amount
        self.totals[what] += amount

    def roll(self, since: int) -> None:
        """Drop the minutes before ``since`` (the clock moves forward: oldest come first)."""
        while self.minutes:
            first = next(iter(self.minutes))
            if first >= since:
                return
            for what, amount in enumerate(self.minutes.pop(first)):
                self.totals[what] -= amount

    def newest(self) -> int:
        return next(reversed(self.minutes)) if self.minutes else -1


MINUTE: Final = timedelta(minutes=1)


def minute_of(now: datetime) -> int:
    """The minute (since the epoch) a window bucket of ``now`` is counted in."""
    return int(now.timestamp()) // 60


def first_minute(minute: int, interval: timedelta) -> int:
    """The oldest minute still inside a window of ``interval`` ending at ``minute``."""
    return minute - interval // MINUTE + 1


def over(name: LimitName, value: int, threshold: int | None) -> LimitCrossed | None:
    """The limit crossed when ``value`` passes ``threshold`` (None: no limit)."""
    if threshold is not None and value > threshold:
        return LimitCrossed(name, value, threshold)
    return None


def admission(totals: Totals, limits: AbuseLimits) -> LimitCrossed | None:
    """The limit one more request would cross given the window's ``totals``, or None."""
    requests, size, downloads = totals
    return (
        over("requests", requests + 1, limits.requests)
        or over("bytes", size, limits.bytes)
        or over("downloads", downloads, limits.downloads)
    )


@dataclass(slots=True)
class ByteCount:
    """One response's bytes, counted into its subject's window as they are relayed."""

    window: _Window
    minute: int
    threshold: int | None

    def add(self, size: int) -> LimitCrossed | None:
        """Count ``size`` bytes; the bytes limit once the total passes it."""
        self.window.add(self.minute, BYTES, size)
        total = self.window.totals[BYTES]
        if self.threshold is not None and total > self.threshold:
            return LimitCrossed("bytes", total, self.threshold)
        return None


class AbuseMonitor:
    """Sliding per-subject counters and per-card network sets.

    A subject is the card's keyed hash (``session.patron_key``) so that logging in again does
    not reset the counts, or the session key for sessions without a card (auto-login).
    Limits are checked before the work they limit (R10): ``admit`` before a request is sent,
    ``add_download`` when a response head shows a document, ``add_bytes`` per body chunk.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, _Window] = {}
        self._networks: dict[str, dict[str, int]] = {}

    def _window(self, subject: str, minute: int, limits: AbuseLimits) -> _Window:
        window = self._sessions.get(subject)
        if window is None:
            window = self._sessions[subject] = _Window()
            self._bound(self._sessions)
        if window.rolled_at != minute:
            window.roll(first_minute(minute, limits.interval))
            window.rolled_at = minute
        return window

    def admit(self, subject: str, limits: AbuseLimits, now: datetime) -> LimitCrossed | None:
        """Count one request about to be sent; or, when it would cross a limit (or one is
        already crossed), count nothing and return the limit: the request is refused."""
        minute = minute_of(now)
        window = self._window(subject, minute, limits)
        crossed = admission((window.totals[0], window.totals[1], window.totals[2]), limits)
        if crossed is None:
            window.add(minute, REQUESTS, 1)
        return crossed

    def add_download(self, subject: str, limits: AbuseLimits, now: datetime) -> LimitCrossed | None:
        """Count one document download (known from its response head); crossed past the limit."""
        minute = minute_of(now)
        window = self._window(subject, minute, limits)
        window.add(minute, DOWNLOADS, 1)
        return over("downloads", window.totals[DOWNLOADS], limits.downloads)

    def add_bytes(
        self, subject: str, size: int, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """Count body bytes as they are relayed; crossed as soon as the total passes the limit."""
        return self.byte_count(subject, limits, now).add(size)

    def byte_count(self, subject: str, limits: AbuseLimits, now: datetime) -> ByteCount:
        """A counter for one response's body: ``add`` per chunk costs two list additions."""
        minute = minute_of(now)
        return ByteCount(self._window(subject, minute, limits), minute, limits.bytes)

    def record(
        self, subject: str, limits: AbuseLimits, *, size: int, download: bool, now: datetime
    ) -> LimitCrossed | None:
        """Count one whole response after the fact; the first limit crossed, if any."""
        minute = minute_of(now)
        window = self._window(subject, minute, limits)
        window.add(minute, REQUESTS, 1)
        window.add(minute, BYTES, size)
        window.add(minute, DOWNLOADS, int(download))
        requests, size_total, downloads = window.totals
        return (
            over("requests", requests, limits.requests)
            or over("bytes", size_total, limits.bytes)
            or over("downloads", downloads, limits.downloads)
        )

    def totals(self, subject: str, limits: AbuseLimits, now: datetime) -> Totals:
        """Requests, bytes and downloads counted for a subject within the interval."""
        window = self._sessions.get(subject)
        if window is None:
            return (0, 0, 0)
        window.roll(first_minute(minute_of(now), limits.interval))
        requests, size, downloads = window.totals
        return requests, size, downloads

    def expire(self, now: datetime, interval: timedelta) -> int:
        """Forget subjects with nothing counted within ``interval``; returns how many went.

        Counters outlive sessions (they are keyed by card); this sweep bounds their memory.
        """
        since = first_minute(minute_of(now), interval)
        gone = [key for key, window in self._sessions.items() if window.newest() < since]
        for key in gone:
            del self._sessions[key]
        return len(gone)

    def network_seen(
        self, patron_key: str, network: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """Note that a card was used from a network; crossed when too many in the interval."""
        if limits.card_networks is None:
            return None
        seen = self._networks.setdefault(patron_key, {})
        stamp = int(now.timestamp())
        if network in seen:  # a known network (nearly every request): only its time moves;
            seen[network] = stamp  # older ones go at the next new one, or expire_networks
            return None
        seen[network] = stamp
        horizon = stamp - int(limits.card_networks_interval.total_seconds())
        for old in [n for n, t in seen.items() if t < horizon]:
            del seen[old]
        self._bound(self._networks)
        if len(seen) > limits.card_networks:  # report each new network past the limit
            return LimitCrossed("card_networks", len(seen), limits.card_networks)
        return None

    def expire_networks(self, now: datetime, interval: timedelta) -> int:
        """Forget card-network sightings older than ``interval``; returns how many cards went.

        A sighting only counts within the interval anyway; without this sweep, the networks
        of a card that is not used again would stay in memory until evicted by size.
        """
        horizon = int(now.timestamp()) - int(interval.total_seconds())
        gone = []
        for patron_key, seen in self._networks.items():
            for old in [n for n, t in seen.items() if t < horizon]:
                del seen[old]
            if not seen:
                gone.append(patron_key)
        for patron_key in gone:
            del self._networks[patron_key]
        return len(gone)

    def forget(self, session_key: str) -> None:
        """Drop the counters of a card-less session (it ended); a card's counts stay."""
        self._sessions.pop(session_key, None)

    def __len__(self) -> int:
        return len(self._sessions) + len(self._networks)

    @staticmethod
    def _bound(table: MutableMapping[str, Any]) -> None:
        while len(table) > MAX_TRACKED:
            del table[next(iter(table))]


def merged_limits(glob: UsageLimits, own: RuleLimits) -> AbuseLimits:
    """The session limits for one vendor: the rule's overrides over proxy.yaml's."""
    megabytes = own.megabytes or glob.megabytes
    return AbuseLimits(
        interval=timedelta(minutes=glob.interval_minutes),
        requests=own.requests or glob.requests,
        bytes=megabytes * 2**20 if megabytes else None,
        downloads=own.downloads or glob.downloads,
        card_networks=glob.card_networks,
        card_networks_interval=timedelta(minutes=glob.card_networks_minutes),
        card_networks_action=glob.card_networks_action,
    )


AbuseAction = Literal["suspend", "log"]


def action_for(crossed: LimitCrossed, limits: AbuseLimits) -> AbuseAction:
    """What crossing a limit does: account sharing may be only logged; the rest suspends."""
    if crossed.limit == "card_networks" and limits.card_networks_action == "log":
        return "log"
    return "suspend"
