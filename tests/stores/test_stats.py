"""The stats store: aggregate rows, roll-up, and nothing joinable to a patron."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from proxy.core.usage import UsageCounters
from proxy.stores.stats import StatsStore

DAY = date(2026, 11, 29)


def test_add_accumulates_and_uniques_are_maxed(tmp_path: Path) -> None:
    """Two flushes add counts; the unique count is the day's maximum, not a sum."""
    store = StatsStore.open(tmp_path)
    usage = UsageCounters()
    usage.request(DAY, "acme", "MAIN", patron="p1", session="s1", size=10, content_type="text/html")
    store.add(usage.drain())
    usage.request(
        DAY, "acme", "MAIN", patron="p1", session="s1", size=10, content_type="application/pdf"
    )
    usage.login(DAY, "MAIN", "ok")
    store.add(usage.drain())
    (row,) = store.daily(DAY, DAY)
    assert (row.requests, row.bytes, row.downloads, row.sessions, row.uniques) == (2, 20, 1, 1, 1)
    assert store.logins(DAY, DAY) == [(DAY.isoformat(), "MAIN", "ok", 1)]


def test_roll_up_moves_old_days_to_months(tmp_path: Path) -> None:
    """Daily rows older than the cutoff become monthly rows and disappear."""
    store = StatsStore.open(tmp_path)
    usage = UsageCounters()
    for day in (date(2026, 1, 5), date(2026, 1, 6), DAY):
        usage.request(day, "acme", "MAIN", patron="p", session="s", size=1, content_type="x/y")
    store.add(usage.drain())
    assert store.roll_up(date(2026, 6, 1)) == 2
    assert [r.day for r in store.daily(date(2026, 1, 1), DAY)] == [DAY.isoformat()]


def test_no_row_can_be_joined_to_a_patron(tmp_path: Path) -> None:
    """The stats file holds no patron key, session key or URL, even in its raw bytes."""
    store = StatsStore.open(tmp_path)
    usage = UsageCounters()
    canaries = ["patronkey-CANARY-7c1", "sessionkey-CANARY-9d2"]
    usage.request(
        DAY,
        "acme",
        "MAIN",
        patron=canaries[0],
        session=canaries[1],
        size=1,
        content_type="text/html",
    )
    usage.third_party(DAY, "acme", "stats.trackly.test", blocked=False)
    store.add(usage.drain())
    store.close()
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        for canary in canaries:
            assert canary.encode() not in data


def test_18_roll_up_keeps_login_counts_as_months(tmp_path: Path) -> None:
    """#18: the roll-up folds login outcomes into monthly rows instead of deleting them."""
    store = StatsStore.open(tmp_path)
    usage = UsageCounters()
    for day in (date(2026, 1, 5), date(2026, 1, 6), DAY):
        usage.login(day, "MAIN", "ok")
        usage.request(day, "acme", "MAIN", patron="p", session="s", size=2, content_type="x/y")
    usage.login(date(2026, 1, 6), "MAIN", "bad_pin")
    store.add(usage.drain())
    store.roll_up(date(2026, 6, 1))
    assert store.logins(date(2026, 1, 1), DAY) == [(DAY.isoformat(), "MAIN", "ok", 1)]
    assert store.monthly_logins(date(2026, 1, 1), date(2026, 1, 31)) == [
        ("2026-01", "MAIN", "bad_pin", 1),
        ("2026-01", "MAIN", "ok", 2),
    ]
    months = store.monthly(date(2026, 1, 1), DAY)
    assert [(r.day, r.requests, r.bytes) for r in months] == [("2026-01", 2, 4), ("2026-11", 1, 2)]


def test_blocked_only_hosts_rank_by_how_often_they_were_seen(tmp_path: Path) -> None:
    """#18: a host only ever blocked ranks by its blocked count, not below every referenced one."""
    store = StatsStore.open(tmp_path)
    usage = UsageCounters()
    usage.third_party(DAY, "acme", "fonts.example", blocked=False, count=2)
    usage.third_party(DAY, "acme", "tracker.example", blocked=True, count=50)
    store.add(usage.drain())
    assert store.third_parties(DAY, DAY, limit=1) == [("acme", "tracker.example", 0, 50)]
