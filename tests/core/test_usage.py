"""Aggregate usage counters: counts per (day, vendor, library), uniques without identities."""

from __future__ import annotations

from datetime import date

import pytest

from proxy.core.usage import UsageCounters, is_download, is_download_answer

DAY = date(2026, 11, 29)


def test_counts_aggregate_per_key() -> None:
    """Requests, bytes, downloads, sessions and uniques add up per (day, vendor, library)."""
    usage = UsageCounters()
    for patron, session, ctype in [
        ("p1", "s1", "text/html"),
        ("p1", "s1", "application/pdf"),
        ("p2", "s2", "text/html; charset=utf-8"),
        ("p1", "s3", "image/png"),
    ]:
        usage.request(
            DAY, "acme", "MAIN", patron=patron, session=session, size=100, content_type=ctype
        )
    delta = usage.drain().usage[(DAY, "acme", "MAIN")]
    assert (delta.requests, delta.bytes, delta.downloads) == (4, 400, 1)
    assert (delta.sessions, delta.uniques) == (3, 2)


def test_drain_hands_out_deltas_but_uniques_stay_absolute() -> None:
    """After a drain, counters restart but the day's unique count continues."""
    usage = UsageCounters()
    usage.request(DAY, "acme", "MAIN", patron="p1", session="s1", size=1, content_type="x/y")
    usage.drain()
    usage.request(DAY, "acme", "MAIN", patron="p1", session="s1", size=1, content_type="x/y")
    delta = usage.drain().usage[(DAY, "acme", "MAIN")]
    assert (delta.requests, delta.sessions, delta.uniques) == (1, 0, 1)


def test_new_day_forgets_identities() -> None:
    """A new day starts a new salt and empty sets: yesterday's patrons count again."""
    usage = UsageCounters()
    usage.request(DAY, "acme", "MAIN", patron="p1", session="s1", size=1, content_type="x/y")
    usage.request(
        date(2026, 11, 30), "acme", "MAIN", patron="p1", session="s1", size=1, content_type="x/y"
    )
    drained = usage.drain().usage
    assert drained[(date(2026, 11, 30), "acme", "MAIN")].uniques == 1
    assert drained[(date(2026, 11, 30), "acme", "MAIN")].sessions == 1


def test_restore_puts_a_failed_drain_back() -> None:
    """A drain that could not be written is merged back for the next flush."""
    usage = UsageCounters()
    usage.request(DAY, "acme", "MAIN", patron="p", session="s", size=5, content_type="x/y")
    usage.login(DAY, "MAIN", "ok")
    failed = usage.drain()
    usage.request(DAY, "acme", "MAIN", patron="p", session="s", size=5, content_type="x/y")
    usage.restore(failed)
    again = usage.drain()
    assert again.usage[(DAY, "acme", "MAIN")].requests == 2
    assert again.logins[(DAY, "MAIN", "ok")] == 1


def test_downloads_by_media_type() -> None:
    """PDFs and other documents are downloads; pages and images are not."""
    assert is_download("application/pdf")
    assert is_download("Application/PDF; name=x")
    assert not is_download("text/html")
    assert not is_download("image/png")


@pytest.mark.parametrize(
    ("method", "status", "content_type", "expected"),
    [
        ("GET", 200, "application/pdf", True),
        ("POST", 200, "application/pdf; name=x", True),
        ("HEAD", 200, "application/pdf", False),
        ("GET", 206, "application/pdf", False),
        ("GET", 302, "", False),
        ("GET", 200, "text/html", False),
    ],
)
def test_download_answers(method: str, status: int, content_type: str, expected: bool) -> None:
    """R10: only a full 200 answer of a document type counts against the downloads limit."""
    assert is_download_answer(method, status, content_type) is expected
