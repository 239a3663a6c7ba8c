"""The audit log of staff actions (issue #20), in ``data_dir/audit.sqlite3``.

Contract: ``AuditLog.record(actor, action, now, library=..., detail=...)`` appends one entry
(who, when, what) and deletes entries older than the retention; ``recent(limit, libraries)``
lists the newest first. What an entry may hold is only what the action itself is: a staff or
API-key name, an action name from ``ACTIONS``, a member library, and a ``detail`` such as a
vendor id, a keyed session hash or a case number — never a card, PIN, name, URL or cookie
(DESIGN P3; callers pass only those values and a canary test checks it). Every method does
SQLite I/O: call it from a worker thread in the server. ``synchronous=FULL``: security record.
Not here: who may read it (core/staffroles.py), rendering (web/admin/pages.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from proxy.stores.sqlitedb import open_db

DB_FILE: Final = "audit.sqlite3"
SCHEMA_VERSION: Final = 1
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,     -- ISO datetime, UTC
    actor   TEXT NOT NULL,     -- staff name or key:<name>
    action  TEXT NOT NULL,
    library TEXT NOT NULL,     -- '' when the action is not about one library
    detail  TEXT NOT NULL      -- vendor id, keyed session hash, case number, account name
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
"""
# The actions recorded; a name outside this table is a programming error.
ACTIONS: Final = frozenset(
    {
        "signed_in",
        "sign_in_failed",
        "signed_out",
        "rules_reloaded",
        "session_suspended",
        "card_blocked",
        "sessions_ended",
        "lockout_cleared",
        "stats_exported",
        "staff_added",
        "staff_disabled",
        "staff_enabled",
        "staff_reset",
        "api_key_created",
        "api_key_revoked",
        "config_reloaded",
    }
)
DETAIL_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One staff action."""

    at: datetime
    actor: str
    action: str
    library: str
    detail: str


class AuditLog:
    """Append-only staff actions with a retention window."""

    def __init__(self, conn: sqlite3.Connection, retention: timedelta) -> None:
        self._conn, self.retention = conn, retention
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path, retention: timedelta) -> AuditLog:
        """Open ``data_dir/audit.sqlite3``, creating it 0600 when missing."""
        conn = open_db(
            data_dir / DB_FILE, schema=SCHEMA, version=SCHEMA_VERSION, what="the audit log"
        )
        return cls(conn, retention)

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def record(
        self, actor: str, action: str, now: datetime, *, library: str = "", detail: str = ""
    ) -> None:
        """Append one entry and forget entries past the retention."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        with self._lock:
            self._conn.execute(
                "INSERT INTO audit (at, actor, action, library, detail) VALUES (?, ?, ?, ?, ?)",
                (now.isoformat(), actor, action, library, detail[:DETAIL_MAX]),
            )
            cutoff = (now - self.retention).isoformat()
            self._conn.execute("DELETE FROM audit WHERE at < ?", (cutoff,))

    def recent(self, limit: int = 200, libraries: Collection[str] = ()) -> list[AuditEntry]:
        """The newest entries first; only these libraries' entries when ``libraries`` is given."""
        sql = "SELECT at, actor, action, library, detail FROM audit"
        params: list[object] = []
        if libraries:
            sql += f" WHERE library IN ({', '.join('?' * len(libraries))})"
            params.extend(sorted(libraries))
        rows = self._conn.execute(f"{sql} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [AuditEntry(datetime.fromisoformat(a), b, c, d, e) for a, b, c, d, e in rows]
