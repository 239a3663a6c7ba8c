"""The patron registry: which cards exist, and keyed hashes to check them (DESIGN P4).

Contract: one SQLite file ``data_dir/patrons.sqlite3`` (WAL, ``synchronous=FULL``: this is
security-relevant state) holding, per card, ``keyed_hash("card", barcode)`` and
``keyed_hash("secret:<pin|last_name>", card_hash + ":" + secret)`` under the pepper in
``data_dir/pepper.key``, plus library, ptype, expiry and status. Values are normalized and
hashed in Python before any SQL sees them, so no raw barcode, PIN or name reaches the
database, its WAL or any temp file. Binding the secret hash to the card hash means two
patrons with the same PIN do not share a hash.

``authenticate`` is the one way to check a login: it always runs one SELECT, one HMAC, one
constant-time compare and builds one record (from a random decoy row when the card is
unknown), so the time taken does not tell whether a card exists (pentest R19: building the
record only for known cards was a 23 µs tell). ``bulk_write`` is the one way to change
many rows: a single ``BEGIN IMMEDIATE`` transaction that commits all or nothing, so a crash
or error midway leaves the previous registry untouched (readers keep seeing it meanwhile,
thanks to WAL). Batches are first staged in a private temporary database attached to the
same connection and written inside the same transaction (hashes only; SQLite keeps it in a
temp file that it deletes on detach — never in Python memory), then merged into
``patrons`` in card-hash order; with ``replace`` the staged rows also say which cards were
seen, and the rest are deleted.
Not here: CSV parsing and validation (patron_import.py), whether a card may log in
(core/login.py), throttling, sessions.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, NamedTuple, Self, cast, get_args

from proxy.core.cards import LoginWith, normalize_barcode, normalize_secret
from proxy.core.keyedhash import KeyedHasher
from proxy.errors import ClamshellError
from proxy.secretfiles import ensure_private_dir, read_or_create_secret
from proxy.stores.sqlitedb import StoreError, open_db

PatronStatus = Literal["ok", "blocked", "lost", "fines"]
STATUSES: Final[frozenset[str]] = frozenset(get_args(PatronStatus))
LOGIN_WITH: Final[tuple[LoginWith, ...]] = get_args(LoginWith)
DB_FILE: Final = "patrons.sqlite3"
PEPPER_FILE: Final = "pepper.key"
SCHEMA_VERSION: Final = 1
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS patrons (
    card_hash   TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    library     TEXT NOT NULL,
    ptype       TEXT NOT NULL,
    expires     TEXT NOT NULL,  -- ISO date; the card is valid through this day
    status      TEXT NOT NULL CHECK (status IN ('ok', 'blocked', 'lost', 'fines')),
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
"""
STAGE_DB: Final = "import_stage"  # a private temporary database, attached per bulk write
STAGE: Final = """
CREATE TABLE import_stage.rows (
    card_hash TEXT NOT NULL, secret_hash TEXT NOT NULL, library TEXT NOT NULL,
    ptype TEXT NOT NULL, expires TEXT NOT NULL, status TEXT NOT NULL
)"""
STAGE_PRAGMAS: Final = ("journal_mode = MEMORY", "synchronous = OFF")  # throwaway data
STAGE_ROW: Final = "INSERT INTO import_stage.rows VALUES (?, ?, ?, ?, ?, ?)"
# A covering index: the merge and the replace both read it in order, never the table.
STAGE_INDEX: Final = (
    "CREATE INDEX import_stage.rows_card"
    " ON rows (card_hash, secret_hash, library, ptype, expires, status)"
)
# In card_hash order the B-tree is built left to right instead of at random places;
# rowid order among duplicates makes the file's last row win. Rows whose values did not
# change are not rewritten (less WAL; updated_at is the time of the last change).
MERGE: Final = """
INSERT INTO patrons (card_hash, secret_hash, library, ptype, expires, status, updated_at)
SELECT card_hash, secret_hash, library, ptype, expires, status, ?
FROM import_stage.rows WHERE true ORDER BY card_hash, rowid
ON CONFLICT (card_hash) DO UPDATE SET
    secret_hash = excluded.secret_hash, library = excluded.library, ptype = excluded.ptype,
    expires = excluded.expires, status = excluded.status, updated_at = excluded.updated_at
WHERE (secret_hash, library, ptype, expires, status)
    IS NOT (excluded.secret_hash, excluded.library, excluded.ptype, excluded.expires,
            excluded.status)
"""
REMOVE_UNSEEN: Final = (
    "DELETE FROM patrons WHERE card_hash NOT IN (SELECT card_hash FROM import_stage.rows)"
)
COUNT_UNSEEN: Final = (  # the --max-remove guard (patron_import.py) asks before the merge
    "SELECT count(*) FROM patrons WHERE card_hash NOT IN (SELECT card_hash FROM import_stage.rows)"
)
SELECT_ONE: Final = (
    "SELECT card_hash, library, ptype, expires, status, secret_hash FROM patrons"
    " WHERE card_hash = ?"
)
IMPORT_CACHE_KIB: Final = 32 * 1024  # page cache per database in bulk writes: memory stays flat
DEFAULT_CACHE_KIB: Final = 2000  # SQLite's default


class RegistryError(StoreError):
    """The registry file cannot be used (newer schema, corrupt, unwritable)."""


class UnknownCard(ClamshellError):
    """No card in the registry has the given hash."""


@dataclass(frozen=True, slots=True)
class PatronRecord:
    """What the registry knows about a card — never the barcode, PIN or name."""

    card_hash: str
    library: str
    ptype: str
    expires: date
    status: PatronStatus


class PatronRow(NamedTuple):
    """One hashed row, ready to store (built by ``PatronRegistry.hashed_row``)."""

    card_hash: str
    secret_hash: str
    library: str
    ptype: str
    expires: str  # ISO date
    status: PatronStatus


class BulkWriter:
    """Stages batches inside ``PatronRegistry.bulk_write``; counts are set when it commits."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.written = 0
        self.discarded = False
        self.committed = False
        self.imported = self.updated = self.unchanged = self.removed = 0

    def write(self, rows: Sequence[PatronRow]) -> None:
        """Stage a batch; it reaches ``patrons`` when the block ends without an error."""
        self._conn.executemany(STAGE_ROW, rows)
        self.written += len(rows)

    def discard(self) -> None:
        """Roll everything back at the end of the block instead of committing."""
        self.discarded = True

    def unseen(self) -> int:
        """Cards in the registry that no staged row names: what ``replace`` would remove."""
        return int(self._conn.execute(COUNT_UNSEEN).fetchone()[0])


class PatronRegistry:
    """The registry of one ``data_dir``; safe to share between threads.

    In one process, reads wait while a bulk write runs; run imports from the CLI (another
    process) and a running server keeps answering from the last committed state (WAL).
    """

    def __init__(self, conn: sqlite3.Connection, pepper: bytes) -> None:
        self._conn = conn
        self._hash_card = KeyedHasher(pepper, "card")
        self._hash_secret = {way: KeyedHasher(pepper, f"secret:{way}") for way in LOGIN_WITH}
        # Stands in for the row of an unknown card: compared against and parsed the same way.
        self._decoy = (
            secrets.token_hex(32),
            "",
            "",
            "1970-01-01",
            "blocked",
            secrets.token_hex(32),
        )
        self._lock = threading.RLock()

    @classmethod
    def open(cls, data_dir: Path) -> PatronRegistry:
        """Open (creating if needed) the pepper and the database in ``data_dir``."""
        data_dir = Path(data_dir)
        ensure_private_dir(data_dir)
        pepper = read_or_create_secret(data_dir / PEPPER_FILE)
        return cls(_connect(data_dir / DB_FILE), pepper)

    # --- hashing ---------------------------------------------------------------------

    def card_hash(self, barcode: str) -> str:
        """The keyed hash of a card number (normalized first)."""
        return self._hash_card(normalize_barcode(barcode))

    def secret_hash(self, card_hash: str, secret: str, login_with: LoginWith) -> str:
        """The keyed hash of a PIN or last name (normalized first), bound to the card."""
        return self._hash_secret[login_with](f"{card_hash}:{normalize_secret(secret, login_with)}")

    def hashed_row(
        self,
        barcode: str,
        secret: str,
        login_with: LoginWith,
        *,
        library: str,
        ptype: str,
        expires: date,
        status: PatronStatus,
    ) -> PatronRow:
        """A row to store: the raw barcode and secret are hashed here and go no further."""
        card = self.card_hash(barcode)
        hashed = self.secret_hash(card, secret, login_with)
        return PatronRow(card, hashed, library, ptype, expires.isoformat(), status)

    # --- reading ---------------------------------------------------------------------

    def lookup(self, barcode: str) -> PatronRecord | None:
        """The record for a card number, or None (for staff tools; logins use authenticate)."""
        row = self._select(self.card_hash(barcode))
        return None if row is None else _record(row)

    def authenticate(
        self, barcode: str, secret: str, login_with: LoginWith
    ) -> tuple[PatronRecord | None, bool]:
        """The card's record (None if unknown) and whether the secret matches it.

        The same work is done whether or not the card exists. The record is returned even
        when the secret is wrong (e.g. for per-card throttling); callers must not reveal
        anything from it unless the second value is True.
        """
        record, known, matched = self.check_login(barcode, secret, login_with)
        return (record if known else None), matched

    def check_login(
        self, barcode: str, secret: str, login_with: LoginWith, *, decoy_library: str = ""
    ) -> tuple[PatronRecord, bool, bool]:
        """``authenticate`` for callers that must also do the same work afterwards: the
        record (a decoy of ``decoy_library`` when the card is unknown), whether the card is
        known, and whether the secret matched a known card."""
        card = self.card_hash(barcode)
        row = self._select(card)
        known = row is not None
        used = row if row is not None else (*self._decoy[:1], decoy_library, *self._decoy[2:])
        offered = self.secret_hash(card, secret, login_with)
        matched = hmac.compare_digest(offered, str(used[5]))
        has_secret = bool(normalize_secret(secret, login_with))
        return _record(used), known, matched and has_secret and known

    def patron_key(self, record: PatronRecord) -> str:
        """A stable, non-reversible id for pseudonyms and throttling: the card hash."""
        return record.card_hash

    def card_hashes(self, *, page: int = 10_000) -> Iterator[str]:
        """Every card hash (patron key), in order, a page at a time (memory stays flat)."""
        after = ""
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT card_hash FROM patrons WHERE card_hash > ? ORDER BY card_hash LIMIT ?",
                    (after, page),
                ).fetchall()
            yield from (str(row[0]) for row in rows)
            if len(rows) < page:
                return
            after = str(rows[-1][0])

    def library_of(self, card_hash: str) -> str | None:
        """The library of the card with this hash, or None (for the block list, #18)."""
        row = self._select(card_hash)
        return None if row is None else str(row[1])

    def check(self) -> None:
        """Raise ``sqlite3.Error`` when the file can no longer be read (``/healthz``)."""
        with self._lock:
            self._conn.execute("SELECT card_hash FROM patrons LIMIT 1").fetchall()

    def count(self) -> int:
        """How many cards the registry holds."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM patrons").fetchone()[0])

    def count_by_library(self) -> dict[str, int]:
        """Cards per member library (the admin console's registry status, #20)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT library, count(*) FROM patrons GROUP BY library"
            ).fetchall()
        return {str(lib): int(n) for lib, n in rows}

    def _select(self, card_hash: str) -> tuple[object, ...] | None:
        with self._lock:
            row = self._conn.execute(SELECT_ONE, (card_hash,)).fetchone()
        return cast("tuple[object, ...] | None", row)

    # --- writing ---------------------------------------------------------------------

    def set_status(self, card_hash: str, status: str) -> bool:
        """Set a card's status (e.g. block it); False when the card is unknown."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}")
        stamp = _now_stamp()
        with self._lock, self._transaction():
            cursor = self._conn.execute(
                "UPDATE patrons SET status = ?, updated_at = ? WHERE card_hash = ?",
                (status, stamp, card_hash),
            )
        return cursor.rowcount == 1

    def block(self, card_hash: str) -> str:
        """Block a card (e.g. after an abuse report) and return its library code.

        Raises:
            UnknownCard: no card has this hash.
        """
        with self._lock, self._transaction():
            row = self._conn.execute(
                "SELECT library FROM patrons WHERE card_hash = ?", (card_hash,)
            ).fetchone()
            if row is None:
                raise UnknownCard("no card in the registry has that patron key")
            self._conn.execute(
                "UPDATE patrons SET status = 'blocked', updated_at = ? WHERE card_hash = ?",
                (_now_stamp(), card_hash),
            )
        return str(row[0])

    def remove(self, barcode: str) -> bool:
        """Delete one card (the review card after a review, #18.7); False when unknown."""
        card_hash = self.card_hash(barcode)
        with self._lock, self._transaction():
            cursor = self._conn.execute("DELETE FROM patrons WHERE card_hash = ?", (card_hash,))
        return cursor.rowcount == 1

    @contextmanager
    def bulk_write(self, *, replace: bool) -> Iterator[BulkWriter]:
        """One all-or-nothing transaction for many rows; see the module docstring."""
        with self._lock:
            try:
                self._open_stage()
                with self._transaction():
                    writer = BulkWriter(self._conn)
                    yield writer
                    self._merge(writer, replace)
                writer.committed = not writer.discarded
            finally:
                self._close_stage()
        if writer.committed:
            self._checkpoint()

    def _open_stage(self) -> None:
        """Attach an empty private temporary database (ATTACH cannot run in a transaction)."""
        self._conn.execute(f"ATTACH DATABASE '' AS {STAGE_DB}")
        for pragma in (*STAGE_PRAGMAS, f"cache_size = -{IMPORT_CACHE_KIB}"):
            self._conn.execute(f"PRAGMA {STAGE_DB}.{pragma}")
        self._conn.execute(f"PRAGMA main.cache_size = -{IMPORT_CACHE_KIB}")
        self._conn.execute(STAGE)

    def _close_stage(self) -> None:
        """Detach the staging database; SQLite deletes its file (no per-page DROP work)."""
        attached = {row[1] for row in self._conn.execute("PRAGMA database_list")}
        if STAGE_DB in attached:
            self._conn.execute(f"DETACH DATABASE {STAGE_DB}")
        self._conn.execute(f"PRAGMA main.cache_size = -{DEFAULT_CACHE_KIB}")

    def _merge(self, writer: BulkWriter, replace: bool) -> None:
        """Move the staged rows into ``patrons`` (still inside the transaction)."""
        if writer.discarded:
            raise _Discard
        before = self._count_locked()
        self._conn.execute(STAGE_INDEX)
        changed = self._conn.execute(MERGE, (_now_stamp(),)).rowcount  # inserted + updated
        writer.imported = self._count_locked() - before
        writer.updated = changed - writer.imported
        writer.unchanged = writer.written - changed
        if replace:
            writer.removed = self._conn.execute(REMOVE_UNSEEN).rowcount

    def _count_locked(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM patrons").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # busy_timeout ran out
            raise RegistryError(
                f"the patron registry is busy ({exc}); is another import running?"
            ) from None
        try:
            yield
            self._conn.execute("COMMIT")
        except _Discard:
            self._conn.execute("ROLLBACK")
        except BaseException:
            if self._conn.in_transaction:  # also when COMMIT itself failed
                self._conn.execute("ROLLBACK")
            raise

    def _checkpoint(self) -> None:
        """Fold the WAL back into the database after a big write (best effort)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (the WAL is checkpointed and removed by SQLite)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Discard(Exception):
    """Internal: roll back a bulk write without an error."""


def _connect(path: Path) -> sqlite3.Connection:
    """Open the patron registry (see stores/sqlitedb.py: 0600, WAL, synchronous=FULL, schema)."""
    return open_db(
        path,
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        secure_delete=False,
        what="the patron registry",
        error=RegistryError,
    )


def _record(row: tuple[object, ...]) -> PatronRecord:
    card_hash, library, ptype, expires, status = (str(v) for v in row[:5])
    return PatronRecord(
        card_hash, library, ptype, date.fromisoformat(expires), cast(PatronStatus, status)
    )


def _now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
