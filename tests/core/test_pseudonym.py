"""Tests for proxy.core.pseudonym: per-vendor pseudonyms and rotation epochs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy.core.pseudonym import (
    PSEUDONYM_LENGTH,
    Rotation,
    derive,
    epoch_id,
    epoch_span,
)

KEY = bytes(range(32))
SHAPE = re.compile(r"[a-z2-7]{26}")
ROTATIONS: tuple[Rotation, ...] = ("daily", "weekly", "monthly", "never")

keys = st.binary(min_size=16, max_size=64)
texts = st.text(max_size=40)
instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
)


def _independent(key: bytes, vendor: str, patron: str) -> str:
    """The specification, written out again with nothing shared with the module."""
    v, p = vendor.encode(), patron.encode()
    message = (
        b"clamshell-pseudonym-v1" + len(v).to_bytes(4, "big") + v + len(p).to_bytes(4, "big") + p
    )
    digest = hmac.new(key, message, hashlib.sha256).digest()[:16]
    return base64.b32encode(digest).decode().rstrip("=").lower()


# --- derive: known answers ---------------------------------------------------------------


def test_fixed_vector() -> None:
    """A fixed key, vendor and patron key give a pinned value (guards against silent change)."""
    assert derive(KEY, "jstor", "a3f1c0de") == "gk5uqkjjnd5gzjrvpobzbrk6ym"


@pytest.mark.parametrize(
    ("vendor", "patron"),
    [("jstor", "a3f1c0de"), ("", ""), ("ebsco", "ü-ñ"), ("x" * 300, "y"), ("gale", "0" * 64)],
)
def test_matches_independent_hmac(vendor: str, patron: str) -> None:
    """derive equals an independently computed HMAC-SHA256 over the length-prefixed fields."""
    assert derive(KEY, vendor, patron) == _independent(KEY, vendor, patron)


def test_length_prefix_separates_field_boundaries() -> None:
    """Moving a character across the vendor/patron boundary changes the pseudonym."""
    assert derive(KEY, "ab", "c") != derive(KEY, "a", "bc")


def test_short_key_refused() -> None:
    """A key shorter than 16 bytes is refused rather than silently weak."""
    with pytest.raises(ValueError, match="at least 16 bytes"):
        derive(b"short", "jstor", "p")


# --- derive: properties ------------------------------------------------------------------


@given(keys, texts, texts)
def test_deterministic_and_shaped(key: bytes, vendor: str, patron: str) -> None:
    """Same inputs give the same value, always 26 lowercase base32 characters."""
    value = derive(key, vendor, patron)
    assert value == derive(key, vendor, patron)
    assert len(value) == PSEUDONYM_LENGTH
    assert SHAPE.fullmatch(value)


@given(keys, texts, texts, texts)
def test_different_vendor_differs(key: bytes, v1: str, v2: str, patron: str) -> None:
    """The same patron gets unrelated pseudonyms at two vendors."""
    assume(v1 != v2)
    assert derive(key, v1, patron) != derive(key, v2, patron)


@given(keys, keys, texts, texts)
def test_different_epoch_key_differs(k1: bytes, k2: bytes, vendor: str, patron: str) -> None:
    """The same patron at the same vendor gets unrelated pseudonyms in two epochs."""
    assume(k1 != k2)
    assert derive(k1, vendor, patron) != derive(k2, vendor, patron)


@given(keys, texts, texts, texts)
def test_different_patron_differs(key: bytes, vendor: str, p1: str, p2: str) -> None:
    """Two patrons at the same vendor in the same epoch get different pseudonyms."""
    assume(p1 != p2)
    assert derive(key, vendor, p1) != derive(key, vendor, p2)


# --- epochs ------------------------------------------------------------------------------


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


WHEN = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)  # a Sunday: the last day of ISO week 48


@pytest.mark.parametrize(
    ("rotate", "when", "expected"),
    [
        ("daily", WHEN, "daily:2026-11-29"),
        ("weekly", WHEN, "weekly:2026-W48"),
        ("monthly", WHEN, "monthly:2026-11"),
        ("never", WHEN, "never:0"),
        ("daily", WHEN.astimezone(timezone(timedelta(hours=5))), "daily:2026-11-29"),
        ("daily", WHEN + timedelta(minutes=30), "daily:2026-11-30"),
        ("weekly", WHEN + timedelta(minutes=30), "weekly:2026-W49"),
        ("monthly", WHEN + timedelta(days=1, minutes=30), "monthly:2026-12"),
        ("weekly", datetime(2027, 1, 1, tzinfo=UTC), "weekly:2026-W53"),
        ("weekly", datetime(2024, 12, 30, tzinfo=UTC), "weekly:2025-W01"),
        ("monthly", datetime(2026, 12, 31, tzinfo=UTC), "monthly:2026-12"),
    ],
)
def test_epoch_id_table(rotate: Rotation, when: datetime, expected: str) -> None:
    """Epoch ids name the UTC day, ISO week or month that contains the instant."""
    assert epoch_id(rotate, when) == expected


@pytest.mark.parametrize(
    ("epoch", "start", "end"),
    [
        ("daily:2026-11-29", _utc(2026, 11, 29), _utc(2026, 11, 30)),
        ("daily:2024-02-29", _utc(2024, 2, 29), _utc(2024, 3, 1)),
        ("weekly:2026-W48", _utc(2026, 11, 23), _utc(2026, 11, 30)),
        ("weekly:2026-W53", _utc(2026, 12, 28), _utc(2027, 1, 4)),
        ("monthly:2026-12", _utc(2026, 12, 1), _utc(2027, 1, 1)),
        ("never:0", _utc(1970, 1, 1), None),
    ],
)
def test_epoch_span_table(epoch: str, start: datetime, end: datetime | None) -> None:
    """An epoch id maps back to its [start, end) period in UTC."""
    assert epoch_span(epoch) == (start, end)


@pytest.mark.parametrize(
    "bad",
    ["", "daily", "daily:", "daily:2026-1-29", "daily:20261129", "weekly:2026-W54",
     "weekly:2026-48", "monthly:2026-13", "monthly:2026-1", "never:1", "hourly:1", "session:0"],
)  # fmt: skip
def test_epoch_span_rejects_noncanonical(bad: str) -> None:
    """Only the exact spelling epoch_id produces is accepted."""
    with pytest.raises(ValueError, match="not an epoch id"):
        epoch_span(bad)


def test_epoch_id_rejects_naive_datetime() -> None:
    """A naive datetime is refused: local wall-clock time would shift epoch boundaries."""
    with pytest.raises(ValueError, match="timezone-aware"):
        epoch_id("daily", datetime(2026, 11, 29, 12))


@given(st.sampled_from(ROTATIONS), instants)
def test_epoch_span_contains_instant(rotate: Rotation, when: datetime) -> None:
    """The span of the epoch containing an instant does contain it, and round-trips its id."""
    epoch = epoch_id(rotate, when)
    start, end = epoch_span(epoch)
    assert start <= when
    assert end is None or when < end
    assert epoch_id(rotate, start) == epoch


def test_trace_finds_the_patron_only_with_the_key() -> None:
    """A pseudonym traces back to its patron key with the epoch key, and not with another."""
    from proxy.core.pseudonym import derive, trace

    key, other = b"k" * 32, b"o" * 32
    keys = [f"card-{i}" for i in range(50)]
    issued = derive(key, "acme", "card-17")
    assert trace(key, "acme", issued.upper(), keys) == "card-17"
    assert trace(other, "acme", issued, keys) is None
    assert trace(key, "bigdb", issued, keys) is None


def test_session_pseudonyms_are_cached_and_forgotten() -> None:
    """The cached per-session value equals derive(); forget drops the session's values."""
    from proxy.core.pseudonym import SessionPseudonyms, derive

    cache = SessionPseudonyms()
    key = b"s" * 32
    first = cache.get("session-1", "acme", key)
    assert first == derive(key, "acme", "session-1") == cache.get("session-1", "acme", key)
    assert cache.get("session-1", "bigdb", key) != first
    cache.forget("session-1")
    assert len(cache) == 0
