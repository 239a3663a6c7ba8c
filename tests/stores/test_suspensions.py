"""Suspensions by keyed hash: persisted with their expiry, restored on open (R10)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from proxy.stores.suspensions import DB_FILE, Suspensions

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PEPPER = b"p" * 32
CARD = "card-keyed-hash-0123"


def test_a_suspension_survives_reopening_until_it_expires(tmp_path: Path) -> None:
    """R10: a suspension written to disk is in force after reopening, and ends at its expiry."""
    book = Suspensions.open(tmp_path, PEPPER, timedelta(hours=2))
    book.suspend(CARD, "acme", "downloads", T0)
    book.close()
    again = Suspensions.open(tmp_path, PEPPER, timedelta(hours=2))
    assert again.is_suspended(CARD, T0 + timedelta(hours=1))
    assert not again.is_suspended("another card", T0)
    assert not again.is_suspended(CARD, T0 + timedelta(hours=2))
    assert [s.limit for s in again.list_active(T0)] == ["downloads"]
    assert again.list_active(T0 + timedelta(hours=3)) == []
    again.close()


def test_mark_takes_effect_before_the_write(tmp_path: Path) -> None:
    """The relay's in-memory mark suspends at once; only ``write`` makes it durable."""
    book = Suspensions.open(tmp_path, PEPPER)
    entry = book.mark(CARD, "acme", "bytes", T0)
    assert book.is_suspended(CARD, T0)
    book.write(entry, "suspended")
    book.close()
    assert Suspensions.open(tmp_path, PEPPER).is_suspended(CARD, T0)


def test_rows_hold_only_a_keyed_hash(tmp_path: Path) -> None:
    """Neither the subject nor anything but hash, vendor, limit and times is stored."""
    book = Suspensions.open(tmp_path, PEPPER)
    book.suspend(CARD, "acme", "requests", T0)
    book.close()
    conn = sqlite3.connect(tmp_path / DB_FILE)
    rows = conn.execute("SELECT * FROM suspensions").fetchall()
    events = conn.execute("SELECT * FROM abuse_events").fetchall()
    conn.close()
    assert len(rows) == 1 and len(rows[0][0]) == 20
    assert CARD not in repr(rows) + repr(events)


def test_a_session_end_lifts_only_a_session_suspension(tmp_path: Path) -> None:
    """``forget(session)`` ends that session's suspension; a card's stays."""
    book = Suspensions.open(tmp_path, PEPPER)
    book.suspend("session-key", "acme", "staff", T0)
    book.suspend(CARD, "acme", "requests", T0)
    book.forget("session-key")
    book.forget("another-session")
    assert not book.is_suspended("session-key", T0)
    assert book.is_suspended(CARD, T0)
    book.close()


def test_expired_suspensions_are_dropped_and_deleted(tmp_path: Path) -> None:
    """The sweep forgets an expired suspension and deletes its row."""
    book = Suspensions.open(tmp_path, PEPPER, timedelta(minutes=30))
    book.suspend(CARD, "acme", "requests", T0)
    later = T0 + timedelta(minutes=31)
    gone = book.drop_expired(later)
    assert gone == [book.session_hash(CARD)]
    assert book.delete(gone, later) == 1
    book.close()
    assert Suspensions.open(tmp_path, PEPPER).list_active(T0) == []
