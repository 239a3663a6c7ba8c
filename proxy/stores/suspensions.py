"""Suspended sessions and the pseudonymous abuse events that explain them.

Contract: ``Suspensions.suspend(session_key, vendor, limit, now)`` marks a session suspended
(the relay then answers "contact your library") and records an event holding only a keyed
hash of the session key, the vendor and which limit — no card, no URL (DESIGN P3). Events
live in ``abuse.sqlite3`` for the retention period; the suspension itself lives as long as
the session (``forget`` on session end).
Not here: counting (core/abuse.py), the limits (settings.limits, rule.limits).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
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
"""


@dataclass(frozen=True, slots=True)
class Suspension:
    """A suspended session, as staff may see it."""

    session_hash: str
    vendor: str
    limit: str
    since: datetime


class Suspensions:
    """In-memory suspensions plus the persistent event log."""

    def __init__(self, conn: sqlite3.Connection, pepper: bytes) -> None:
        self._conn = conn
        self._pepper = pepper
        self._lock = threading.Lock()
        self._active: dict[str, Suspension] = {}

    @classmethod
    def open(cls, data_dir: Path, pepper: bytes) -> Suspensions:
        """Open ``data_dir/abuse.sqlite3``."""
        return cls(open_db(Path(data_dir) / DB_FILE, schema=SCHEMA, version=1), pepper)

    def session_hash(self, session_key: str) -> str:
        """The pseudonymous handle staff see for a session."""
        return keyed_hash(self._pepper, "abuse-session", session_key)[:20]

    def suspend(
        self, session_key: str, vendor: str, limit: str, now: datetime, *, action: str = "suspended"
    ) -> Suspension:
        """Suspend a session and record why."""
        entry = Suspension(self.session_hash(session_key), vendor, limit, now)
        if action == "suspended":
            self._active[session_key] = entry
        self.record(entry, action)
        return entry

    def record(self, entry: Suspension, action: str) -> None:
        """Write one event row."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO abuse_events VALUES (?, ?, ?, ?, ?)",
                (entry.since.isoformat(), entry.session_hash, entry.vendor, entry.limit, action),
            )

    def is_suspended(self, session_key: str) -> bool:
        """True when the session may not use any vendor."""
        return session_key in self._active

    def list_active(self, now: datetime) -> list[Suspension]:
        """Suspended sessions (pseudonymous)."""
        return sorted(self._active.values(), key=lambda s: s.since, reverse=True)

    def key_for_hash(self, session_hash: str, live_keys: list[str]) -> str | None:
        """The live session key whose hash is ``session_hash`` (for staff suspensions)."""
        return next((k for k in live_keys if self.session_hash(k) == session_hash), None)

    def forget(self, session_key: str) -> None:
        """The session ended: its suspension ends with it."""
        self._active.pop(session_key, None)

    def events(self, since: datetime) -> list[tuple[str, str, str, str, str]]:
        """Event rows since a time."""
        with self._lock:
            return self._conn.execute(
                "SELECT * FROM abuse_events WHERE at >= ? ORDER BY at", (since.isoformat(),)
            ).fetchall()

    def purge(self, before: datetime) -> int:
        """Delete events older than the retention."""
        with self._lock:
            return self._conn.execute(
                "DELETE FROM abuse_events WHERE at < ?", (before.isoformat(),)
            ).rowcount

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()
