"""Epoch keys for rotated pseudonyms, stored so that they can be destroyed (DESIGN P5).

Contract: one SQLite file ``data_dir/keys.sqlite3`` (mode 0600, WAL, ``synchronous=FULL``)
maps an epoch id (``pseudonym.epoch_id``: ``daily:2026-11-29``, ``weekly:2026-W48``…) to a
32-byte key. ``key_for`` creates the key on first use; ``existing`` only reads (for answering
an abuse report about an old pseudonym); ``destroy_older_than(cutoff)`` deletes every key whose
epoch ended at or before ``cutoff``, with ``secure_delete`` on and the WAL checkpointed and
truncated, so the key bytes are gone from the files (tested by scanning them).

Why random keys rather than ``HMAC(master secret, epoch id)``: a derived key can be derived
again by whoever holds the master secret, so deleting it would erase nothing. A random key
that is deleted is gone, and with it every link from that epoch's pseudonyms back to a patron
key (cryptographic erasure). The cost is that this file must be backed up like a secret — and
that a restored backup brings destroyed keys back, so keep backups no longer than the retention.

Why "ended" rather than "started" before the cutoff: a key is then kept for at least the
retention period after the last pseudonym made with it, and the current epoch's key is never
destroyed and silently replaced mid-epoch (which would change every pseudonym of that epoch).
The ``never`` epoch has no end and is never destroyed by age.

Used from the event loop without blocking it (#14): ``open`` loads every stored key (a few
per retention window) into memory, so ``key_for`` is a dict lookup. A key that is not there
yet is made in memory at once and written by the store's own writer thread (write-behind,
``INSERT OR IGNORE`` then read back); a crash within those milliseconds loses that key, so
``prepare(now)`` (the retention task, in a worker thread) writes the keys of the current
and next epoch of every kind in use ahead of time, and misses are rare. If the file already
held another key for that epoch (written by another process), that key is adopted and
``epoch_key_replaced`` logged. ``existing``, ``destroy_older_than`` (which checkpoints the
WAL), ``prepare``, ``check`` and ``close`` block: call them through ``asyncio.to_thread``.
One lock serializes the connection. Assumes one serving process per ``data_dir`` (the
in-process cache is not told about other processes' deletions).
Not here: deriving pseudonyms (core/pseudonym.py), the retention policy
(``settings.retention.epoch_key_days``, applied by the purge task), bytes left behind by the
filesystem or SSD below SQLite, or copies of a key in this process's memory before ``close``.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Final, cast

from proxy.core.pseudonym import Rotation, epoch_id, epoch_span
from proxy.logconfig import get_logger
from proxy.secretfiles import ensure_private_dir
from proxy.stores.sqlitedb import StoreError, open_db

DB_FILE: Final = "keys.sqlite3"
KEY_BYTES: Final = 32
SCHEMA_VERSION: Final = 1
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS epoch_keys (
    epoch_id  TEXT PRIMARY KEY,
    key       BLOB NOT NULL,
    starts_at INTEGER NOT NULL,  -- unix seconds, UTC
    ends_at   INTEGER            -- unix seconds, UTC; NULL for the 'never' epoch
) WITHOUT ROWID;
"""

UNCHANGING: Final = frozenset({"never"})  # one epoch for ever: nothing to make ahead
Row = tuple[str, bytes, int | None, int | None]  # epoch_id, key, starts_at, ends_at

log = get_logger("epochkeys")


class EpochKeyStoreError(StoreError):
    """The key file cannot be used (newer schema, corrupt, unwritable)."""


class EpochKeyStore:
    """Random per-epoch keys in ``data_dir/keys.sqlite3``, cached in process."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        with self._lock:
            rows = self._conn.execute("SELECT epoch_id, key FROM epoch_keys").fetchall()
        self._cache: dict[str, bytes] = {str(e): bytes(k) for e, k in rows}
        self._unwritten: dict[str, Row] = {}  # made in memory, not yet in the file
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epochkeys")
        self._mint_listeners: list[Callable[[str], object]] = []

    @classmethod
    def open(cls, data_dir: Path) -> EpochKeyStore:
        """Open (creating if needed) the key file in ``data_dir``."""
        ensure_private_dir(data_dir)
        return cls(_connect(data_dir / DB_FILE))

    def key_for(self, epoch_id: str) -> bytes:
        """The key of an epoch, made at random on first use; never blocks (see module doc).

        Raises:
            ValueError: ``epoch_id`` is not an id that ``pseudonym.epoch_id`` makes.
        """
        cached = self._cache.get(epoch_id)
        if cached is not None:
            return cached
        if self._mint(epoch_id):
            self._writer.submit(self._write_unwritten)
            for fn in self._mint_listeners:
                fn(epoch_id)
        return self._cache[epoch_id]

    def add_mint_listener(self, fn: Callable[[str], object]) -> None:
        """Call ``fn(epoch_id)`` when ``key_for`` made a new key (#15: shared with all nodes)."""
        self._mint_listeners.append(fn)

    def known(self) -> dict[str, bytes]:
        """Every key held in memory, by epoch id (#15: to agree on them with other nodes)."""
        return dict(self._cache)

    def adopt(self, epoch_id: str, key: bytes) -> None:
        """Use ``key`` for the epoch from now on, in memory and in the file (blocking: a
        thread): the key another node made first (#15)."""
        start, end = epoch_span(epoch_id)
        with self._lock:
            self._unwritten.pop(epoch_id, None)
            self._conn.execute(
                "INSERT OR REPLACE INTO epoch_keys VALUES (?, ?, ?, ?)",
                (epoch_id, key, _seconds(start), _seconds(end)),
            )
            self._cache[epoch_id] = key

    def prepare(self, now: datetime) -> int:
        """Make and write the keys of the current and next epoch of every kind in use
        (blocking: a worker thread); returns how many keys were new."""
        kinds = {epoch.partition(":")[0] for epoch in self._cache} - UNCHANGING
        made = 0
        for kind in sorted(kinds):
            current = epoch_id(cast(Rotation, kind), now)  # stored ids were validated
            _, end = epoch_span(current)
            assert end is not None
            made += self._mint(current) + self._mint(epoch_id(cast(Rotation, kind), end))
        self._write_unwritten()
        return made

    def existing(self, epoch_id: str) -> bytes | None:
        """The key of an epoch if it exists (never creates one)."""
        cached = self._cache.get(epoch_id)
        if cached is not None:
            return cached
        with self._lock:
            key = self._select(epoch_id)
        if key is not None:
            self._cache[epoch_id] = key
        return key

    def destroy_older_than(self, cutoff: datetime) -> int:
        """Erase every key whose epoch ended at or before ``cutoff``; returns how many."""
        with self._lock:
            self._write_unwritten_locked()
            doomed = [
                str(row[0])
                for row in self._conn.execute(
                    "DELETE FROM epoch_keys WHERE ends_at <= ? RETURNING epoch_id",
                    (_seconds(cutoff),),
                ).fetchall()
            ]
            if doomed:
                self._truncate_wal()
            for epoch in doomed:
                self._cache.pop(epoch, None)
        return len(doomed)

    def check(self) -> None:
        """Raise ``sqlite3.Error`` when the file can no longer be read (``/healthz``)."""
        with self._lock:
            self._conn.execute("SELECT epoch_id FROM epoch_keys LIMIT 1").fetchall()

    def close(self) -> None:
        """Write the keys still unwritten, close the file and forget the cached keys."""
        self._writer.shutdown(wait=True)
        self._write_unwritten()
        with self._lock:
            self._cache.clear()
            self._conn.close()

    def _mint(self, epoch_id: str) -> bool:
        """Put a fresh random key in the cache unless one is there; True when it was new."""
        start, end = epoch_span(epoch_id)
        fresh = secrets.token_bytes(KEY_BYTES)
        if self._cache.setdefault(epoch_id, fresh) is not fresh:  # atomic: first one wins
            return False
        self._unwritten[epoch_id] = (epoch_id, fresh, _seconds(start), _seconds(end))
        return True

    def flush(self) -> None:
        """Write the keys made in memory now (blocking: a worker thread)."""
        self._write_unwritten()

    def _write_unwritten(self) -> None:
        """Write the keys made in memory (OR IGNORE + read back: the file's key wins)."""
        with self._lock:
            self._write_unwritten_locked()

    def _write_unwritten_locked(self) -> None:
        for epoch, row in self._unwritten.copy().items():
            try:
                self._conn.execute("INSERT OR IGNORE INTO epoch_keys VALUES (?, ?, ?, ?)", row)
                stored = self._select(epoch)
            except sqlite3.Error as exc:  # kept: the next key_for miss, prepare or close retries
                log.error("epoch_key_write_failed", error=type(exc).__name__)
                return
            self._unwritten.pop(epoch, None)
            if stored is not None and stored != row[1]:
                log.warning("epoch_key_replaced")
                self._cache[epoch] = stored

    def _select(self, epoch_id: str) -> bytes | None:
        found = self._conn.execute(
            "SELECT key FROM epoch_keys WHERE epoch_id = ?", (epoch_id,)
        ).fetchone()
        return None if found is None else bytes(found[0])

    def _truncate_wal(self) -> None:
        """Copy the zeroed pages home and empty the WAL, which still holds the old frames."""
        busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # another connection is reading: the old frames survive until next time
            log.warning("epoch_keys_checkpoint_incomplete")


def _seconds(when: datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError("epoch key times must be timezone-aware")
    return int(when.timestamp())


def _connect(path: Path) -> sqlite3.Connection:
    """Open the epoch key store (see stores/sqlitedb.py: 0600, WAL, synchronous=FULL, schema)."""
    return open_db(
        path,
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        secure_delete=True,
        what="the epoch key store",
        error=EpochKeyStoreError,
    )
