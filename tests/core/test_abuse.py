"""Abuse limits: sliding per-session counters and card network counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proxy.core.abuse import AbuseLimits, AbuseMonitor

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("limits", "size", "download", "crossed_at", "limit"),
    [
        (AbuseLimits(requests=3), 1, False, 4, "requests"),
        (AbuseLimits(bytes=250), 100, False, 3, "bytes"),
        (AbuseLimits(downloads=2), 1, True, 3, "downloads"),
    ],
)
def test_each_limit_crosses_after_its_threshold(
    limits: AbuseLimits, size: int, download: bool, crossed_at: int, limit: str
) -> None:
    """The n-th response past a threshold reports that limit; earlier ones do not."""
    monitor = AbuseMonitor()
    results = [
        monitor.record("s", limits, size=size, download=download, now=T0) for _ in range(crossed_at)
    ]
    assert results[:-1] == [None] * (crossed_at - 1)
    assert results[-1] is not None and results[-1].limit == limit


def test_window_slides() -> None:
    """Requests older than the interval no longer count."""
    monitor = AbuseMonitor()
    limits = AbuseLimits(interval=timedelta(minutes=10), requests=2)
    monitor.record("s", limits, size=1, download=False, now=T0)
    monitor.record("s", limits, size=1, download=False, now=T0)
    later = T0 + timedelta(minutes=11)
    assert monitor.record("s", limits, size=1, download=False, now=later) is None


def test_sessions_are_counted_separately_and_forgotten() -> None:
    """One session's use does not count against another; forget drops a session."""
    monitor = AbuseMonitor()
    limits = AbuseLimits(requests=1)
    monitor.record("a", limits, size=1, download=False, now=T0)
    assert monitor.record("b", limits, size=1, download=False, now=T0) is None
    monitor.forget("a")
    assert monitor.record("a", limits, size=1, download=False, now=T0) is None


def test_card_used_from_too_many_networks() -> None:
    """A card seen on more networks than allowed within the interval crosses card_networks."""
    monitor = AbuseMonitor()
    limits = AbuseLimits(card_networks=2, card_networks_interval=timedelta(hours=1))
    assert monitor.network_seen("p", "192.0.2.0/24", limits, T0) is None
    assert monitor.network_seen("p", "198.51.100.0/24", limits, T0) is None
    assert monitor.network_seen("p", "192.0.2.0/24", limits, T0) is None
    crossed = monitor.network_seen("p", "203.0.113.0/24", limits, T0)
    assert crossed is not None and crossed.limit == "card_networks"
    later = T0 + timedelta(hours=2)
    assert monitor.network_seen("p", "203.0.113.0/24", limits, later) is None


def test_rule_limits_override_the_global_ones() -> None:
    """A rule's own limit wins; unset ones fall back to proxy.yaml's; megabytes become bytes."""
    from proxy.core.abuse import merged_limits
    from proxy.core.rules import RuleLimits
    from proxy.core.settings import UsageLimits

    limits = merged_limits(
        UsageLimits(requests=100, megabytes=2, downloads=None), RuleLimits(requests=5)
    )
    assert (limits.requests, limits.bytes, limits.downloads) == (5, 2 * 2**20, None)


@pytest.mark.parametrize(
    ("limit", "policy", "action"),
    [
        ("card_networks", "log", "log"),
        ("card_networks", "block", "suspend"),
        ("requests", "log", "suspend"),
        ("downloads", "block", "suspend"),
    ],
)
def test_what_crossing_a_limit_does(limit: str, policy: str, action: str) -> None:
    """Only account sharing may be merely logged; every other limit suspends the session."""
    from proxy.core.abuse import LimitCrossed, action_for

    crossed = LimitCrossed(limit, 2, 1)  # type: ignore[arg-type]
    assert action_for(crossed, AbuseLimits(card_networks_action=policy)) == action  # type: ignore[arg-type]


def test_network_sightings_of_idle_cards_are_forgotten_after_the_interval() -> None:
    """The sweep keeps recent sightings (they still count) and drops cards seen only before
    the interval, so an unused card's networks do not stay in memory."""
    monitor = AbuseMonitor()
    hour = timedelta(hours=1)
    limits = AbuseLimits(card_networks=1, card_networks_interval=hour)
    monitor.network_seen("idle", "192.0.2.0/24", limits, T0)
    monitor.network_seen("busy", "198.51.100.0/24", limits, T0)
    monitor.network_seen("busy", "198.51.100.0/24", limits, T0 + 50 * timedelta(minutes=1))
    assert monitor.expire_networks(T0 + 30 * timedelta(minutes=1), hour) == 0
    assert len(monitor) == 2
    assert monitor.expire_networks(T0 + 61 * timedelta(minutes=1), hour) == 1
    assert len(monitor) == 1
    # the busy card's recent network still counts: a second one crosses the limit
    crossed = monitor.network_seen("busy", "203.0.113.0/24", limits, T0 + hour)
    assert crossed is not None and crossed.limit == "card_networks"


# --- R10: checked before the work, counted per card -------------------------------------


def test_admit_refuses_the_request_that_would_cross_and_counts_nothing() -> None:
    """R10: with requests: 2, the third request is refused before it is sent, not counted."""
    monitor = AbuseMonitor()
    limits = AbuseLimits(requests=2)
    assert [monitor.admit("card", limits, T0) for _ in range(2)] == [None, None]
    crossed = monitor.admit("card", limits, T0)
    assert crossed is not None and (crossed.limit, crossed.value) == ("requests", 3)
    assert monitor.totals("card", limits, T0) == (2, 0, 0)


def test_admit_refuses_once_bytes_or_downloads_are_over() -> None:
    """R10: a subject already over its bytes or downloads limit is refused up front."""
    monitor = AbuseMonitor()
    limits = AbuseLimits(bytes=100, downloads=1)
    assert monitor.add_bytes("a", 101, limits, T0) is not None
    refused = monitor.admit("a", limits, T0)
    assert refused is not None and refused.limit == "bytes"
    assert monitor.add_download("b", limits, T0) is None
    assert monitor.add_download("b", limits, T0) is not None
    refused = monitor.admit("b", limits, T0)
    assert refused is not None and refused.limit == "downloads"


def test_bytes_cross_as_they_are_counted() -> None:
    """R3: the chunk that passes the bytes limit reports it (mid-response)."""
    monitor = AbuseMonitor()
    limits = AbuseLimits(bytes=250)
    assert [monitor.add_bytes("s", 100, limits, T0) for _ in range(2)] == [None, None]
    crossed = monitor.add_bytes("s", 100, limits, T0)
    assert crossed is not None and (crossed.limit, crossed.value) == ("bytes", 300)


def test_running_totals_slide_and_idle_subjects_expire() -> None:
    """Totals drop the minutes that left the interval; a subject idle past it is forgotten."""
    monitor = AbuseMonitor()
    limits = AbuseLimits(interval=timedelta(minutes=10), requests=100)
    monitor.admit("s", limits, T0)
    monitor.admit("s", limits, T0 + timedelta(minutes=5))
    assert monitor.totals("s", limits, T0 + timedelta(minutes=12))[0] == 1
    assert monitor.expire(T0 + timedelta(minutes=14), timedelta(minutes=10)) == 0
    assert monitor.expire(T0 + timedelta(minutes=15), timedelta(minutes=10)) == 1
    assert len(monitor) == 0
