"""Failed-login throttling (EZproxy ``IntruderUserAttempts`` / ``IntruderIPAttempts``).

Contract: a ``Throttle`` counts failed logins per card, per client address, per client
network (the address's /24 or /64: ``network_of``) and globally, each against its own limit
over a sliding window, with an injected ``now``. When a failure brings the card, address or
network count to its limit, that scope is locked for ``lockout`` and its count starts afresh
(so after the lock, a patron has the full allowance again); ``blocked`` then answers with a
``ThrottleVerdict`` (which scope, until when) and the caller shows the same generic message
it shows for a wrong PIN. The per-address limit catches "one PIN tried against many cards"
from one source; the per-network limit catches the same spread over the addresses of one
/24 or one IPv6 /64 (which one host can hold entirely).

The global scope never refuses anyone (pentest R4: a global lock let 2,200 failures from one
/24 shut every patron out for 15 minutes). Reaching its limit raises an *alarm* for
``lockout``: the caller logs it, counts it for the admin console and slows logins down by a
bounded delay while it lasts; a patron whose card, address and network are clean still gets
in. ``record_failure`` returns the scopes that this very failure tripped, so that the caller
logs each lock and alarm once.

Keys are opaque strings. The caller passes keyed hashes of the card, the client address and
the network, never raw values (DESIGN P3/P4); nothing here is ever written to disk.

The window is the two-bucket sliding estimate (the count of the current window plus the
previous window's count weighted by how much of it still overlaps): O(1) memory per key and no
fixed-window burst of 2x the limit at a boundary. Memory is bounded: ``expire`` drops counters
that can no longer matter, and at most ``max_keys`` card/address/network counters are kept
(least recently failed evicted first, but a locked counter is passed over while an unlocked
one is within ``EVICTION_PROBE`` of the oldest, so churn does not easily free a locked card).

Caller contract: check ``blocked`` first; while blocked, do not check the PIN and do not record
the attempt. ``record_success`` clears only the card's counter: the address and network
counters stay, so an attacker who owns one valid card cannot reset their count with it.
Not here: hashing keys (core/keyedhash.py), messages, logging and the delay (the login handler).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from proxy.core.settings import Throttle as ThrottleSettings

Scope = Literal["card", "address", "network", "global"]
LockScope = Literal["card", "address", "network"]

SCOPES: Final[tuple[Scope, ...]] = ("card", "address", "network", "global")  # verdict order
MAX_KEYS: Final = 100_000  # card + address + network counters kept at most (~200 bytes each)
EVICTION_PROBE: Final = 16  # how many of the oldest counters are searched for an unlocked one
MINUTE: Final = timedelta(minutes=1)  # the per-card login rate's window
IPV4_PREFIX: Final = 24  # one site or one customer's allocation
IPV6_PREFIX: Final = 64  # RFC 4291 §2.5.1 / RFC 7421: one subnet, which one host may own whole


def network_of(address: str, ipv4_prefix: int = IPV4_PREFIX, ipv6_prefix: int = IPV6_PREFIX) -> str:
    """The network an address is counted in ('203.0.113.0/24'); '' for no or junk address."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return ""
    prefix = ipv4_prefix if addr.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


@dataclass(frozen=True, slots=True)
class LoginKeys:
    """The opaque keys one login attempt is counted under (card None: no card given)."""

    card: str | None
    address: str
    network: str


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """How many failures each scope may have per window, and how long a lock lasts."""

    card_attempts: int
    ip_attempts: int
    global_attempts: int
    window: timedelta
    lockout: timedelta
    max_keys: int = MAX_KEYS
    network_attempts: int = 100
    card_logins_per_minute: int = 10

    @classmethod
    def from_settings(cls, settings: ThrottleSettings) -> ThrottleLimits:
        """The limits configured under ``throttle:`` in proxy.yaml."""
        return cls(
            card_attempts=settings.card_attempts,
            ip_attempts=settings.ip_attempts,
            global_attempts=settings.global_attempts,
            window=timedelta(minutes=settings.window_minutes),
            lockout=timedelta(minutes=settings.lockout_minutes),
            network_attempts=settings.network_attempts,
            card_logins_per_minute=settings.card_logins_per_minute,
        )

    def attempts(self, scope: Scope) -> int:
        """The failure limit of one scope."""
        limits: Mapping[Scope, int] = {
            "card": self.card_attempts,
            "address": self.ip_attempts,
            "network": self.network_attempts,
            "global": self.global_attempts,
        }
        return limits[scope]


@dataclass(frozen=True, slots=True)
class ThrottleVerdict:
    """Logins are refused: ``scope`` is locked until ``until``."""

    scope: LockScope
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
        self.alarms_raised = 0  # since start, for the admin console
        self._logins: OrderedDict[str, tuple[datetime, int]] = OrderedDict()  # card -> minute

    def __len__(self) -> int:
        """How many card, address and network counters are held (the memory bound's measure)."""
        return len(self._keyed)

    def blocked(self, keys: LoginKeys, now: datetime) -> ThrottleVerdict | None:
        """The lock that refuses this login, if any (the latest-ending one when several)."""
        locks = [
            ThrottleVerdict(scope, counter.locked_until)
            for scope, key in _scoped(keys)
            if (counter := self._keyed.get((scope, key))) is not None
            and counter.locked_until is not None
            and counter.locked(now)
        ]
        return max(locks, key=lambda verdict: verdict.until, default=None)

    def alarm(self, now: datetime) -> datetime | None:
        """Until when the global alarm is raised, or None when it is not (it refuses no one)."""
        counter = self._global
        if counter is None or counter.locked_until is None or not counter.locked(now):
            return None
        return counter.locked_until

    def record_failure(self, keys: LoginKeys, now: datetime) -> tuple[Scope, ...]:
        """Count a failed login in every scope; returns the scopes this failure locked or
        alarmed (each at most once per lock, so the caller logs each event once)."""
        window, tripped = self.limits.window, list[Scope]()
        everywhere: list[tuple[Scope, str]] = [*_scoped(keys), ("global", "")]
        for scope, key in everywhere:
            counter = self._counter_for(scope, key, now)
            counter.roll(now, window)
            counter.current += 1
            counter.last_failure = now
            if counter.estimate(now, window) >= self.limits.attempts(scope):
                counter.lock(now, self.limits.lockout)
                tripped.append(scope)
        if "global" in tripped:
            self.alarms_raised += 1
        return tuple(tripped)

    def record_success(self, keys: LoginKeys, now: datetime) -> None:
        """Clear the card's counter after a good login (the other counts stay)."""
        if keys.card is not None:
            self._keyed.pop(("card", keys.card), None)

    def admit_login(self, card_key: str, now: datetime) -> bool:
        """Count a good login of a card; False past ``card_logins_per_minute`` in a fixed
        minute (pentest R11: one card logged in 1,000 times a second)."""
        start, count = self._logins.pop(card_key, (now, 0))
        if now - start >= MINUTE:
            start, count = now, 0
        self._logins[card_key] = (start, min(count + 1, self.limits.card_logins_per_minute + 1))
        while len(self._logins) > self.limits.max_keys:
            self._logins.popitem(last=False)
        return count < self.limits.card_logins_per_minute

    def locks(self, now: datetime) -> list[tuple[Scope, str, datetime]]:
        """The card, address and network locks in force: (scope, opaque key, until) (#20)."""
        return [
            (scope, key, counter.locked_until)
            for (scope, key), counter in self._keyed.items()
            if counter.locked_until is not None and counter.locked(now)
        ]

    def clear(self, scope: Scope, key_prefix: str) -> int:
        """Staff lift: forget the counters of ``scope`` whose key starts with the prefix."""
        found = [k for k in self._keyed if k[0] == scope and k[1].startswith(key_prefix)]
        for k in found:
            del self._keyed[k]
        return len(found)

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
        while self._logins and now - next(iter(self._logins.values()))[0] >= MINUTE:
            self._logins.popitem(last=False)
        if self._global is not None and now >= self._global.last_failure + horizon:
            self._global = None
        return dropped

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
            self._evict_one(now)
        return counter

    def _evict_one(self, now: datetime) -> None:
        """Drop the least recently failed counter, passing over locked ones near the front."""
        oldest = islice(self._keyed.items(), EVICTION_PROBE)
        victim = next((k for k, c in oldest if not c.locked(now)), None)
        if victim is None:
            self._keyed.popitem(last=False)
        else:
            del self._keyed[victim]


def _scoped(keys: LoginKeys) -> Iterator[tuple[LockScope, str]]:
    if keys.card is not None:
        yield "card", keys.card
    yield "address", keys.address
    yield "network", keys.network
