"""Failed-login throttling (EZproxy ``IntruderUserAttempts`` / ``IntruderIPAttempts``).

Contract: a ``Throttle`` counts failed logins in three scopes — per card, per client address
and globally — each against its own limit over a sliding window, with an injected ``now``.
When a failure brings a scope's count to its limit, that scope is locked for ``lockout`` and
its count starts afresh (so after the lock, a patron has the full allowance again);
``blocked`` then answers with a ``ThrottleVerdict`` (which scope, until when) and the caller
shows the same generic message it shows for a wrong PIN. The per-address limit is what catches
"one PIN tried against many cards" from one source; the global limit ("everyone waits") is the
last line against a distributed attack and is worth a log line when it trips.

Keys are opaque strings. The caller passes keyed hashes of the card and the client address,
never raw values (DESIGN P3/P4); nothing here is ever written to disk.

The window is the two-bucket sliding estimate (the count of the current window plus the
previous window's count weighted by how much of it still overlaps): O(1) memory per key and no
fixed-window burst of 2x the limit at a boundary. Memory is bounded: ``expire`` drops counters
that can no longer matter, and at most ``max_keys`` card/address counters are kept (least
recently failed evicted first). Evicting a locked card needs ``max_keys`` fresh failures, which
trips the global limit long before (keep ``global_attempts`` well below ``max_keys``).

Caller contract: check ``blocked`` first; while blocked, do not check the PIN and do not record
the attempt. ``record_success`` clears only the card's counter: the address counter stays, so
an attacker who owns one valid card cannot reset their address's count by logging in with it.
Not here: hashing keys (core/keyedhash.py), messages and logging (the login handler).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from proxy.core.settings import Throttle as ThrottleSettings

Scope = Literal["card", "ip", "global"]

SCOPES: Final[tuple[Scope, ...]] = ("card", "ip", "global")  # order of precedence in verdicts
MAX_KEYS: Final = 100_000  # card + address counters kept at most (~200 bytes each)


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """How many failures each scope may have per window, and how long a lock lasts."""

    card_attempts: int
    ip_attempts: int
    global_attempts: int
    window: timedelta
    lockout: timedelta
    max_keys: int = MAX_KEYS

    @classmethod
    def from_settings(cls, settings: ThrottleSettings) -> ThrottleLimits:
        """The limits configured under ``throttle:`` in proxy.yaml."""
        return cls(
            card_attempts=settings.card_attempts,
            ip_attempts=settings.ip_attempts,
            global_attempts=settings.global_attempts,
            window=timedelta(minutes=settings.window_minutes),
            lockout=timedelta(minutes=settings.lockout_minutes),
        )

    def attempts(self, scope: Scope) -> int:
        """The failure limit of one scope."""
        limits: Mapping[Scope, int] = {
            "card": self.card_attempts,
            "ip": self.ip_attempts,
            "global": self.global_attempts,
        }
        return limits[scope]


@dataclass(frozen=True, slots=True)
class ThrottleVerdict:
    """Logins are refused: ``scope`` is locked until ``until``."""

    scope: Scope
    until: datetime


@dataclass(slots=True)
class _Counter:
    """Failures of one key: the current window's count, the previous one's, and any lock."""

    window_start: datetime
    last_failure: datetime  # orders eviction and expiry
    current: int = 0
    previous: int = 0
    locked_until: datetime | None = None

    def roll(self, now: datetime, window: timedelta) -> None:
        """Move the buckets forward so that ``now`` falls in the current window."""
        elapsed = now - self.window_start
        if elapsed >= 2 * window:
            self.window_start, self.current, self.previous = now, 0, 0
        elif elapsed >= window:
            self.window_start += window
            self.current, self.previous = 0, self.current

    def estimate(self, now: datetime, window: timedelta) -> float:
        """Failures within the window ending at ``now`` (the sliding estimate)."""
        elapsed = now - self.window_start
        if elapsed >= 2 * window:
            return 0.0
        if elapsed >= window:
            return self.current * (1 - (elapsed - window) / window)
        return self.current + self.previous * (1 - elapsed / window)

    def lock(self, now: datetime, lockout: timedelta) -> None:
        """Lock for ``lockout`` from ``now`` and count afresh for when the lock ends."""
        until = now + lockout
        self.locked_until = max(self.locked_until or until, until)
        self.window_start, self.current, self.previous = now, 0, 0

    def locked(self, now: datetime) -> bool:
        """Whether a lock is in force at ``now``."""
        return self.locked_until is not None and now < self.locked_until


class Throttle:
    """Failure counters for logins; all methods take the current time from the caller."""

    def __init__(self, limits: ThrottleLimits) -> None:
        self.limits = limits
        # (scope, key) -> counter, least recently failed first; the global counter is kept
        # apart so that it can never be evicted.
        self._keyed: OrderedDict[tuple[Scope, str], _Counter] = OrderedDict()
        self._global: _Counter | None = None

    def __len__(self) -> int:
        """How many card and address counters are held (the memory bound's measure)."""
        return len(self._keyed)

    def blocked(self, card_key: str | None, ip_key: str, now: datetime) -> ThrottleVerdict | None:
        """The lock that refuses this login, if any (the latest-ending one when several)."""
        locks = [
            ThrottleVerdict(scope, counter.locked_until)
            for scope, counter in self._existing(card_key, ip_key)
            if counter.locked_until is not None and counter.locked(now)
        ]
        return max(locks, key=lambda verdict: verdict.until, default=None)

    def record_failure(
        self, card_key: str | None, ip_key: str, now: datetime
    ) -> ThrottleVerdict | None:
        """Count a failed login in every scope; returns the lock now in force, if any."""
        window = self.limits.window
        for scope, key in _scoped(card_key, ip_key):
            counter = self._counter_for(scope, key, now)
            counter.roll(now, window)
            counter.current += 1
            counter.last_failure = now
            if counter.estimate(now, window) >= self.limits.attempts(scope):
                counter.lock(now, self.limits.lockout)
        return self.blocked(card_key, ip_key, now)

    def record_success(self, card_key: str | None, ip_key: str, now: datetime) -> None:
        """Clear the card's counter after a good login (the address and global counts stay)."""
        if card_key is not None:
            self._keyed.pop(("card", card_key), None)

    def expire(self, now: datetime) -> int:
        """Drop counters that can no longer count or lock anything; returns how many."""
        horizon = max(2 * self.limits.window, self.limits.lockout)
        dropped = 0
        while self._keyed:
            oldest, counter = next(iter(self._keyed.items()))
            if now < counter.last_failure + horizon:
                break  # ordered by last failure: every later counter is younger still
            del self._keyed[oldest]
            dropped += 1
        if self._global is not None and now >= self._global.last_failure + horizon:
            self._global = None
        return dropped

    def _existing(self, card_key: str | None, ip_key: str) -> Iterator[tuple[Scope, _Counter]]:
        for scope, key in _scoped(card_key, ip_key):
            counter = self._global if scope == "global" else self._keyed.get((scope, key))
            if counter is not None:
                yield scope, counter

    def _counter_for(self, scope: Scope, key: str, now: datetime) -> _Counter:
        if scope == "global":
            if self._global is None:
                self._global = _Counter(window_start=now, last_failure=now)
            return self._global
        counter = self._keyed.get((scope, key))
        if counter is None:
            counter = self._keyed[(scope, key)] = _Counter(window_start=now, last_failure=now)
        self._keyed.move_to_end((scope, key))
        while len(self._keyed) > self.limits.max_keys:
            self._keyed.popitem(last=False)
        return counter


def _scoped(card_key: str | None, ip_key: str) -> Iterator[tuple[Scope, str]]:
    if card_key is not None:
        yield "card", card_key
    yield "ip", ip_key
    yield "global", ""
