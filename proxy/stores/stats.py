"""Usage statistics in SQLite: aggregate rows only, never a patron, session or URL.

Contract: ``StatsStore.open(data_dir)`` opens ``stats.sqlite3``; ``add(drained)`` adds the
counters drained from ``core.usage.UsageCounters`` in one transaction (unique-patron counts
are absolute per day, so they are maxed, not summed); ``daily(...)`` reads rows for reports;
``roll_up(before)`` folds daily usage and login rows older than the retention into monthly
rows and deletes them (login outcomes survive as monthly counts, #18); ``monthly(...)`` and
``monthly_logins(...)`` read months, the rolled-up rows and the days not yet rolled up summed
together. Every table's key is (day or month, vendor, library) or (day or month, library,
outcome) or (day, vendor, third-party host): nothing can be joined to a patron (DESIGN P3).
Not here: counting (core/usage.py), CSV/JSON formatting (proxy/cli/stats.py).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from proxy.core.usage import Drained
from proxy.stores.sqlitedb import open_db

DB_FILE: Final = "stats.sqlite3"
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS usage_daily (
    day TEXT NOT NULL, vendor TEXT NOT NULL, library TEXT NOT NULL,
    sessions INTEGER NOT NULL DEFAULT 0, uniques INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    downloads INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, vendor, library)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_monthly (
    month TEXT NOT NULL, vendor TEXT NOT NULL, library TEXT NOT NULL,
    sessions INTEGER NOT NULL, uniques_max_day INTEGER NOT NULL, requests INTEGER NOT NULL,
    bytes INTEGER NOT NULL, downloads INTEGER NOT NULL,
    PRIMARY KEY (month, vendor, library)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logins_daily (
    day TEXT NOT NULL, library TEXT NOT NULL, outcome TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (day, library, outcome)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logins_monthly (
    month TEXT NOT NULL, library TEXT NOT NULL, outcome TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (month, library, outcome)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS third_party_daily (
    day TEXT NOT NULL, vendor TEXT NOT NULL, host TEXT NOT NULL,
    referenced INTEGER NOT NULL DEFAULT 0, blocked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, vendor, host)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS database_starts_daily (
    day TEXT NOT NULL, vendor TEXT NOT NULL, database TEXT NOT NULL, library TEXT NOT NULL,
    starts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, vendor, database, library)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unknown_hosts_daily (
    day TEXT NOT NULL, host TEXT NOT NULL, hits INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, host)) WITHOUT ROWID;
"""
SCHEMA_VERSION: Final = 2  # 2: #17 database_starts_daily, unknown_hosts_daily
UPSERT_STARTS: Final = """
INSERT INTO database_starts_daily VALUES (?, ?, ?, ?, ?)
ON CONFLICT (day, vendor, database, library) DO UPDATE SET starts = starts + excluded.starts"""
UPSERT_UNKNOWN: Final = """
INSERT INTO unknown_hosts_daily VALUES (?, ?, ?)
ON CONFLICT (day, host) DO UPDATE SET hits = hits + excluded.hits"""
UPSERT_USAGE: Final = """
INSERT INTO usage_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, vendor, library) DO UPDATE SET
  sessions = sessions + excluded.sessions, uniques = max(uniques, excluded.uniques),
  requests = requests + excluded.requests, bytes = bytes + excluded.bytes,
  downloads = downloads + excluded.downloads"""
UPSERT_LOGINS: Final = """
INSERT INTO logins_daily VALUES (?, ?, ?, ?)
ON CONFLICT (day, library, outcome) DO UPDATE SET count = count + excluded.count"""
UPSERT_THIRD: Final = """
INSERT INTO third_party_daily VALUES (?, ?, ?, ?, ?)
ON CONFLICT (day, vendor, host) DO UPDATE SET
  referenced = referenced + excluded.referenced, blocked = blocked + excluded.blocked"""
ROLL_UP: Final = """
INSERT INTO usage_monthly
SELECT substr(day, 1, 7), vendor, library, sum(sessions), max(uniques), sum(requests),
       sum(bytes), sum(downloads)
FROM usage_daily WHERE day < ? GROUP BY substr(day, 1, 7), vendor, library
ON CONFLICT (month, vendor, library) DO UPDATE SET
  sessions = sessions + excluded.sessions,
  uniques_max_day = max(uniques_max_day, excluded.uniques_max_day),
  requests = requests + excluded.requests, bytes = bytes + excluded.bytes,
  downloads = downloads + excluded.downloads"""
ROLL_UP_LOGINS: Final = """
INSERT INTO logins_monthly
SELECT substr(day, 1, 7), library, outcome, sum(count)
FROM logins_daily WHERE day < ? GROUP BY substr(day, 1, 7), library, outcome
ON CONFLICT (month, library, outcome) DO UPDATE SET count = count + excluded.count"""
# A month's usage: its rolled-up row plus the days of it not yet rolled up (#18).
MONTHLY_USAGE: Final = """
SELECT month, vendor, library, sum(sessions), max(uniques), sum(requests), sum(bytes),
       sum(downloads)
FROM (SELECT month, vendor, library, sessions, uniques_max_day AS uniques, requests, bytes,
             downloads FROM usage_monthly WHERE month BETWEEN ?1 AND ?2
      UNION ALL
      SELECT substr(day, 1, 7), vendor, library, sessions, uniques, requests, bytes, downloads
      FROM usage_daily WHERE substr(day, 1, 7) BETWEEN ?1 AND ?2)
GROUP BY month, vendor, library ORDER BY month, vendor, library"""
MONTHLY_LOGINS: Final = """
SELECT month, library, outcome, sum(count)
FROM (SELECT month, library, outcome, count FROM logins_monthly WHERE month BETWEEN ?1 AND ?2
      UNION ALL
      SELECT substr(day, 1, 7), library, outcome, count FROM logins_daily
      WHERE substr(day, 1, 7) BETWEEN ?1 AND ?2)
GROUP BY month, library, outcome ORDER BY 1, 2, 3"""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One (day, vendor, library) row."""

    day: str
    vendor: str
    library: str
    sessions: int
    uniques: int
    requests: int
    bytes: int
    downloads: int


class StatsStore:
    """The statistics file; methods are sync (call them through ``asyncio.to_thread``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path) -> StatsStore:
        """Open or create ``data_dir/stats.sqlite3``."""
        return cls(
            open_db(
                Path(data_dir) / DB_FILE,
                schema=SCHEMA,
                version=SCHEMA_VERSION,
                synchronous="NORMAL",
            )
        )

    def add(self, drained: Drained) -> None:
        """Add one drain's counters in one transaction."""
        usage = [
            (k[0].isoformat(), k[1], k[2], d.sessions, d.uniques, d.requests, d.bytes, d.downloads)
            for k, d in drained.usage.items()
        ]
        logins = [(k[0].isoformat(), k[1], k[2], n) for k, n in drained.logins.items()]
        third = [
            (
                k[0].isoformat(),
                k[1],
                k[2],
                n if k[3] == "referenced" else 0,
                n if k[3] == "blocked" else 0,
            )
            for k, n in drained.third_party.items()
        ]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(UPSERT_USAGE, usage)
                self._conn.executemany(UPSERT_LOGINS, logins)
                self._conn.executemany(UPSERT_THIRD, third)
                self._conn.executemany(
                    UPSERT_STARTS,
                    [(k[0].isoformat(), *k[1:], n) for k, n in drained.starts.items()],
                )
                self._conn.executemany(
                    UPSERT_UNKNOWN,
                    [(k[0].isoformat(), k[1], n) for k, n in drained.unknown_hosts.items()],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def daily(
        self, start: date, end: date, *, vendor: str | None = None, library: str | None = None
    ) -> list[UsageRow]:
        """Daily usage rows between two days (inclusive), optionally filtered."""
        sql = "SELECT * FROM usage_daily WHERE day BETWEEN ? AND ?"
        args: list[str] = [start.isoformat(), end.isoformat()]
        for column, value in (("vendor", vendor), ("library", library)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY day, vendor, library", args).fetchall()
        return [UsageRow(*row) for row in rows]

    def logins(self, start: date, end: date) -> list[tuple[str, str, str, int]]:
        """(day, library, outcome, count) rows."""
        with self._lock:
            return self._conn.execute(
                "SELECT * FROM logins_daily WHERE day BETWEEN ? AND ? ORDER BY 1, 2, 3",
                (start.isoformat(), end.isoformat()),
            ).fetchall()

    def monthly(self, start: date, end: date) -> list[UsageRow]:
        """Usage per (month, vendor, library) for the months ``start`` to ``end`` touch; the
        ``day`` field holds the month (YYYY-MM) and ``uniques`` the largest day's count."""
        with self._lock:
            rows = self._conn.execute(MONTHLY_USAGE, _months(start, end)).fetchall()
        return [UsageRow(*row) for row in rows]

    def monthly_logins(self, start: date, end: date) -> list[tuple[str, str, str, int]]:
        """(month, library, outcome, count) rows for the months ``start`` to ``end`` touch."""
        with self._lock:
            return self._conn.execute(MONTHLY_LOGINS, _months(start, end)).fetchall()

    def third_parties(
        self, start: date, end: date, limit: int = 20
    ) -> list[tuple[str, str, int, int]]:
        """(vendor, host, referenced, blocked) summed over the period, most seen first: with
        ``third_party: block`` the default, most hosts are only ever blocked, so both count."""
        with self._lock:
            return self._conn.execute(
                "SELECT vendor, host, sum(referenced), sum(blocked) FROM third_party_daily "
                "WHERE day BETWEEN ? AND ? GROUP BY vendor, host "
                "ORDER BY sum(referenced) + sum(blocked) DESC, host LIMIT ?",
                (start.isoformat(), end.isoformat(), limit),
            ).fetchall()

    def database_starts(self, start: date, end: date) -> list[tuple[str, str, str, int]]:
        """#17: (vendor, database, library, starts) summed over the period."""
        with self._lock:
            return self._conn.execute(
                "SELECT vendor, database, library, sum(starts) FROM database_starts_daily "
                "WHERE day BETWEEN ? AND ? GROUP BY vendor, database, library ORDER BY 1, 2, 3",
                (start.isoformat(), end.isoformat()),
            ).fetchall()

    def unknown_hosts(self, start: date, end: date, limit: int = 50) -> list[tuple[str, int]]:
        """#17 (needhost): (host, hits) over the period, most hit first."""
        with self._lock:
            return self._conn.execute(
                "SELECT host, sum(hits) FROM unknown_hosts_daily WHERE day BETWEEN ? AND ? "
                "GROUP BY host ORDER BY sum(hits) DESC, host LIMIT ?",
                (start.isoformat(), end.isoformat(), limit),
            ).fetchall()

    def roll_up(self, before: date) -> int:
        """Fold daily usage and logins older than ``before`` into months; delete old daily
        detail (third-party host counts are not kept past it)."""
        cutoff = before.isoformat()
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute(ROLL_UP, (cutoff,))
            self._conn.execute(ROLL_UP_LOGINS, (cutoff,))
            moved = self._conn.execute("DELETE FROM usage_daily WHERE day < ?", (cutoff,))
            self._conn.execute("DELETE FROM logins_daily WHERE day < ?", (cutoff,))
            self._conn.execute("DELETE FROM third_party_daily WHERE day < ?", (cutoff,))
            self._conn.execute("DELETE FROM unknown_hosts_daily WHERE day < ?", (cutoff,))
            self._conn.execute("COMMIT")
        return moved.rowcount

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()


def _months(start: date, end: date) -> tuple[str, str]:
    """The (first, last) month keys, YYYY-MM, of a period."""
    return start.isoformat()[:7], end.isoformat()[:7]
