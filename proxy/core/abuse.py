"""Abuse limits without reading histories (EZproxy UsageLimit and security rules).

Contract: ``AbuseMonitor.record(...)`` counts a session's requests, bytes and document
downloads in one-minute buckets over a sliding interval and returns the first limit crossed
(or None); ``network_seen(...)`` counts the distinct client networks (/24, /48) a card used
within an interval, for account sharing. Counters are keyed by opaque session and patron
keys, hold no URL, and are dropped with ``forget``/``expire``. Pure, injected ``now``.
Not here: suspending a session and recording the event (stores/suspensions.py).
"""

from __future__ import annotations

from collections import defaultdict
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


@dataclass(slots=True)
class _Buckets:
    minutes: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))

    def add(self, minute: int, size: int, download: bool) -> None:
        bucket = self.minutes[minute]
        bucket[0] += 1
        bucket[1] += size
        bucket[2] += int(download)

    def totals(self, since: int) -> tuple[int, int, int]:
        for old in [m for m in self.minutes if m < since]:
            del self.minutes[old]
        return (
            sum(b[0] for b in self.minutes.values()),
            sum(b[1] for b in self.minutes.values()),
            sum(b[2] for b in self.minutes.values()),
        )


class AbuseMonitor:
    """Sliding per-session counters and per-card network sets."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Buckets] = {}
        self._networks: dict[str, dict[str, int]] = {}

    def record(
        self, session_key: str, limits: AbuseLimits, *, size: int, download: bool, now: datetime
    ) -> LimitCrossed | None:
        """Count one response; the first limit crossed, if any."""
        minute = int(now.timestamp() // 60)
        buckets = self._sessions.setdefault(session_key, _Buckets())
        buckets.add(minute, size, download)
        since = minute - int(limits.interval.total_seconds() // 60) + 1
        requests, size_total, downloads = buckets.totals(since)
        self._bound(self._sessions)
        checks: tuple[tuple[LimitName, int, int | None], ...] = (
            ("requests", requests, limits.requests),
            ("bytes", size_total, limits.bytes),
            ("downloads", downloads, limits.downloads),
        )
        for name, value, threshold in checks:
            if threshold is not None and value > threshold:
                return LimitCrossed(name, value, threshold)
        return None

    def network_seen(
        self, patron_key: str, network: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """Note that a card was used from a network; crossed when too many in the interval."""
        if limits.card_networks is None:
            return None
        seen = self._networks.setdefault(patron_key, {})
        stamp = int(now.timestamp())
        is_new = network not in seen
        seen[network] = stamp
        horizon = stamp - int(limits.card_networks_interval.total_seconds())
        for old in [n for n, t in seen.items() if t < horizon]:
            del seen[old]
        self._bound(self._networks)
        if is_new and len(seen) > limits.card_networks:  # report each new network past the limit
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
        """Drop a session's counters (it ended)."""
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
