"""Patron sessions: what relaying needs to know about a logged-in browser, and nothing more.

Contract: ``create`` mints a token of 256 random bits (``secrets.token_urlsafe(32)``) for the
cookie and returns it once; the store keeps only ``key = SHA-256(token)``, so neither its
memory nor its file holds a cookie value (a leaked file gives no usable session). ``get``
answers None for an unknown token, and for a session idle for ``idle`` or older than
``lifetime`` (deleting it); otherwise it records the visit in ``last_seen`` (to the second:
``TOUCH_GRANULARITY``). Times are timezone-aware datetimes from the app's clock. A session holds
the member library, ptype, the patron key (a keyed card hash; None for anonymous on-site
sessions) and a random per-session ``pseudonym_key`` for ``rotate: session`` pseudonyms —
never a barcode or a name (DESIGN P3). Every deletion (logout, expiry seen by ``get``, purge,
``delete_by_patron``) calls the delete listeners with ``session.key``, so the relay can drop
that session's vendor cookie jar (DESIGN P5).

One card holds at most ``max_per_patron`` live sessions (``create``'s argument, from
``sessions.max_per_card``): creating one more ends the card's oldest (pentest R11: 20,000
logins with one card grew memory and the file without bound). The store knows the card only
by its patron key (a keyed hash), and indexes sessions by it.

A deletion that cannot be written (disk full, read-only file: pentest R16) is not an error
for the caller: the session has already left the dict, so ``get`` refuses its token at once,
and its key waits in ``pending_deletes`` until ``flush`` (the flusher, every few seconds, and
``close``) writes it. Only a process that dies before any retry succeeds can bring it back.

Backends: ``MemorySessionStore`` (unit tests; gone on restart) and ``SqliteSessionStore`` (the
embedded default; one file, WAL, ``synchronous=FULL``, ``secure_delete``; survives restarts).
The SQLite store keeps every live session in the same dict as the memory store, so ``get`` —
on every proxied request — is a dict lookup and no I/O (about 2-4 µs here); the file is
written through ``asyncio.to_thread`` because a FULL-synchronous commit waits for an fsync
(milliseconds that must not stall the event loop). ``last_seen`` is persisted lazily:
``flush()`` writes the touched sessions in one transaction, and the app calls it every
``FLUSH_INTERVAL_S`` seconds and on shutdown. After a crash a session's stored ``last_seen``
can be up to that long out of date, so it may time out that much early — never late. The
purge also checkpoints the WAL so that deleted sessions do not linger there. One process per
file: the dict is the truth while the process runs. The app spawns ``run_purger`` and
``run_flusher`` and cancels them before ``close()`` (which flushes).

Not here: the cookie and login flow (web/), vendor cookie jars (the relay), pseudonym
derivation (core/pseudonym.py), Redis for several instances (a later issue).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from proxy.logconfig import get_logger
from proxy.stores.sqlitedb import StoreError, open_db

Clock = Callable[[], datetime]
DeleteListener = Callable[[str], object]  # return value ignored

TOKEN_BYTES: Final = 32  # 256 bits of cookie token (>= 128 required)
PSEUDONYM_KEY_BYTES: Final = 32
MAX_TOKEN_CHARS: Final = 128  # token_urlsafe(32) is 43; anything much longer is not ours
FLUSH_INTERVAL_S: Final = 5.0  # how stale a stored last_seen may get (see the module doc)
PURGE_INTERVAL_S: Final = 60.0
# A page view fires dozens of requests in a second; recording each would allocate a new
# Session per request for a precision that the idle timeout (minutes) does not need.
TOUCH_GRANULARITY: Final = timedelta(seconds=1)
DB_FILE: Final = "sessions.sqlite3"

log = get_logger("sessions")


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in browser, as the relay needs it."""

    key: str  # SHA-256 hex of the token: the store never holds the cookie value itself
    library: str
    ptype: str | None
    patron_key: str | None  # None for anonymous on-site (auto-login) sessions
    pseudonym_key: bytes  # random per-session secret for rotate=session pseudonyms
    created_at: datetime
    last_seen: datetime
    expires_at: datetime  # absolute lifetime end

    def seen(self, now: datetime) -> Session:
        """``dataclasses.replace(self, last_seen=now)`` without its introspection (2x faster)."""
        return Session(
            key=self.key,
            library=self.library,
            ptype=self.ptype,
            patron_key=self.patron_key,
            pseudonym_key=self.pseudonym_key,
            created_at=self.created_at,
            last_seen=now,
            expires_at=self.expires_at,
        )

    def expired(self, now: datetime, idle: timedelta) -> bool:
        """Whether the session has been idle too long or outlived its lifetime at ``now``."""
        return now >= self.expires_at or now >= self.last_seen + idle


class SessionStore(Protocol):
    """What the web layer uses; both backends (and a later Redis one) implement it."""

    async def create(
        self,
        *,
        library: str,
        ptype: str | None,
        patron_key: str | None,
        now: datetime,
        max_per_patron: int | None = None,
    ) -> tuple[str, Session]: ...
    async def get(self, token: str, now: datetime) -> Session | None: ...
    async def delete(self, token: str) -> bool: ...
    async def delete_by_patron(self, patron_key: str) -> int: ...
    async def purge_expired(self, now: datetime) -> int: ...
    async def count_active(self, now: datetime) -> int: ...
    async def live_keys(self, now: datetime) -> list[str]: ...
    async def flush(self) -> int: ...
    async def check(self) -> None: ...
    def add_delete_listener(self, fn: DeleteListener) -> None: ...
    async def close(self) -> None: ...


def token_key(token: str) -> str:
    """The store key of a cookie token: SHA-256 hex (a 256-bit token needs no salt or pepper)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _key_of(token: str) -> str | None:
    return token_key(token) if 0 < len(token) <= MAX_TOKEN_CHARS else None


class MemorySessionStore:
    """Sessions in a dict: the unit-test backend, and the cache under ``SqliteSessionStore``."""

    def __init__(self, idle: timedelta, lifetime: timedelta) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self._live: dict[str, Session] = {}
        self._by_patron: dict[str, dict[str, None]] = {}  # patron key -> keys, oldest first
        self.pending_deletes: set[str] = set()  # deleted, not yet written (SQLite store only)
        self._listeners: list[DeleteListener] = []

    async def create(
        self,
        *,
        library: str,
        ptype: str | None,
        patron_key: str | None,
        now: datetime,
        max_per_patron: int | None = None,
    ) -> tuple[str, Session]:
        """Start a session; returns the raw token (for the cookie, shown once) and the session.

        With ``max_per_patron``, the patron's oldest sessions end so that at most that many live.
        """
        token, key = _fresh_token()
        while key in self._live:  # 2^-256: never, but "never reused" should not rest on luck
            token, key = _fresh_token()
        session = Session(
            key=key,
            library=library,
            ptype=ptype,
            patron_key=patron_key,
            pseudonym_key=secrets.token_bytes(PSEUDONYM_KEY_BYTES),
            created_at=now,
            last_seen=now,
            expires_at=now + self.lifetime,
        )
        await self._saved(session)
        self._live[key] = session
        self._index(session)
        if patron_key is not None and max_per_patron is not None:
            await self._remove(list(self._by_patron[patron_key])[:-max_per_patron])
        return token, session

    async def get(self, token: str, now: datetime) -> Session | None:
        """The live session of a token, its visit recorded; None (and deleted) once expired."""
        key = _key_of(token)
        session = self._live.get(key) if key else None
        if session is None:
            return None
        if session.expired(now, self.idle):
            await self._remove([session.key])
            return None
        if now - session.last_seen >= TOUCH_GRANULARITY:
            session = self._live[session.key] = session.seen(now)
            self._touched(session.key)
        return session

    async def delete(self, token: str) -> bool:
        """End a session (logout); False when there was none."""
        key = _key_of(token)
        return key is not None and await self._remove([key]) == 1

    async def delete_by_patron(self, patron_key: str) -> int:
        """End every session of one patron (e.g. a card just blocked); returns how many."""
        return await self._remove(list(self._by_patron.get(patron_key, ())))

    async def purge_expired(self, now: datetime) -> int:
        """Delete every session expired at ``now``; returns how many."""
        return await self._remove([k for k, s in self._live.items() if s.expired(now, self.idle)])

    async def count_active(self, now: datetime) -> int:
        """How many sessions are live at ``now`` (for the admin status page)."""
        return sum(1 for s in self._live.values() if not s.expired(now, self.idle))

    async def live_keys(self, now: datetime) -> list[str]:
        """Keys (token hashes) of the live sessions, for staff actions by pseudonymous hash."""
        return [k for k, s in self._live.items() if not s.expired(now, self.idle)]

    async def count_by_library(self, now: datetime) -> dict[str, int]:
        """Live sessions per member library (the admin console's operations page, #20)."""
        counts: dict[str, int] = {}
        for s in self._live.values():
            if not s.expired(now, self.idle):
                counts[s.library] = counts.get(s.library, 0) + 1
        return counts

    async def delete_by_library(self, library: str) -> int:
        """End every session of one member library (staff: "end all sessions of X")."""
        return await self._remove([k for k, s in self._live.items() if s.library == library])

    async def delete_keys(self, keys: list[str]) -> int:
        """End the sessions with these store keys (staff: end one session by its hash)."""
        return await self._remove([k for k in keys if k in self._live])

    async def flush(self) -> int:
        """Nothing to persist in memory."""
        return 0

    async def check(self) -> None:
        """Nothing can break in memory (``/healthz``)."""

    def add_delete_listener(self, fn: DeleteListener) -> None:
        """Call ``fn(session.key)`` after each session is deleted, whatever the reason."""
        self._listeners.append(fn)

    async def close(self) -> None:
        """Forget everything (a shutdown, not a deletion: listeners are not called)."""
        self._live.clear()
        self._by_patron.clear()

    def _index(self, session: Session) -> None:
        if session.patron_key is not None:
            self._by_patron.setdefault(session.patron_key, {})[session.key] = None

    def _unindex(self, session: Session) -> None:
        keys = self._by_patron.get(session.patron_key) if session.patron_key else None
        if keys is not None:
            keys.pop(session.key, None)
            if not keys:
                del self._by_patron[session.patron_key]  # type: ignore[arg-type]

    async def _remove(self, keys: Iterable[str]) -> int:
        gone = []
        for key in keys:
            session = self._live.pop(key, None)
            if session is not None:
                self._unindex(session)
                gone.append(key)
        try:
            if gone:
                await self._deleted(gone)
        finally:
            for key in gone:
                self._notify(key)
        return len(gone)

    def _notify(self, key: str) -> None:
        for fn in self._listeners:
            try:
                fn(key)
            except Exception as exc:  # one broken listener must not keep others from cleaning up
                log.error("session_listener_failed", error=type(exc).__name__)

    # Persistence hooks: no-ops here, overridden by the SQLite store.
    async def _saved(self, session: Session) -> None:
        """Called before a new session becomes visible."""

    async def _deleted(self, keys: Sequence[str]) -> None:
        """Called after sessions left the dict (they are already invisible)."""

    def _touched(self, key: str) -> None:
        """Called when a session's ``last_seen`` moved (must not do I/O: ``get`` is hot)."""


def _fresh_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_key(token)


# --- SQLite ----------------------------------------------------------------------------

SCHEMA_VERSION: Final = 1
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sessions (
    key           TEXT PRIMARY KEY,  -- SHA-256 hex of the token, never the token
    library       TEXT NOT NULL,
    ptype         TEXT,
    patron_key    TEXT,
    pseudonym_key BLOB NOT NULL,
    created_at    INTEGER NOT NULL,  -- microseconds since 1970-01-01 UTC (exact round trip)
    last_seen     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
"""
INSERT: Final = "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
DELETE: Final = "DELETE FROM sessions WHERE key = ?"
UPDATE_SEEN: Final = "UPDATE sessions SET last_seen = ? WHERE key = ?"
SELECT_ALL: Final = "SELECT * FROM sessions"
PROBE: Final = "SELECT key FROM sessions LIMIT 1"  # reads the schema and one page
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class SessionStoreError(StoreError):
    """The session file cannot be used (newer schema, corrupt, unwritable)."""


class SqliteSessionStore(MemorySessionStore):
    """The memory store, written through to one SQLite file so sessions survive a restart."""

    def __init__(self, conn: sqlite3.Connection, idle: timedelta, lifetime: timedelta) -> None:
        super().__init__(idle, lifetime)
        self._conn = conn
        self._lock = threading.Lock()  # the connection is used from worker threads
        self._dirty: set[str] = set()  # keys whose last_seen is newer in memory than on disk

    @classmethod
    async def open(cls, path: Path, idle: timedelta, lifetime: timedelta) -> SqliteSessionStore:
        """Open (creating if needed) the session file and load the sessions it holds."""
        conn = await asyncio.to_thread(_connect, path)
        store = cls(conn, idle, lifetime)
        rows = await asyncio.to_thread(store._read_all)
        for row in sorted(rows, key=lambda session: session.created_at):
            store._live[row.key] = row
            store._index(row)
        return store

    async def flush(self) -> int:
        """Write deletions that failed before, then the ``last_seen`` of sessions touched since
        the last flush; returns how many sessions were touched."""
        if self.pending_deletes:
            pending = sorted(self.pending_deletes)
            await asyncio.to_thread(self._write, DELETE, [(k,) for k in pending])
            self.pending_deletes.difference_update(pending)
            log.info("session_deletes_written", count=len(pending))
        keys, self._dirty = self._dirty, set()
        rows = [(to_micros(self._live[k].last_seen), k) for k in keys if k in self._live]
        try:
            await asyncio.to_thread(self._write, UPDATE_SEEN, rows)
        except BaseException:
            self._dirty |= keys  # try again next time
            raise
        return len(rows)

    async def purge_expired(self, now: datetime) -> int:
        """Delete expired sessions, then fold the WAL so their bytes do not linger there."""
        purged = await super().purge_expired(now)
        if purged:
            await asyncio.to_thread(self._checkpoint)
        return purged

    async def close(self) -> None:
        """Flush ``last_seen`` and close the file (SQLite checkpoints and removes the WAL)."""
        try:
            await self.flush()
        finally:
            await asyncio.to_thread(self._close)
            await super().close()

    async def _saved(self, session: Session) -> None:
        await asyncio.to_thread(self._write, INSERT, [_row(session)])

    async def check(self) -> None:
        """Raise ``sqlite3.Error`` when the file can no longer be read (``/healthz``)."""
        await asyncio.to_thread(self._probe)

    async def _deleted(self, keys: Sequence[str]) -> None:
        self._dirty.difference_update(keys)
        try:
            await asyncio.to_thread(self._write, DELETE, [(k,) for k in keys])
        except sqlite3.Error as exc:  # R16: still gone from memory; the flusher retries
            self.pending_deletes.update(keys)
            log.error("session_delete_deferred", count=len(keys), error=type(exc).__name__)

    def _touched(self, key: str) -> None:
        self._dirty.add(key)

    # --- run in worker threads, one at a time ----------------------------------------

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read_all(self) -> list[Session]:
        with self._lock:
            return [_session(row) for row in self._conn.execute(SELECT_ALL)]

    def _checkpoint(self) -> None:
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _probe(self) -> None:
        with self._lock:
            self._conn.execute(PROBE).fetchall()

    def _close(self) -> None:
        with self._lock:
            self._conn.close()


def _row(s: Session) -> tuple[object, ...]:
    return (
        s.key,
        s.library,
        s.ptype,
        s.patron_key,
        s.pseudonym_key,
        to_micros(s.created_at),
        to_micros(s.last_seen),
        to_micros(s.expires_at),
    )


def _session(row: tuple[Any, ...]) -> Session:
    key, library, ptype, patron_key, pseudonym_key, created, seen, expires = row
    return Session(
        key=str(key),
        library=sys.intern(str(library)),  # a few codes shared by thousands of sessions
        ptype=None if ptype is None else sys.intern(str(ptype)),
        patron_key=None if patron_key is None else str(patron_key),
        pseudonym_key=bytes(pseudonym_key),
        created_at=from_micros(created),
        last_seen=from_micros(seen),
        expires_at=from_micros(expires),
    )


def to_micros(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("session times must be timezone-aware")
    return (when - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _connect(path: Path) -> sqlite3.Connection:
    """Open the session store (see stores/sqlitedb.py: 0600, WAL, synchronous=FULL, schema)."""
    return open_db(
        path,
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        secure_delete=True,
        what="the session store",
        error=SessionStoreError,
    )


# --- background loops (the app spawns them and cancels them on shutdown) -----------------


async def run_purger(
    store: SessionStore, clock: Clock, interval_s: float = PURGE_INTERVAL_S
) -> None:
    """Purge expired sessions now and every ``interval_s`` seconds until cancelled."""

    async def step() -> None:
        purged = await store.purge_expired(clock())
        if purged:
            log.info("sessions_purged", count=purged)

    await _every(interval_s, step, failed="sessions_purge_failed")


async def run_flusher(store: SessionStore, interval_s: float = FLUSH_INTERVAL_S) -> None:
    """Persist ``last_seen`` every ``interval_s`` seconds until cancelled (``close`` flushes)."""

    async def step() -> None:
        await store.flush()

    await _every(interval_s, step, failed="sessions_flush_failed")


async def _every(interval_s: float, step: Callable[[], Awaitable[None]], *, failed: str) -> None:
    while True:
        try:
            await step()
        except Exception as exc:  # keep going: the next round may succeed (disk full, locked)
            log.error(failed, error=type(exc).__name__)
        await asyncio.sleep(interval_s)
