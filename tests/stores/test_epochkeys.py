"""Tests for proxy.stores.epochkeys: random per-epoch keys and their real erasure."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from proxy.core.pseudonym import derive, epoch_id
from proxy.stores.epochkeys import DB_FILE, EpochKeyStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EpochKeyStore]:
    keys = EpochKeyStore.open(tmp_path)
    yield keys
    keys.close()


def _db_bytes(data_dir: Path) -> bytes:
    """Everything SQLite has on disk for the key file: database, WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob(DB_FILE + "*")))


def test_key_created_on_first_use_and_stable(store: EpochKeyStore) -> None:
    """key_for creates a 32-byte key once and returns the same key afterwards."""
    key = store.key_for("daily:2026-11-29")
    assert len(key) == 32
    assert store.key_for("daily:2026-11-29") == key
    assert store.existing("daily:2026-11-29") == key


def test_keys_are_random_per_epoch(store: EpochKeyStore) -> None:
    """Different epochs get unrelated random keys."""
    assert store.key_for("daily:2026-11-29") != store.key_for("daily:2026-11-30")


def test_existing_never_creates(store: EpochKeyStore) -> None:
    """existing() answers None for an unknown epoch and does not create its key."""
    assert store.existing("weekly:2026-W48") is None
    assert store.existing("weekly:2026-W48") is None


def test_invalid_epoch_id_refused(store: EpochKeyStore) -> None:
    """key_for refuses ids that epoch_id could not have produced."""
    with pytest.raises(ValueError, match="not an epoch id"):
        store.key_for("daily:someday")


def test_keys_survive_reopen(tmp_path: Path) -> None:
    """A key read after closing and reopening the store is the key created before."""
    first = EpochKeyStore.open(tmp_path)
    key = first.key_for("monthly:2026-11")
    first.close()
    second = EpochKeyStore.open(tmp_path)
    assert second.existing("monthly:2026-11") == key
    assert second.key_for("monthly:2026-11") == key
    second.close()


def test_key_file_is_private(tmp_path: Path, store: EpochKeyStore) -> None:
    """The key file and its WAL are readable by the owner only."""
    store.key_for("daily:2026-11-29")
    for path in tmp_path.glob(DB_FILE + "*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_destroy_deletes_only_epochs_ended_before_cutoff(store: EpochKeyStore) -> None:
    """Keys of epochs that ended by the cutoff go; current, later and 'never' keys stay."""
    for epoch in ("daily:2026-08-30", "daily:2026-08-31", "daily:2026-09-01", "never:0"):
        store.key_for(epoch)
    cutoff = datetime(2026, 9, 1, tzinfo=UTC)  # the end of 2026-08-31
    assert store.destroy_older_than(cutoff) == 2
    assert store.existing("daily:2026-08-30") is None
    assert store.existing("daily:2026-08-31") is None
    assert store.existing("daily:2026-09-01") is not None
    assert store.existing("never:0") is not None
    assert store.destroy_older_than(cutoff) == 0


def test_destroy_never_touches_the_current_epoch(store: EpochKeyStore) -> None:
    """A cutoff inside the current epoch leaves that epoch's key in place."""
    current = epoch_id("monthly", NOW)
    key = store.key_for(current)
    assert store.destroy_older_than(NOW) == 0
    assert store.key_for(current) == key


@pytest.mark.parametrize("reopen", [False, True], ids=["key-in-wal", "key-in-database"])
def test_destroyed_key_bytes_gone_from_disk(tmp_path: Path, reopen: bool) -> None:
    """After destroy, the old key's bytes appear nowhere in the database, WAL or SHM files."""
    store = EpochKeyStore.open(tmp_path)
    old = store.key_for("daily:2026-08-30")
    kept = store.key_for("daily:2026-11-29")
    store.flush()  # key_for writes behind (#14): wait for the rows before scanning
    if reopen:  # closing checkpoints the WAL: the key then lives in the main database file
        store.close()
        store = EpochKeyStore.open(tmp_path)
    assert old in _db_bytes(tmp_path)  # the scan does see a key that is there
    assert store.destroy_older_than(NOW - timedelta(days=90)) == 1
    assert old not in _db_bytes(tmp_path)
    store.close()
    assert old not in _db_bytes(tmp_path)
    assert kept in _db_bytes(tmp_path)


def test_pseudonyms_cannot_be_recomputed_after_destroy(tmp_path: Path) -> None:
    """Once an epoch key is destroyed, nothing in the store can reproduce its pseudonyms."""
    store = EpochKeyStore.open(tmp_path)
    epoch = epoch_id("daily", datetime(2026, 8, 30, 10, tzinfo=UTC))
    pseudonym = derive(store.key_for(epoch), "jstor", "patron-key-1")
    assert derive(store.existing(epoch) or b"", "jstor", "patron-key-1") == pseudonym
    store.destroy_older_than(NOW - timedelta(days=90))
    assert store.existing(epoch) is None
    store.close()
    reopened = EpochKeyStore.open(tmp_path)
    assert reopened.existing(epoch) is None
    assert derive(reopened.key_for(epoch), "jstor", "patron-key-1") != pseudonym
    reopened.close()


def test_secure_delete_is_on(store: EpochKeyStore) -> None:
    """The connection overwrites deleted content (some SQLite builds default this off)."""
    assert store._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1


def _traced(store: EpochKeyStore) -> list[str]:
    """The SQL statements the store's connection runs from now on (first word each)."""
    seen: list[str] = []
    store._conn.set_trace_callback(lambda sql: seen.append(sql.split(None, 1)[0]))
    return seen


def test_key_for_writes_in_the_stores_own_thread(tmp_path: Path) -> None:
    """#14: a first-use key_for returns at once and the row is written by the writer thread,
    never by the caller (the event loop); the key is in the file by close."""
    store = EpochKeyStore.open(tmp_path)
    callers: list[int] = []
    store._conn.set_trace_callback(lambda _sql: callers.append(threading.get_ident()))
    key = store.key_for("daily:2026-11-29")
    store.close()
    assert callers and threading.get_ident() not in callers
    reopened = EpochKeyStore.open(tmp_path)
    assert reopened.existing("daily:2026-11-29") == key
    reopened.close()


def test_open_loads_every_key_so_key_for_runs_no_sql(tmp_path: Path) -> None:
    """#14: keys stored before are loaded at open, so key_for on them is a dict lookup."""
    first = EpochKeyStore.open(tmp_path)
    key = first.key_for("weekly:2026-W48")
    first.close()
    store = EpochKeyStore.open(tmp_path)
    seen = _traced(store)
    assert store.key_for("weekly:2026-W48") == key
    assert seen == []
    store.close()


def test_prepare_writes_the_current_and_next_epoch_of_kinds_in_use(store: EpochKeyStore) -> None:
    """#14: prepare makes the current and next keys of each kind already used (not 'never',
    not unused kinds), so the relay's key_for finds them in memory at the epoch change."""
    store.key_for("daily:2026-11-01")
    store.key_for("never:0")
    assert store.prepare(NOW) == 2
    seen = _traced(store)
    store.key_for(epoch_id("daily", NOW))
    store.key_for(epoch_id("daily", NOW + timedelta(days=1)))
    assert seen == []
    assert store.existing(epoch_id("weekly", NOW)) is None
    assert store.prepare(NOW) == 0


def test_destroy_also_erases_keys_not_yet_written(store: EpochKeyStore) -> None:
    """#14: a key made just before a purge is written first, so the purge erases it too."""
    store.key_for("daily:2026-08-30")
    assert store.destroy_older_than(datetime(2026, 9, 1, tzinfo=UTC)) == 1
    assert store.existing("daily:2026-08-30") is None
