"""Tests for proxy.stores.sessions: both backends, expiry with an injected clock, restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from proxy.stores.sessions import (
    DB_FILE,
    MemorySessionStore,
    SqliteSessionStore,
    run_flusher,
    run_purger,
)

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=8)
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def at(minutes: float) -> datetime:
    """T0 plus some minutes: the injected clock of these tests."""
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(params=["memory", "sqlite"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[MemorySessionStore]:
    """Each behavioural test runs against both backends."""
    if request.param == "memory":
        sessions = MemorySessionStore(IDLE, LIFETIME)
    else:
        sessions = await SqliteSessionStore.open(tmp_path / DB_FILE, IDLE, LIFETIME)
    yield sessions
    await sessions.close()


async def _open(tmp_path: Path) -> SqliteSessionStore:
    return await SqliteSessionStore.open(tmp_path / DB_FILE, IDLE, LIFETIME)


async def _login(store: MemorySessionStore, patron: str | None = "p1", now: datetime = T0) -> str:
    token, _ = await store.create(library="main", ptype="adult", patron_key=patron, now=now)
    return token


def _disk(tmp_path: Path) -> bytes:
    """Every byte SQLite keeps for the session file: database, WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob(DB_FILE + "*")))


# --- both backends ---------------------------------------------------------------------


async def test_create_then_get(store: MemorySessionStore) -> None:
    """A created session is returned by get with what relaying needs and its lifetime set."""
    token, created = await store.create(library="main", ptype="adult", patron_key="p1", now=T0)
    got = await store.get(token, at(1))
    assert got is not None
    assert (got.key, got.library, got.ptype, got.patron_key) == (created.key, "main", "adult", "p1")
    assert got.pseudonym_key == created.pseudonym_key
    assert (got.created_at, got.last_seen, got.expires_at) == (T0, at(1), T0 + LIFETIME)


async def test_token_is_random_and_key_is_its_hash(store: MemorySessionStore) -> None:
    """Tokens carry 256 random bits, differ every time, and the key is SHA-256 of the token."""
    tokens = set()
    for _ in range(20):
        token, session = await store.create(library="main", ptype=None, patron_key=None, now=T0)
        assert len(token) >= 43
        assert session.key == hashlib.sha256(token.encode()).hexdigest()
        tokens.add(token)
    assert len(tokens) == 20


async def test_pseudonym_keys_are_random_per_session(store: MemorySessionStore) -> None:
    """Two sessions of the same patron get unrelated 32-byte pseudonym keys."""
    _, first = await store.create(library="main", ptype="adult", patron_key="p1", now=T0)
    _, second = await store.create(library="main", ptype="adult", patron_key="p1", now=T0)
    assert len(first.pseudonym_key) == 32
    assert first.pseudonym_key != second.pseudonym_key


@pytest.mark.parametrize("token", ["", "nope", "x" * 129, "\udcff", "a" * 10_000])
async def test_unknown_or_malformed_token(store: MemorySessionStore, token: str) -> None:
    """Unknown, empty, oversized and non-UTF-8 tokens simply find no session."""
    await _login(store)
    assert await store.get(token, T0) is None
    assert await store.delete(token) is False


async def test_anonymous_session(store: MemorySessionStore) -> None:
    """An on-site session has a library but no patron key and no ptype."""
    token, _ = await store.create(library="branch", ptype=None, patron_key=None, now=T0)
    got = await store.get(token, T0)
    assert got is not None
    assert (got.library, got.ptype, got.patron_key) == ("branch", None, None)


async def test_visits_within_a_second_are_not_rerecorded(store: MemorySessionStore) -> None:
    """A visit less than a second after the recorded one leaves last_seen alone (hot path)."""
    token = await _login(store)
    got = await store.get(token, T0 + timedelta(milliseconds=999))
    assert got is not None
    assert got.last_seen == T0
    got = await store.get(token, T0 + timedelta(seconds=1))
    assert got is not None
    assert got.last_seen == T0 + timedelta(seconds=1)


async def test_seen_copies_every_field_but_last_seen() -> None:
    """Session.seen equals dataclasses.replace(last_seen=...), so no field is ever dropped."""
    store = MemorySessionStore(IDLE, LIFETIME)
    _, session = await store.create(library="m", ptype="a", patron_key="p", now=T0)
    assert session.seen(at(3)) == dataclasses.replace(session, last_seen=at(3))


async def test_idle_timeout(store: MemorySessionStore) -> None:
    """A session unused for the idle period is gone, and stays gone."""
    token = await _login(store)
    assert await store.get(token, T0 + IDLE - timedelta(microseconds=1)) is not None
    token = await _login(store)
    assert await store.get(token, T0 + IDLE) is None
    assert await store.get(token, T0) is None  # deleted, not just hidden
    assert await store.delete(token) is False


async def test_activity_keeps_a_session_alive(store: MemorySessionStore) -> None:
    """Each visit restarts the idle period."""
    token = await _login(store)
    for minutes in range(20, 200, 20):
        assert await store.get(token, at(minutes)) is not None


async def test_absolute_lifetime(store: MemorySessionStore) -> None:
    """However active, a session ends at its absolute lifetime."""
    token = await _login(store)
    minutes = 0
    while at(minutes) < T0 + LIFETIME:
        assert await store.get(token, at(minutes)) is not None
        minutes += 20
    assert await store.get(token, T0 + LIFETIME) is None


async def test_delete(store: MemorySessionStore) -> None:
    """Logout deletes the session once; a second delete finds nothing."""
    token = await _login(store)
    assert await store.delete(token) is True
    assert await store.get(token, T0) is None
    assert await store.delete(token) is False


async def test_delete_by_patron(store: MemorySessionStore) -> None:
    """All sessions of one patron end; other patrons' and anonymous sessions stay."""
    mine = [await _login(store, "p1"), await _login(store, "p1")]
    theirs, anonymous = await _login(store, "p2"), await _login(store, None)
    assert await store.delete_by_patron("p1") == 2
    assert [await store.get(t, T0) for t in mine] == [None, None]
    assert await store.get(theirs, T0) is not None
    assert await store.get(anonymous, T0) is not None


async def test_purge_and_count_active(store: MemorySessionStore) -> None:
    """purge_expired deletes idle and over-age sessions; count_active counts the rest."""
    idle = await _login(store, now=T0)
    old = await _login(store, now=T0 - LIFETIME + MINUTE)  # its lifetime ends at T0 + 1 min
    fresh = await _login(store, now=at(10))
    for minutes in range(-int(LIFETIME / MINUTE) + 1, 1, 20):  # active all along
        assert await store.get(old, at(minutes)) is not None
    assert await store.count_active(at(5)) == 2
    assert await store.purge_expired(at(35)) == 2
    assert await store.count_active(at(35)) == 1
    assert await store.get(fresh, at(35)) is not None
    assert await store.get(idle, at(1)) is None
    assert await store.purge_expired(at(35)) == 0


async def test_delete_listener_sees_every_deletion(store: MemorySessionStore) -> None:
    """Listeners get session.key for logout, expiry seen by get, delete_by_patron and purge."""
    deleted: list[str] = []
    store.add_delete_listener(deleted.append)
    reasons = ("logout", "expires", "blocked", "purged")
    made = {r: await store.create(library="m", ptype=None, patron_key=r, now=T0) for r in reasons}
    await store.delete(made["logout"][0])
    await store.get(made["expires"][0], T0 + IDLE)
    await store.delete_by_patron("blocked")
    await store.purge_expired(T0 + IDLE)
    assert deleted == [made[r][1].key for r in reasons]


async def test_failing_listener_does_not_stop_others(store: MemorySessionStore) -> None:
    """A listener that raises is logged by type only, and the next listener still runs."""

    def broken(key: str) -> None:
        raise RuntimeError(key)

    seen: list[str] = []
    store.add_delete_listener(broken)
    store.add_delete_listener(seen.append)
    token, session = await store.create(library="m", ptype=None, patron_key=None, now=T0)
    with capture_logs() as logs:
        assert await store.delete(token) is True
    assert seen == [session.key]
    assert {"event": "session_listener_failed", "error": "RuntimeError"}.items() <= logs[0].items()
    assert session.key not in str(logs)


# --- SQLite only -----------------------------------------------------------------------


async def test_sqlite_survives_restart(tmp_path: Path) -> None:
    """After close and reopen, a session is found with the same fields and its last visit."""
    first = await _open(tmp_path)
    token, created = await first.create(library="main", ptype="adult", patron_key="p1", now=T0)
    await first.get(token, at(7))
    await first.close()
    second = await _open(tmp_path)
    got = await second.get(token, at(8))
    assert got is not None
    assert (got.key, got.pseudonym_key, got.expires_at) == (
        created.key,
        created.pseudonym_key,
        created.expires_at,
    )
    assert await second.get(token, at(8) + IDLE - MINUTE) is not None  # last_seen was kept
    await second.close()


async def test_sqlite_unflushed_visit_can_only_shorten_idle(tmp_path: Path) -> None:
    """Without a flush (a crash), a restart sees the previous last_seen: the session ends early."""
    first = await _open(tmp_path)
    token = await _login(first)
    await first.get(token, at(20))  # in memory only until flush
    crashed = await _open(tmp_path)  # a second process start while the first never flushed
    assert await crashed.get(token, at(30)) is None  # idle since T0 as far as the file knows
    assert await first.get(token, at(30)) is not None  # the first process knew of the visit
    await crashed.close()
    await first.close()


async def test_sqlite_flush_persists_last_seen(tmp_path: Path) -> None:
    """flush writes touched sessions' last_seen once, and then has nothing left to write."""
    first = await _open(tmp_path)
    tokens = [await _login(first) for _ in range(3)]
    for token in tokens[:2]:
        await first.get(token, at(20))
    assert await first.flush() == 2
    assert await first.flush() == 0
    restarted = await _open(tmp_path)
    assert await restarted.get(tokens[0], at(45)) is not None
    assert await restarted.get(tokens[2], at(45)) is None
    await restarted.close()
    await first.close()


async def test_sqlite_deletions_survive_restart(tmp_path: Path) -> None:
    """A logged-out or purged session does not come back after a restart."""
    first = await _open(tmp_path)
    logged_out, purged = await _login(first), await _login(first, now=T0 - IDLE)
    await first.delete(logged_out)
    assert await first.purge_expired(T0) == 1
    await first.close()
    second = await _open(tmp_path)
    assert await second.count_active(T0 - IDLE) == 0
    assert await second.get(logged_out, T0) is None
    assert await second.get(purged, T0 - IDLE) is None
    await second.close()


async def test_sqlite_never_stores_the_token(tmp_path: Path) -> None:
    """No token's bytes reach the database, its WAL or SHM; only their SHA-256 keys do."""
    store = await _open(tmp_path)
    created = [await store.create(library="m", ptype="a", patron_key="p", now=T0) for _ in range(5)]
    for token, _ in created:
        await store.get(token, at(1))
    await store.flush()
    on_disk = _disk(tmp_path)
    assert created[0][1].key.encode() in on_disk  # the scan sees what is there
    for token, _ in created:
        assert token.encode() not in on_disk
    await store.close()
    on_disk = _disk(tmp_path)
    assert not any(token.encode() in on_disk for token, _ in created)


async def test_sqlite_purge_leaves_no_pseudonym_key_on_disk(tmp_path: Path) -> None:
    """After a purge, the expired sessions' pseudonym keys are gone from every file."""
    store = await _open(tmp_path)
    _, gone = await store.create(library="m", ptype=None, patron_key="p", now=T0)
    _, kept = await store.create(library="m", ptype=None, patron_key="q", now=at(40))
    await store.close()  # the rows now live in the main database file
    store = await _open(tmp_path)
    assert await store.purge_expired(at(45)) == 1
    on_disk = _disk(tmp_path)
    assert gone.pseudonym_key not in on_disk
    assert kept.pseudonym_key in on_disk
    await store.close()


async def test_sqlite_file_is_private(tmp_path: Path) -> None:
    """The session file and its WAL are readable by the owner only."""
    store = await _open(tmp_path)
    await _login(store)
    for path in tmp_path.glob(DB_FILE + "*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    await store.close()


# --- background loops ------------------------------------------------------------------


async def test_run_purger_purges_until_cancelled() -> None:
    """The purger deletes expired sessions on its first round and keeps running."""
    store = MemorySessionStore(IDLE, LIFETIME)
    await _login(store)
    with capture_logs() as logs, pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await run_purger(store, lambda: at(60), interval_s=0.01)
    assert await store.count_active(T0) == 0
    assert {"event": "sessions_purged", "count": 1}.items() <= logs[0].items()


class _Stop(BaseException):
    """Ends a background loop from inside a test double (the loops only catch Exception)."""


async def test_run_purger_survives_a_failed_round() -> None:
    """A round that raises is logged by type and the next round still runs."""

    class Flaky(MemorySessionStore):
        rounds = 0

        async def purge_expired(self, now: datetime) -> int:
            self.rounds += 1
            if self.rounds == 1:
                raise OSError("disk full")
            await super().purge_expired(now)
            raise _Stop

    store = Flaky(IDLE, LIFETIME)
    await _login(store)
    with capture_logs() as logs, pytest.raises(_Stop):
        await run_purger(store, lambda: at(60), interval_s=0.001)
    assert await store.count_active(T0) == 0
    assert {"event": "sessions_purge_failed", "error": "OSError"}.items() <= logs[0].items()


async def test_run_flusher_persists_visits(tmp_path: Path) -> None:
    """The flusher writes last_seen to disk without anyone calling flush."""
    store = await _open(tmp_path)
    token = await _login(store)
    await store.get(token, at(20))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await run_flusher(store, interval_s=0.01)
    other = await _open(tmp_path)
    assert await other.get(token, at(45)) is not None
    await other.close()
    await store.close()
