"""Schema migrations: the user_version stepper, and a data dir written by clamshell 0.1.0
(tests/stores/fixtures/data-0.1.0, dumped from main's schema) opening under this code."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest
from aiohttp import web

from proxy.rulebook import Rulebook
from proxy.stores.sqlitedb import StoreError, migration_steps, open_db
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY, STATS
from tests.web.conftest import Clock, demo_settings

FIXTURE = Path(__file__).parent / "fixtures" / "data-0.1.0"
V1 = "CREATE TABLE IF NOT EXISTS t (a TEXT);"
V3 = V1 + " CREATE TABLE IF NOT EXISTS u (b TEXT);"
STEPS = {2: "ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT 'x';", 3: "CREATE TABLE u (b TEXT);"}


def restore_fixture(data: Path) -> None:
    """Write each dumped database of the fixture as a file in ``data``."""
    data.mkdir(mode=0o700)
    for dump in sorted(FIXTURE.glob("*.sql")):
        target = data / f"{dump.stem}.sqlite3"
        with sqlite3.connect(target) as conn:
            conn.executescript(dump.read_text())
        target.chmod(0o600)


def version_of(path: Path) -> int:
    """The file's ``PRAGMA user_version``."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_steps_for_a_new_file_are_the_schema() -> None:
    """A new file gets the whole schema at the target version in one step."""
    assert migration_steps(0, 3, V3, STEPS) == [(3, V3)]


def test_steps_run_in_order_and_fall_back_to_the_schema() -> None:
    """An old file is stepped version by version; a version without a step re-applies the
    schema (new tables only)."""
    assert migration_steps(1, 3, V3, STEPS) == [(2, STEPS[2]), (3, STEPS[3])]
    assert migration_steps(1, 2, V3, {}) == [(2, V3)]
    assert migration_steps(3, 3, V3, STEPS) == []


def test_an_old_file_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A version-1 file with a row becomes version 3 with the new column and table."""
    path = tmp_path / "d.sqlite3"
    open_db(path, schema=V1, version=1).execute("INSERT INTO t VALUES ('kept')").connection.close()
    conn = open_db(path, schema=V3, version=3, migrations=STEPS)
    assert conn.execute("SELECT a, b FROM t").fetchall() == [("kept", "x")]
    assert conn.execute("SELECT count(*) FROM u").fetchone() == (0,)
    conn.close()
    assert version_of(path) == 3


def test_a_failing_step_keeps_the_last_good_version(tmp_path: Path) -> None:
    """A broken step is refused naming the file; the file stays at the version before it."""
    path = tmp_path / "d.sqlite3"
    open_db(path, schema=V1, version=1).close()
    broken = {2: STEPS[2], 3: "ALTER TABLE missing ADD COLUMN c TEXT;"}
    with pytest.raises(StoreError, match=r"d\.sqlite3"):
        open_db(path, schema=V3, version=3, migrations=broken)
    assert version_of(path) == 2


async def test_a_data_dir_from_0_1_0_opens_with_every_store(tmp_path: Path) -> None:
    """The whole app starts on the 0.1.0 data dir: every file reaches this release's schema
    version and keeps its rows (patrons, statistics)."""
    data = tmp_path / "data"
    restore_fixture(data)
    before = {p.name: version_of(p) for p in data.glob("*.sqlite3")}
    settings = demo_settings(tmp_path, 9)
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    runner = web.AppRunner(await build_app(settings, book, clock=Clock()))
    await runner.setup()
    try:
        app = runner.app
        assert app[REGISTRY].count() == 6
        rows = app[STATS].daily(date(2026, 11, 28), date(2026, 11, 28))
        assert [(r.vendor, r.library, r.requests) for r in rows] == [("acme", "MAIN", 120)]
    finally:
        await runner.cleanup()
    after = {p.name: version_of(p) for p in data.glob("*.sqlite3")}
    assert set(before) <= set(after)
    assert all(after[name] >= version for name, version in before.items())
