"""Suspended cards (and card-less sessions) and the pseudonymous abuse events behind them.

Contract: a *subject* is the card's keyed hash (``session.patron_key``), or the session key
for sessions without a card (auto-login networks), so a new login of a suspended card is
still suspended (R10). ``mark(subject, vendor, limit, now)`` suspends in memory at once (the
relay's check is a dict lookup, and none at all while nothing is suspended);
``write(entry, action)`` persists the suspension and its event in one transaction — a
blocking call the relay runs in a worker thread; ``suspend`` does both. Suspensions last
``duration`` and are restored from ``abuse.sqlite3`` (WAL, synchronous FULL: security state)
when the store is opened. Rows hold only a keyed hash of the subject, the vendor id, the
limit and the times — no card, no session token, no URL (DESIGN P3).
Not here: counting (core/abuse.py), the limits (settings.limits, rule.limits).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from proxy.core.keyedhash import keyed_hash
from proxy.stores.sqlitedb import open_db

DB_FILE: Final = "abuse.sqlite3"
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS abuse_events (
    at TEXT NOT NULL, session_hash TEXT NOT NULL, vendor TEXT NOT NULL, limit_name TEXT NOT NULL,
    action TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS abuse_events_at ON abuse_events (at);
CREATE TABLE IF NOT EXISTS suspensions (
    session_hash TEXT PRIMARY KEY, vendor TEXT NOT NULL, limit_name TEXT NOT NULL,
    since TEXT NOT NULL, until TEXT NOT NULL);
"""
VERSION: Final = 2  # 2: suspensions persist (R10)
DEFAULT_DURATION: Final = timedelta(hours=24)
HASH_CHARS: Final = 20  # 80 bits of the keyed hash: the handle staff see and the row key


@dataclass(frozen=True, slots=True)
class Suspension:
    """A suspended card or session, as staff may see it."""

    session_hash: str
    vendor: str
    limit: str
    since: datetime
    until: datetime | None = None

    def active(self, now: datetime | None) -> bool:
        """Still in force at ``now`` (None: ignore the expiry)."""
        return now is None or self.until is None or now < self.until


class Suspensions:
    """Suspensions in memory, persisted, and the persistent event log."""

    def __init__(
        self, conn: sqlite3.Connection, pepper: bytes, duration: timedelta = DEFAULT_DURATION
    ) -> None:
        self._conn = conn
        self._pepper = pepper
        self._duration = duration
        self._lock = threading.Lock()
        self._active: dict[str, Suspension] = {s.session_hash: s for s in self._load()}
        self._listeners: list[Callable[[Suspension], object]] = []

    @classmethod
    def open(
        cls, data_dir: Path, pepper: bytes, duration: timedelta = DEFAULT_DURATION
    ) -> Suspensions:
        """Open ``data_dir/abuse.sqlite3`` and restore the suspensions it holds."""
        conn = open_db(Path(data_dir) / DB_FILE, schema=SCHEMA, version=VERSION, what="abuse log")
        return cls(conn, pepper, duration)

    def _load(self) -> list[Suspension]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM suspensions").fetchall()
        return [
            Suspension(h, vendor, limit, datetime.fromisoformat(since), datetime.fromisoformat(end))
            for h, vendor, limit, since, end in rows
        ]

    def session_hash(self, subject: str) -> str:
        """The pseudonymous handle staff see for a card or session (keyed: no pepper, no link)."""
        return keyed_hash(self._pepper, "abuse-session", subject)[:HASH_CHARS]

    def mark(
        self, subject: str, vendor: str, limit: str, now: datetime, *, action: str = "suspended"
    ) -> Suspension:
        """Suspend in memory now (``action="logged"``: only describe the event); no I/O."""
        entry = Suspension(self.session_hash(subject), vendor, limit, now, now + self._duration)
        if action == "suspended":
            self._active[entry.session_hash] = entry
            for fn in self._listeners:
                fn(entry)
        return entry

    def add_listener(self, fn: Callable[[Suspension], object]) -> None:
        """Call ``fn(entry)`` for each new suspension marked here (#15: shared with all nodes)."""
        self._listeners.append(fn)

    def install(self, entry: Suspension) -> None:
        """Hold a suspension another node marked (memory only; ``keep`` writes it)."""
        self._active[entry.session_hash] = entry

    def keep(self, entry: Suspension) -> None:
        """Write a suspension another node marked to this node's file (blocking: a thread)."""
        if entry.until is None:
            return
        row = (entry.session_hash, entry.vendor, entry.limit, entry.since.isoformat())
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO suspensions VALUES (?, ?, ?, ?, ?)",
                (*row, entry.until.isoformat()),
            )

    def write(self, entry: Suspension, action: str) -> None:
        """Persist one event, and the suspension when it is one (blocking: a worker thread)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO abuse_events VALUES (?, ?, ?, ?, ?)",
                    (
                        entry.since.isoformat(),
                        entry.session_hash,
                        entry.vendor,
                        entry.limit,
                        action,
                    ),
                )
                if action == "suspended" and entry.until is not None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO suspensions VALUES (?, ?, ?, ?, ?)",
                        (
                            entry.session_hash,
                            entry.vendor,
                            entry.limit,
                            entry.since.isoformat(),
                            entry.until.isoformat(),
                        ),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def suspend(
        self, subject: str, vendor: str, limit: str, now: datetime, *, action: str = "suspended"
    ) -> Suspension:
        """Suspend and record why (blocking: call it from a worker thread)."""
        entry = self.mark(subject, vendor, limit, now, action=action)
        self.write(entry, action)
        return entry

    def is_suspended(self, subject: str, now: datetime | None = None) -> bool:
        """True when the card or session may not use any vendor (at ``now``, if given)."""
        if not self._active:  # the common case costs no hash
            return False
        entry = self._active.get(self.session_hash(subject))
        return entry is not None and entry.active(now)

    def list_active(self, now: datetime) -> list[Suspension]:
        """Suspensions in force (pseudonymous), newest first."""
        active = [s for s in self._active.copy().values() if s.active(now)]
        return sorted(active, key=lambda s: s.since, reverse=True)

    def key_for_hash(self, session_hash: str, live_keys: list[str]) -> str | None:
        """The live session key whose hash is ``session_hash`` (for staff suspensions)."""
        return next((k for k in live_keys if self.session_hash(k) == session_hash), None)

    def forget(self, session_key: str) -> None:
        """A session ended: a suspension of that session (not of its card) ends with it."""
        if self._active:
            self._active.pop(self.session_hash(session_key), None)

    def drop_expired(self, now: datetime) -> list[str]:
        """Forget expired suspensions in memory; their hashes, for ``delete``."""
        gone = [h for h, s in self._active.copy().items() if not s.active(now)]
        for session_hash in gone:
            self._active.pop(session_hash, None)
        return gone

    def delete(self, hashes: Iterable[str], now: datetime) -> int:
        """Delete the rows of expired or ended suspensions (blocking: a worker thread)."""
        with self._lock:
            cursor = self._conn.executemany(
                "DELETE FROM suspensions WHERE session_hash = ? AND until <= ?",
                [(h, now.isoformat()) for h in hashes],
            )
            return cursor.rowcount

    def events(self, since: datetime) -> list[tuple[str, str, str, str, str]]:
        """Event rows since a time."""
        with self._lock:
            return self._conn.execute(
                "SELECT * FROM abuse_events WHERE at >= ? ORDER BY at", (since.isoformat(),)
            ).fetchall()

    def purge(self, before: datetime) -> int:
        """Delete events older than the retention (and suspensions that ended before it)."""
        with self._lock:
            self._conn.execute("DELETE FROM suspensions WHERE until < ?", (before.isoformat(),))
            return self._conn.execute(
                "DELETE FROM abuse_events WHERE at < ?", (before.isoformat(),)
            ).rowcount

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()
