"""The local block list: cards staff blocked, apart from the ILS's own status (#18 item 1).

Contract: one SQLite file ``data_dir/blocks.sqlite3`` (WAL, ``synchronous=FULL``: security
state) holding, per blocked card, only the card's keyed hash — the same
``keyed_hash("card", barcode)`` the patron registry uses, under the same pepper, so any
authentication back-end (registry, SIP2, LDAP) can ask ``is_blocked`` before or besides its
own check — plus the member library, a case number, the reason, who blocked it, when, and an
optional expiry. No raw card, PIN or name ever reaches it. ``patrons import`` (with or
without ``--replace``) never touches this file, so a block outlives every ILS export.
A block is in force until it is lifted (``lift_case``, ``lift_prefix``) or its expiry passes;
expired rows are deleted by ``drop_expired`` (run when blocks are listed).
Every method does SQLite I/O: call it from a worker thread in the server.
Not here: tracing a pseudonym to a card (abuse_report.py), the refusal (core/login.py).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Self

from proxy.core.cards import normalize_barcode
from proxy.core.keyedhash import KeyedHasher
from proxy.secretfiles import ensure_private_dir, read_or_create_secret
from proxy.stores.patrons import PEPPER_FILE
from proxy.stores.sqlitedb import StoreError, open_db

DB_FILE: Final = "blocks.sqlite3"
SCHEMA_VERSION: Final = 1
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS blocks (
    card_hash TEXT PRIMARY KEY,   -- keyed hash of the card, as in patrons.sqlite3
    library   TEXT NOT NULL,
    case_id   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    blocked_by TEXT NOT NULL,
    created   TEXT NOT NULL,      -- ISO datetime, UTC
    expires   TEXT                -- ISO datetime, UTC; NULL: until lifted
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_case ON blocks (case_id);
"""
MIN_PREFIX: Final = 8  # an unblock by hash prefix names at least this many hex digits
SHOWN_PREFIX: Final = 12  # what listings show of the card hash


class BlockListError(StoreError):
    """The block list file cannot be used, or a lift request is ambiguous."""


@dataclass(frozen=True, slots=True)
class Block:
    """One blocked card, as staff may see it (the hash is keyed: it names no one)."""

    card_hash: str
    library: str
    case: str
    reason: str
    by: str
    created: datetime
    expires: datetime | None = None

    def active(self, now: datetime) -> bool:
        """In force at ``now``."""
        return self.expires is None or now < self.expires

    @property
    def prefix(self) -> str:
        """The start of the card hash, the handle listings show."""
        return self.card_hash[:SHOWN_PREFIX]


class BlockList:
    """The block list of one ``data_dir``; safe to share between threads."""

    def __init__(self, conn: sqlite3.Connection, pepper: bytes) -> None:
        self._conn = conn
        self._hash_card = KeyedHasher(pepper, "card")  # the registry's card hash (P4)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path) -> Self:
        """Open (creating if needed) ``data_dir/blocks.sqlite3`` with the registry's pepper."""
        data_dir = Path(data_dir)
        ensure_private_dir(data_dir)
        pepper = read_or_create_secret(data_dir / PEPPER_FILE)
        conn = open_db(
            data_dir / DB_FILE,
            schema=SCHEMA,
            version=SCHEMA_VERSION,
            secure_delete=True,  # a lifted block leaves no trace of the card's hash
            what="the block list",
            error=BlockListError,
        )
        return cls(conn, pepper)

    def card_hash(self, barcode: str) -> str:
        """The keyed hash of a card number: the key of the list, for every back-end."""
        return self._hash_card(normalize_barcode(barcode))

    def add(self, entry: Block) -> None:
        """Block a card (a second block of the same card replaces the first)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)", _row(entry)
            )

    def is_blocked(self, card_hash: str, now: datetime) -> bool:
        """True when the card is on the list and its block has not expired at ``now``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT expires FROM blocks WHERE card_hash = ?", (card_hash,)
            ).fetchone()
        return row is not None and (row[0] is None or now < datetime.fromisoformat(row[0]))

    def list_all(self) -> list[Block]:
        """Every block, newest first."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM blocks ORDER BY created DESC").fetchall()
        return [_block(row) for row in rows]

    def drop_expired(self, now: datetime) -> int:
        """Delete blocks whose expiry has passed; how many."""
        with self._lock:
            return self._conn.execute(
                "DELETE FROM blocks WHERE expires IS NOT NULL AND expires <= ?",
                (now.isoformat(),),
            ).rowcount

    def lift_case(self, case: str) -> int:
        """Lift the block(s) of a case number; how many were lifted."""
        with self._lock:
            return self._conn.execute("DELETE FROM blocks WHERE case_id = ?", (case,)).rowcount

    def lift_prefix(self, prefix: str) -> int:
        """Lift the one block whose card hash starts with ``prefix`` (0 when none matches).

        Raises:
            BlockListError: the prefix is too short, not hex, or matches several blocks.
        """
        prefix = check_prefix(prefix)
        with self._lock:
            found = self._conn.execute(
                "SELECT card_hash FROM blocks WHERE substr(card_hash, 1, ?) = ?",
                (len(prefix), prefix),
            ).fetchall()
            if len(found) > 1:
                raise BlockListError(f"{len(found)} blocks start with {prefix}; give more digits")
            return self._conn.execute(
                "DELETE FROM blocks WHERE card_hash = ?", (found[0][0] if found else "",)
            ).rowcount

    def replace_all(self, entries: list[Block]) -> None:
        """Make the file hold exactly ``entries`` (a mirror of the shared list, redis_blocks.py)."""
        with self._lock:  # one transaction: a reader never sees the file half replaced
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM blocks")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [_row(entry) for entry in entries],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def forget(self, card_hashes: list[str]) -> None:
        """Delete the rows of these card hashes (lifted on the shared list)."""
        with self._lock:
            self._conn.executemany(
                "DELETE FROM blocks WHERE card_hash = ?", [(h,) for h in card_hashes]
            )

    def check(self) -> None:
        """Raise ``sqlite3.Error`` when the file can no longer be read."""
        with self._lock:
            self._conn.execute("SELECT card_hash FROM blocks LIMIT 1").fetchall()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()


def check_prefix(prefix: str) -> str:
    """A hash prefix as ``lift_prefix`` takes it, lowercased.

    Raises:
        BlockListError: too short, or not hex.
    """
    prefix = prefix.lower()
    if len(prefix) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
        raise BlockListError(f"a hash prefix has at least {MIN_PREFIX} hex digits")
    return prefix


def _row(entry: Block) -> tuple[str | None, ...]:
    expires = entry.expires.isoformat() if entry.expires else None
    created = entry.created.isoformat()
    return (entry.card_hash, entry.library, entry.case, entry.reason, entry.by, created, expires)


def _block(row: tuple[str, ...]) -> Block:
    card_hash, library, case, reason, by, created, expires = row
    return Block(
        card_hash,
        library,
        case,
        reason,
        by,
        datetime.fromisoformat(created),
        datetime.fromisoformat(expires) if expires else None,
    )
