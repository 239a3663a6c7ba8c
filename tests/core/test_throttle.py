"""Tests for proxy.core.throttle: failed-login counters per card, per address and globally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proxy.core.settings import Throttle as ThrottleSettings
from proxy.core.throttle import Scope, Throttle, ThrottleLimits, ThrottleVerdict

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
LIMITS = ThrottleLimits(
    card_attempts=3,
    ip_attempts=5,
    global_attempts=10,
    window=timedelta(minutes=10),
    lockout=timedelta(minutes=5),
    max_keys=50,
)

# A step: (minutes after T0, action, card key, address key, scope expected to block afterwards).
# Actions: "fail" records a failure, "ok" a success, "check" only asks.
Step = tuple[float, str, str | None, str, Scope | None]


def _fails(n: int, minute: float = 0, card: str | None = "c1", ip: str = "i1") -> list[Step]:
    return [(minute, "fail", card, ip, None)] * n


SCENARIOS: dict[str, list[Step]] = {
    "under the card limit passes": _fails(2),
    "reaching the card limit locks the card": [*_fails(2), (0, "fail", "c1", "i1", "card")],
    "a locked card is refused from any address": [
        *_fails(2),
        (0, "fail", "c1", "i1", "card"),
        (1, "check", "c1", "i9", "card"),
        (1, "check", "c2", "i9", None),
    ],
    "the lock holds until lockout ends, then lifts": [
        *_fails(2),
        (0, "fail", "c1", "i1", "card"),
        (4.99, "check", "c1", "i1", "card"),
        (5, "check", "c1", "i1", None),
    ],
    "after a lock the card has its full allowance again": [
        *_fails(2),
        (0, "fail", "c1", "i2", "card"),
        *_fails(2, minute=5, ip="i3"),
        (5, "fail", "c1", "i4", "card"),
    ],
    "success clears the card counter": [
        *_fails(2),
        (1, "ok", "c1", "i1", None),
        *_fails(2, minute=1),
    ],
    "success does not clear the address counter": [
        *[(0, "fail", f"c{n}", "i1", None) for n in range(4)],
        (0, "ok", "c9", "i1", None),
        (0, "fail", "c5", "i1", "ip"),
    ],
    "one PIN against many cards from one address trips the address limit": [
        *[(0, "fail", f"c{n}", "i1", None) for n in range(4)],
        (0, "fail", "c4", "i1", "ip"),
        (0, "check", "c-new", "i1", "ip"),
        (0, "check", "c-new", "i2", None),
    ],
    "failures without a card count against the address": [
        *_fails(4, card=None),
        (0, "fail", None, "i1", "ip"),
    ],
    "the global limit makes everyone wait": [
        *[(0, "fail", f"c{n}", f"i{n}", None) for n in range(9)],
        (0, "fail", "c9", "i9", "global"),
        (0, "check", "fresh-card", "fresh-ip", "global"),
        (5, "check", "fresh-card", "fresh-ip", None),
    ],
    "failures fade as the window slides": [
        *_fails(2),
        (15, "fail", "c1", "i1", None),  # 2 * 0.5 + 1 = 2
        (15, "fail", "c1", "i1", "card"),  # 2 * 0.5 + 2 = 3
    ],
    "the window is sliding, not fixed: no fresh allowance at a boundary": [
        (0, "fail", "c1", "i1", None),
        (9.9, "fail", "c1", "i1", None),
        (10.1, "fail", "c1", "i1", None),  # 2 * 0.99 + 1
        (10.1, "fail", "c1", "i1", "card"),  # 2 * 0.99 + 2; a fixed window would count only 2
    ],
    "counters older than two windows are gone": [
        *_fails(2),
        *_fails(2, minute=20),
        (20, "fail", "c1", "i1", "card"),
    ],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenarios(steps: list[Step]) -> None:
    """Each scenario's steps leave exactly the expected scope blocked (or none)."""
    throttle = Throttle(LIMITS)
    for minutes, action, card, ip, expected in steps:
        now = T0 + timedelta(minutes=minutes)
        if action == "fail":
            throttle.record_failure(card, ip, now)
        elif action == "ok":
            throttle.record_success(card, ip, now)
        verdict = throttle.blocked(card, ip, now)
        assert (verdict.scope if verdict else None) == expected, (minutes, action, card, ip)


def test_failure_that_locks_returns_the_verdict() -> None:
    """record_failure returns the lock it caused, naming the scope and when it ends."""
    throttle = Throttle(LIMITS)
    assert throttle.record_failure("c1", "i1", T0) is None
    assert throttle.record_failure("c1", "i1", T0) is None
    verdict = throttle.record_failure("c1", "i1", T0)
    assert verdict == ThrottleVerdict("card", T0 + timedelta(minutes=5))


def test_latest_ending_lock_is_reported() -> None:
    """When card and address are both locked, the verdict names the lock that ends last."""
    throttle = Throttle(LIMITS)
    for n in range(5):
        throttle.record_failure(f"c{n}", "i1", T0)  # the address locks at T0
    later = T0 + timedelta(minutes=1)
    for _ in range(3):
        throttle.record_failure("c1", "i2", later)  # card c1 locks at T0 + 1 min
    assert throttle.blocked("c1", "i1", later) == ThrottleVerdict("card", later + LIMITS.lockout)


def test_expire_drops_only_counters_that_no_longer_matter() -> None:
    """expire keeps counters within two windows or a lock, and drops them afterwards."""
    limits = ThrottleLimits(3, 5, 10, timedelta(minutes=10), timedelta(minutes=30))
    throttle = Throttle(limits)
    for _ in range(3):
        throttle.record_failure("c1", "i1", T0)  # locks c1 until T0 + 30
    throttle.record_failure("c2", "i2", T0 + timedelta(minutes=1))
    assert throttle.expire(T0 + timedelta(minutes=29)) == 0
    assert throttle.blocked("c1", "i1", T0 + timedelta(minutes=29)) is not None
    assert throttle.expire(T0 + timedelta(minutes=30)) == 2  # c1 and i1
    assert len(throttle) == 2
    assert throttle.expire(T0 + timedelta(minutes=31)) == 2
    assert len(throttle) == 0


def test_memory_is_bounded_and_evicts_least_recent() -> None:
    """At most max_keys counters are held; the least recently failed are evicted first."""
    throttle = Throttle(LIMITS)
    for n in range(500):
        throttle.record_failure(None, f"ip{n}", T0 + timedelta(seconds=n))
    assert len(throttle) == LIMITS.max_keys
    assert ("ip", "ip499") in throttle._keyed
    assert ("ip", "ip0") not in throttle._keyed


def test_success_on_unknown_card_is_harmless() -> None:
    """Recording a success for a card with no counter, or with no card, changes nothing."""
    throttle = Throttle(LIMITS)
    throttle.record_success("never-failed", "i1", T0)
    throttle.record_success(None, "i1", T0)
    assert len(throttle) == 0


def test_limits_from_settings() -> None:
    """ThrottleLimits.from_settings reads proxy.yaml's throttle section, minutes as timedeltas."""
    settings = ThrottleSettings(
        card_attempts=4, ip_attempts=30, global_attempts=900, window_minutes=7, lockout_minutes=11
    )
    assert ThrottleLimits.from_settings(settings) == ThrottleLimits(
        card_attempts=4,
        ip_attempts=30,
        global_attempts=900,
        window=timedelta(minutes=7),
        lockout=timedelta(minutes=11),
    )
