"""Pentest regressions on the stores: corrupt files (R15), failed writes (R16), sessions per
card (R11) — with real SQLite files, made to fail by real means (garbage bytes, a
``query_only`` connection), never a mock of a store class.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config_loader import settings_from
from proxy.demo.settings import DEMO_LIBRARIES
from proxy.errors import ConfigError
from proxy.rulebook import Rulebook
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.patrons import PatronRegistry
from proxy.stores.sessions import DB_FILE, SqliteSessionStore
from proxy.web.app import build_app
from tests.web.conftest import REPO

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=8)
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
PAGE = 4096  # SQLite's default page size


async def _fill_patrons(data: Path) -> None:
    with PatronRegistry.open(data) as registry, registry.bulk_write(replace=True) as writer:
        writer.write(
            [
                registry.hashed_row(
                    f"2123400{n:07d}",
                    "1234",
                    "pin",
                    library="MAIN",
                    ptype="adult",
                    expires=date(2030, 1, 1),
                    status="ok",
                )
                for n in range(3000)
            ]
        )


async def _fill_keys(data: Path) -> None:
    store = EpochKeyStore.open(data)
    store.close()
    conn = sqlite3.connect(data / "keys.sqlite3")
    conn.executemany(
        "INSERT INTO epoch_keys VALUES (?, ?, ?, ?)",
        [(f"2020-{n:05d}", os.urandom(32), n, n + 1) for n in range(3000)],
    )
    conn.commit()
    conn.close()


async def _fill_sessions(data: Path) -> None:
    store = await SqliteSessionStore.open(data / DB_FILE, IDLE, LIFETIME)
    for n in range(300):
        await store.create(library="MAIN", ptype="adult", patron_key=f"p{n}", now=T0)
    await store.close()


def _corrupt(path: Path) -> None:
    """Keep the header page and the schema, overwrite the table pages with garbage."""
    size = path.stat().st_size
    assert size > 4 * PAGE, f"{path.name} is too small to corrupt meaningfully"
    with path.open("r+b") as f:
        f.seek(2 * PAGE)
        f.write(os.urandom(size - 2 * PAGE))


STORE_FILES: dict[str, Callable[[Path], Awaitable[None]]] = {
    "patrons.sqlite3": _fill_patrons,
    "keys.sqlite3": _fill_keys,
    DB_FILE: _fill_sessions,
}


def _raw_settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "data_dir": str(tmp_path / "data"),
        "rules_dir": str(REPO / "vendor_rules"),
        "libraries": [dict(lib) for lib in DEMO_LIBRARIES],
    }


async def _corrupt_data_dir(tmp_path: Path, name: str) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    await STORE_FILES[name](data)
    _corrupt(data / name)
    return data / name


@pytest.mark.parametrize("name", STORE_FILES)
async def test_r15_a_corrupt_store_stops_the_start_naming_its_file(
    tmp_path: Path, name: str
) -> None:
    """R15: a store file with garbage pages refuses the start with one line naming the file."""
    path = await _corrupt_data_dir(tmp_path, name)
    settings = settings_from(_raw_settings(tmp_path), where="test", base=tmp_path)
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    with pytest.raises(ConfigError) as caught:
        app = await build_app(settings, book)
        for cleanup in app.on_cleanup:
            await cleanup(app)
    lines = [str(problem) for problem in caught.value.problems]
    assert len(lines) == 1 and str(path) in lines[0] and "\n" not in lines[0]


async def test_r15_the_cli_prints_one_line_without_a_traceback(tmp_path: Path) -> None:
    """R15: `serve` on a corrupt sessions file exits 1 with one line naming the file."""
    path = await _corrupt_data_dir(tmp_path, DB_FILE)
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump({**_raw_settings(tmp_path), "listen": {"port": 0}}))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(REPO / "run_proxy.py"), "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1
    assert str(path) in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- R16: a logout that cannot be written --------------------------------------------------


async def test_r16_a_delete_that_cannot_be_written_is_kept_and_retried(tmp_path: Path) -> None:
    """R16: with the file read-only, delete still succeeds for the caller and the token is
    refused at once; the flusher writes it once the file is writable, and it stays deleted
    after a restart."""
    store = await SqliteSessionStore.open(tmp_path / DB_FILE, IDLE, LIFETIME)
    token, session = await store.create(library="MAIN", ptype="adult", patron_key="p", now=T0)
    store._conn.execute("PRAGMA query_only = ON")  # every write now fails, as on a full disk
    assert await store.delete(token) is True
    assert await store.get(token, T0) is None
    assert store.pending_deletes == {session.key}
    with pytest.raises(sqlite3.Error):
        await store.flush()  # still failing: still pending
    assert store.pending_deletes == {session.key}
    store._conn.execute("PRAGMA query_only = OFF")  # the disk has room again
    await store.flush()
    assert store.pending_deletes == set()
    await store.close()
    reopened = await SqliteSessionStore.open(tmp_path / DB_FILE, IDLE, LIFETIME)
    assert await reopened.get(token, T0) is None
    await reopened.close()


# --- R11: sessions per card ----------------------------------------------------------------


async def test_r11_creating_past_the_cap_ends_the_oldest_sessions(tmp_path: Path) -> None:
    """R11: with max_per_patron N, N+5 sessions of one card leave its N newest; another
    card's sessions are untouched; the cap holds across a restart (oldest by creation)."""
    store = await SqliteSessionStore.open(tmp_path / DB_FILE, IDLE, LIFETIME)
    other, _ = await store.create(library="M", ptype="a", patron_key="other", now=T0)
    tokens = []
    for n in range(8):
        now = T0 + timedelta(seconds=n)
        token, _ = await store.create(
            library="M", ptype="a", patron_key="p", now=now, max_per_patron=3
        )
        tokens.append(token)
    assert [await store.get(t, T0) is not None for t in tokens] == [False] * 5 + [True] * 3
    assert await store.get(other, T0) is not None
    await store.close()
    reopened = await SqliteSessionStore.open(tmp_path / DB_FILE, IDLE, LIFETIME)
    await reopened.create(library="M", ptype="a", patron_key="p", now=T0, max_per_patron=3)
    assert await reopened.get(tokens[5], T0) is None and await reopened.get(tokens[7], T0)
    assert await reopened.delete_by_patron("p") == 3
    await reopened.close()
