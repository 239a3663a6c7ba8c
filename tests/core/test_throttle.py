"""Tests for proxy.core.throttle: failed-login counters per card, address, network and globally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proxy.core.settings import Throttle as ThrottleSettings
from proxy.core.throttle import (
    LockScope,
    LoginKeys,
    Throttle,
    ThrottleLimits,
    ThrottleVerdict,
    network_of,
)

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
LIMITS = ThrottleLimits(
    card_attempts=3,
    ip_attempts=5,
    global_attempts=10,
    window=timedelta(minutes=10),
    lockout=timedelta(minutes=5),
    max_keys=50,
    network_attempts=8,
)


def keys(card: str | None, ip: str, network: str | None = None) -> LoginKeys:
    """Keys for a card and an address; each address is its own network unless told."""
    return LoginKeys(card, ip, network if network is not None else f"net-{ip}")


# A step: (minutes after T0, action, card key, address key, scope expected to block afterwards).
# Actions: "fail" records a failure, "ok" a success, "check" only asks.
Step = tuple[float, str, str | None, str, LockScope | None]


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
        (0, "fail", "c5", "i1", "address"),
    ],
    "one PIN against many cards from one address trips the address limit": [
        *[(0, "fail", f"c{n}", "i1", None) for n in range(4)],
        (0, "fail", "c4", "i1", "address"),
        (0, "check", "c-new", "i1", "address"),
        (0, "check", "c-new", "i2", None),
    ],
    "failures without a card count against the address": [
        *_fails(4, card=None),
        (0, "fail", None, "i1", "address"),
    ],
    "R4: reaching the global limit refuses no one": [
        *[(0, "fail", f"c{n}", f"i{n}", None) for n in range(9)],
        (0, "fail", "c9", "i9", None),
        (0, "check", "fresh-card", "fresh-ip", None),
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
            throttle.record_failure(keys(card, ip), now)
        elif action == "ok":
            throttle.record_success(keys(card, ip), now)
        verdict = throttle.blocked(keys(card, ip), now)
        assert (verdict.scope if verdict else None) == expected, (minutes, action, card, ip)


def test_failure_that_locks_returns_the_scope() -> None:
    """record_failure returns the scope it locked, once; blocked names it and its end."""
    throttle = Throttle(LIMITS)
    assert throttle.record_failure(keys("c1", "i1"), T0) == ()
    assert throttle.record_failure(keys("c1", "i1"), T0) == ()
    assert throttle.record_failure(keys("c1", "i1"), T0) == ("card",)
    verdict = throttle.blocked(keys("c1", "i1"), T0)
    assert verdict == ThrottleVerdict("card", T0 + timedelta(minutes=5))


def test_latest_ending_lock_is_reported() -> None:
    """When card and address are both locked, the verdict names the lock that ends last."""
    throttle = Throttle(LIMITS)
    for n in range(5):
        throttle.record_failure(keys(f"c{n}", "i1"), T0)  # the address locks at T0
    later = T0 + timedelta(minutes=1)
    for _ in range(3):
        throttle.record_failure(keys("c1", "i2"), later)  # card c1 locks at T0 + 1 min
    expected = ThrottleVerdict("card", later + LIMITS.lockout)
    assert throttle.blocked(keys("c1", "i1"), later) == expected


def test_expire_drops_only_counters_that_no_longer_matter() -> None:
    """expire keeps counters within two windows or a lock, and drops them afterwards."""
    limits = ThrottleLimits(3, 5, 10, timedelta(minutes=10), timedelta(minutes=30))
    throttle = Throttle(limits)
    for _ in range(3):
        throttle.record_failure(keys("c1", "i1"), T0)  # locks c1 until T0 + 30
    throttle.record_failure(keys("c2", "i2"), T0 + timedelta(minutes=1))
    assert throttle.expire(T0 + timedelta(minutes=29)) == 0
    assert throttle.blocked(keys("c1", "i1"), T0 + timedelta(minutes=29)) is not None
    assert throttle.expire(T0 + timedelta(minutes=30)) == 3  # c1, i1 and its network
    assert len(throttle) == 3
    assert throttle.expire(T0 + timedelta(minutes=31)) == 3
    assert len(throttle) == 0


def test_memory_is_bounded_and_evicts_least_recent() -> None:
    """At most max_keys counters are held; the least recently failed are evicted first."""
    throttle = Throttle(LIMITS)
    for n in range(500):
        throttle.record_failure(keys(None, f"ip{n}"), T0 + timedelta(seconds=n))
    assert len(throttle) == LIMITS.max_keys
    assert ("address", "ip499") in throttle._keyed
    assert ("address", "ip0") not in throttle._keyed


def test_success_on_unknown_card_is_harmless() -> None:
    """Recording a success for a card with no counter, or with no card, changes nothing."""
    throttle = Throttle(LIMITS)
    throttle.record_success(keys("never-failed", "i1"), T0)
    throttle.record_success(keys(None, "i1"), T0)
    assert len(throttle) == 0


def test_limits_from_settings() -> None:
    """ThrottleLimits.from_settings reads proxy.yaml's throttle section, minutes as timedeltas."""
    settings = ThrottleSettings(
        card_attempts=4,
        ip_attempts=30,
        global_attempts=900,
        window_minutes=7,
        lockout_minutes=11,
        network_attempts=70,
        card_logins_per_minute=3,
    )
    assert ThrottleLimits.from_settings(settings) == ThrottleLimits(
        card_attempts=4,
        ip_attempts=30,
        global_attempts=900,
        window=timedelta(minutes=7),
        lockout=timedelta(minutes=11),
        network_attempts=70,
        card_logins_per_minute=3,
    )


DEFAULTS = ThrottleLimits.from_settings(ThrottleSettings())


def _spray(throttle: Throttle, addresses: list[str], per_address: int) -> None:
    """Failed logins with a fresh card each time, obeying the caller contract (no recording
    while blocked), as the login handler does."""
    n = 0
    for address in addresses:
        for _ in range(per_address):
            attempt = keys(f"card{n}", address, network_of(address))
            n += 1
            if throttle.blocked(attempt, T0) is None:
                throttle.record_failure(attempt, T0)


@pytest.mark.parametrize(
    "addresses",
    [
        [f"203.0.113.{n}" for n in range(1, 111)],
        [f"2001:db8:1:2::{n:x}" for n in range(1, 111)],
    ],
    ids=["one IPv4 /24", "one IPv6 /64"],
)
def test_r4_a_network_spray_locks_that_network_only(addresses: list[str]) -> None:
    """R4: 2,200 failures from 110 addresses of one network lock that network, and a clean
    card from another network is not refused."""
    throttle = Throttle(DEFAULTS)
    _spray(throttle, addresses, 20)
    other = keys("a-real-card", "198.51.100.7", network_of("198.51.100.7"))
    assert throttle.blocked(other, T0) is None
    sprayer = keys("another-card", addresses[0], network_of(addresses[0]))
    verdict = throttle.blocked(sprayer, T0)
    assert verdict is not None and verdict.scope in ("network", "address")
    new_neighbour = keys("x", "an-unused-address", network_of(addresses[0]))
    assert throttle.blocked(new_neighbour, T0) == ThrottleVerdict("network", T0 + DEFAULTS.lockout)


def test_r4_global_alarm_is_raised_once_and_refuses_no_one() -> None:
    """R4: the global count raises an alarm (returned once, counted) that locks no one."""
    throttle = Throttle(LIMITS)
    tripped = [throttle.record_failure(keys(f"c{n}", f"i{n}"), T0) for n in range(10)]
    assert tripped[-1] == ("global",) and all(t == () for t in tripped[:-1])
    assert throttle.alarm(T0) == T0 + LIMITS.lockout
    assert throttle.alarms_raised == 1
    assert throttle.blocked(keys("fresh-card", "fresh-ip"), T0) is None
    assert throttle.alarm(T0 + LIMITS.lockout) is None


def test_r4_network_limit_locks_a_network_of_clean_addresses() -> None:
    """R4: failures spread over a network's addresses lock the network, reported once."""
    throttle = Throttle(LIMITS)
    scopes = [throttle.record_failure(keys(f"c{n}", f"i{n}", "net-A"), T0) for n in range(8)]
    assert scopes[-1] == ("network",) and all(s == () for s in scopes[:-1])
    assert throttle.blocked(keys("c-new", "i-new", "net-A"), T0) == ThrottleVerdict(
        "network", T0 + LIMITS.lockout
    )


@pytest.mark.parametrize(
    ("address", "v4", "v6", "network"),
    [
        ("203.0.113.77", 24, 64, "203.0.113.0/24"),
        ("203.0.113.77", 16, 64, "203.0.0.0/16"),
        ("2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"),
        ("", 24, 64, ""),
        ("junk", 24, 64, ""),
    ],
)
def test_network_of(address: str, v4: int, v6: int, network: str) -> None:
    """Addresses are counted in their configured IPv4 or IPv6 network; junk in none."""
    assert network_of(address, v4, v6) == network


def test_eviction_passes_over_a_locked_counter() -> None:
    """Churning new keys evicts unlocked counters before a locked card's."""
    throttle = Throttle(LIMITS)
    for _ in range(3):
        throttle.record_failure(keys("victim", "i0"), T0)
    for n in range(200):
        throttle.record_failure(keys(None, f"ip{n}"), T0 + timedelta(seconds=n))
    assert throttle.blocked(keys("victim", "i-other"), T0 + timedelta(minutes=1)) is not None


def test_r11_good_logins_per_card_are_limited_per_minute() -> None:
    """R11: a card gets card_logins_per_minute good logins a minute, then must wait."""
    throttle = Throttle(LIMITS)
    admitted = [throttle.admit_login("card", T0) for _ in range(LIMITS.card_logins_per_minute + 2)]
    assert admitted.count(True) == LIMITS.card_logins_per_minute and not admitted[-1]
    assert throttle.admit_login("other-card", T0)
    assert throttle.admit_login("card", T0 + timedelta(minutes=1))
