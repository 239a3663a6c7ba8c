"""Tests for the patron registry, its pepper file and keyed hashes (real SQLite in tmp_path)."""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import stat
import threading
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.keyedhash import KeyedHasher, keyed_hash
from proxy.secretfiles import SecretFileError, read_or_create_secret
from proxy.stores.patrons import (
    DB_FILE,
    PEPPER_FILE,
    PatronRecord,
    PatronRegistry,
    RegistryError,
    UnknownCard,
)

CARD, CARD_2 = "21234000000018", "21234000000026"
WEST_CARD = "29876000000013"
EXPIRES = date(2031, 1, 31)


def fill(registry: PatronRegistry) -> None:
    """Two MAIN cards with the same PIN and one WEST card that logs in with a last name."""
    rows = [
        registry.hashed_row(
            CARD, "1234", "pin", library="MAIN", ptype="adult", expires=EXPIRES, status="ok"
        ),
        registry.hashed_row(
            CARD_2, "1234", "pin", library="MAIN", ptype="staff", expires=EXPIRES, status="fines"
        ),
        registry.hashed_row(
            WEST_CARD,
            "O'Brien-Smith",
            "last_name",
            library="WEST",
            ptype="student",
            expires=EXPIRES,
            status="ok",
        ),
    ]
    with registry.bulk_write(replace=False) as writer:
        writer.write(rows)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data_dir that does not exist yet."""
    return tmp_path / "data"


@pytest.fixture
def registry(data_dir: Path) -> PatronRegistry:
    """A registry with three cards."""
    reg = PatronRegistry.open(data_dir)
    fill(reg)
    return reg


# --- keyed hashes ---------------------------------------------------------------------


def test_keyed_hash_known_answer() -> None:
    """keyed_hash is HMAC-SHA256 over the domain, the purpose's length, the purpose and value."""
    message = b"clamshell-keyed-v1" + b"\x00\x00\x00\x04" + b"card" + b"21234000000018"
    expected = hmac.new(b"k" * 32, message, hashlib.sha256).hexdigest()
    assert keyed_hash(b"k" * 32, "card", CARD) == expected


def test_purposes_separate_domains() -> None:
    """The same value under different purposes (or shifted boundaries) hashes differently."""
    pepper = b"p" * 32
    assert keyed_hash(pepper, "card", "1234") != keyed_hash(pepper, "secret:pin", "1234")
    assert keyed_hash(pepper, "card", "1") != keyed_hash(pepper, "card1", "")


@given(pepper=st.binary(max_size=100), purpose=st.text(max_size=20), value=st.text(max_size=40))
def test_keyed_hasher_equals_keyed_hash(pepper: bytes, purpose: str, value: str) -> None:
    """The fast bulk hasher gives exactly the stdlib-HMAC result, for any key length."""
    assert KeyedHasher(pepper, purpose)(value) == keyed_hash(pepper, purpose, value)


# --- files and modes --------------------------------------------------------------------


def mode(path: Path) -> int:
    """The permission bits of a path."""
    return stat.S_IMODE(path.stat().st_mode)


def test_open_creates_private_dir_pepper_and_database(
    registry: PatronRegistry, data_dir: Path
) -> None:
    """data_dir is 0700; the pepper and every SQLite file (incl. -wal/-shm) are 0600."""
    assert mode(data_dir) == 0o700
    pepper = data_dir / PEPPER_FILE
    assert mode(pepper) == 0o600 and pepper.stat().st_size == 32
    files = sorted(p.name for p in data_dir.iterdir())
    assert files == [DB_FILE, f"{DB_FILE}-shm", f"{DB_FILE}-wal", PEPPER_FILE]
    assert all(mode(data_dir / name) == 0o600 for name in files)


def test_database_uses_wal_and_full_sync(registry: PatronRegistry, data_dir: Path) -> None:
    """The registry is in WAL mode (a persistent setting of the file)."""
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_keeps_the_pepper(registry: PatronRegistry, data_dir: Path) -> None:
    """A reopened registry still recognises its cards (same pepper, same hashes)."""
    registry.close()
    with PatronRegistry.open(data_dir) as again:
        assert again.count() == 3
        assert again.authenticate(CARD, "1234", "pin")[1]


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o660, 0o644])
def test_group_or_world_readable_pepper_is_refused(data_dir: Path, loose: int) -> None:
    """A pepper that others could read is refused with a message that says how to fix it."""
    read_or_create_secret(data_dir / PEPPER_FILE)
    os.chmod(data_dir / PEPPER_FILE, loose)
    with pytest.raises(SecretFileError, match="chmod 600"):
        PatronRegistry.open(data_dir)


def test_wrong_sized_or_symlinked_pepper_is_refused(data_dir: Path, tmp_path: Path) -> None:
    """A truncated pepper or a symlink is refused, never silently replaced."""
    data_dir.mkdir(mode=0o700)
    pepper = data_dir / PEPPER_FILE
    fd = os.open(pepper, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(SecretFileError, match="has 5 bytes, expected 32"):
        read_or_create_secret(pepper)
    pepper.unlink()
    pepper.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(SecretFileError, match="symlink"):
        read_or_create_secret(pepper)


def test_racing_creators_share_one_secret(data_dir: Path) -> None:
    """Several threads creating the pepper at once all get the same bytes, no temp file left."""
    results: list[bytes] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        results.append(read_or_create_secret(data_dir / PEPPER_FILE))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert [p.name for p in data_dir.iterdir()] == [PEPPER_FILE]


def test_newer_schema_is_refused(registry: PatronRegistry, data_dir: Path) -> None:
    """A registry written by a newer clamshell is not silently misread."""
    registry.close()
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RegistryError, match="schema version 99"):
        PatronRegistry.open(data_dir)


# --- reading ---------------------------------------------------------------------------


def test_lookup_normalizes_the_card(registry: PatronRegistry) -> None:
    """A card typed with spaces and dashes finds the same record."""
    record = registry.lookup(" 2123-4000 0000 18 ")
    assert record == PatronRecord(registry.card_hash(CARD), "MAIN", "adult", EXPIRES, "ok")
    assert registry.lookup("21234000000034") is None


@pytest.mark.parametrize(
    ("card", "secret", "login_with", "found", "matched"),
    [
        (CARD, "1234", "pin", True, True),
        (CARD, " 1234 ", "pin", True, True),
        (CARD, "1235", "pin", True, False),
        (CARD, "", "pin", True, False),
        (CARD, "1234", "last_name", True, False),  # a hash is bound to its login method
        ("21234000000034", "1234", "pin", False, False),
        ("", "", "pin", False, False),
        (WEST_CARD, "o'brien smith", "last_name", True, True),
        (WEST_CARD, "OBRIEN-SMITH", "last_name", True, True),
        (WEST_CARD, "O'Brien", "last_name", True, False),
        (WEST_CARD, "-", "last_name", True, False),
    ],
)
def test_authenticate(
    registry: PatronRegistry, card: str, secret: str, login_with: str, found: bool, matched: bool
) -> None:
    """The record comes back when the card exists; the flag says whether the secret matched."""
    record, ok = registry.authenticate(card, secret, login_with)  # type: ignore[arg-type]
    assert (record is not None, ok) == (found, matched)


def test_same_pin_gives_different_secret_hashes(registry: PatronRegistry, data_dir: Path) -> None:
    """Secret hashes are bound to the card, so shared PINs are not visible in the file."""
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        rows = conn.execute("SELECT secret_hash FROM patrons WHERE library = 'MAIN'").fetchall()
    assert len({row[0] for row in rows}) == 2


def test_patron_key_is_the_card_hash(registry: PatronRegistry) -> None:
    """The patron key is stable, and is not the card number."""
    record = registry.lookup(CARD)
    assert record is not None
    assert registry.patron_key(record) == registry.card_hash(CARD) != CARD
    assert len(registry.patron_key(record)) == 64


# --- writing ---------------------------------------------------------------------------


def test_set_status(registry: PatronRegistry) -> None:
    """A card can be blocked; unknown cards and unknown statuses are refused."""
    card_hash = registry.card_hash(CARD)
    assert registry.set_status(card_hash, "blocked")
    record = registry.lookup(CARD)
    assert record is not None and record.status == "blocked"
    assert not registry.set_status("0" * 64, "blocked")
    with pytest.raises(ValueError, match="status must be one of"):
        registry.set_status(card_hash, "banned")


def test_bulk_write_rolls_back_on_error(registry: PatronRegistry) -> None:
    """An error inside bulk_write leaves the registry exactly as it was."""
    row = registry.hashed_row(
        "21234000000034", "9", "pin", library="MAIN", ptype="adult", expires=EXPIRES, status="ok"
    )
    with pytest.raises(RuntimeError), registry.bulk_write(replace=True) as writer:
        writer.write([row])
        raise RuntimeError("disk on fire")
    assert registry.count() == 3
    assert registry.lookup("21234000000034") is None


def test_bulk_write_discard_commits_nothing(registry: PatronRegistry) -> None:
    """A discarded replace does not delete the cards it did not see."""
    with registry.bulk_write(replace=True) as writer:
        writer.discard()
    assert not writer.committed
    assert registry.count() == 3


def test_bulk_write_counts(registry: PatronRegistry) -> None:
    """New, changed, unchanged and removed rows are counted; a later duplicate updates."""

    def row(card: str, ptype: str) -> object:
        return registry.hashed_row(
            card, "1234", "pin", library="MAIN", ptype=ptype, expires=EXPIRES, status="ok"
        )

    with registry.bulk_write(replace=True) as writer:
        rows = [row(CARD, "adult"), row(CARD_2, "adult"), row("21234000000034", "x")]
        writer.write([*rows, row("21234000000034", "adult")])  # type: ignore[list-item]
    assert (writer.imported, writer.updated, writer.unchanged, writer.removed) == (1, 2, 1, 1)
    record = registry.lookup("21234000000034")
    assert record is not None and record.ptype == "adult"


def test_card_hashes_pages_through_every_card(registry: PatronRegistry) -> None:
    """card_hashes yields every card hash exactly once, in order, across pages."""
    expected = sorted(registry.card_hash(c) for c in (CARD, CARD_2, WEST_CARD))
    assert list(registry.card_hashes(page=2)) == expected
    assert list(registry.card_hashes(page=3)) == expected


def test_block_returns_the_library(registry: PatronRegistry) -> None:
    """Blocking a card sets its status and names its library; an unknown card is an error."""
    assert registry.block(registry.card_hash(WEST_CARD)) == "WEST"
    record = registry.lookup(WEST_CARD)
    assert record is not None and record.status == "blocked"
    with pytest.raises(UnknownCard):
        registry.block("0" * 64)


def test_busy_registry_is_a_clear_error(registry: PatronRegistry, data_dir: Path) -> None:
    """When another process holds the write lock, a write fails with a clear message."""
    registry._conn.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(data_dir / DB_FILE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistryError, match="is another import running"):
            registry.set_status(registry.card_hash(CARD), "blocked")
        assert registry.authenticate(CARD, "1234", "pin")[1]  # reads still work
    finally:
        other.execute("ROLLBACK")
        other.close()
