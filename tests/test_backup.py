"""Backup and restore: a round trip of a live data dir, private modes, a checked manifest."""

from __future__ import annotations

import json
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiohttp import web

from proxy.backup import MANIFEST, BackupError, backup, restore
from proxy.core.usage import Drained, UsageDelta
from proxy.rulebook import Rulebook
from proxy.stores.staff import StaffStore
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY, STATS
from tests.cli.test_cli import run
from tests.web.conftest import Clock, demo_settings

DAY = date(2026, 11, 28)
NOW = datetime(2026, 11, 29, tzinfo=UTC)


async def running_app(tmp: Path) -> web.AppRunner:
    """The app started over ``tmp/data`` (its stores open, as when serving)."""
    settings = demo_settings(tmp, 9)
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    runner = web.AppRunner(await build_app(settings, book, clock=Clock()))
    await runner.setup()
    return runner


async def test_backup_of_a_live_data_dir_restores_into_a_working_one(tmp_path: Path) -> None:
    """Back up while the stores are open; restore elsewhere; the rows, the staff account and
    the secrets come back, and every file is 0600."""
    from proxy.demo.patrons import seed

    first = await running_app(tmp_path / "a")
    drained = Drained()
    drained.usage[(DAY, "acme", "MAIN")] = UsageDelta(requests=77)
    first.app[STATS].add(drained)
    seed(first.app[REGISTRY], demo_settings(tmp_path / "a", 9), DAY)
    data = tmp_path / "a" / "data"
    staff = StaffStore.open(data)
    staff.add("ann", "auditor", (), "correct horse battery", totp=False, now=NOW)
    staff.close()
    out = tmp_path / "backup"
    entries = backup(data, out, NOW)  # while the app still has every database open
    await first.cleanup()
    names = {e.name for e in entries}
    assert {"stats.sqlite3", "patrons.sqlite3", "staff.sqlite3", "pepper.key"} <= names
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["clamshell"] and all(f["sha256"] for f in manifest["files"])

    restore(out, tmp_path / "b" / "data", force=False)
    second = await running_app(tmp_path / "b")
    try:
        rows = second.app[STATS].daily(DAY, DAY)
        assert [(r.vendor, r.requests) for r in rows] == [("acme", 77)]
        assert second.app[REGISTRY].count() == 6
    finally:
        await second.cleanup()
    assert (tmp_path / "b" / "data" / "pepper.key").read_bytes() == (
        data / "pepper.key"
    ).read_bytes()
    restored = StaffStore.open(tmp_path / "b" / "data")
    assert restored.verify("ann", "correct horse battery", "", NOW) is not None
    restored.close()


def test_restore_refuses_a_changed_backup_and_writes_nothing(tmp_path: Path) -> None:
    """A file altered after the backup is refused before anything is written."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "pepper.key").write_bytes(b"k" * 32)
    backup(data, tmp_path / "out", NOW)
    (tmp_path / "out" / "pepper.key").write_bytes(b"x" * 32)
    with pytest.raises(BackupError, match="SHA-256"):
        restore(tmp_path / "out", tmp_path / "new", force=False)
    assert not (tmp_path / "new").exists()


def test_restore_refuses_a_path_in_the_manifest(tmp_path: Path) -> None:
    """A manifest naming ``../x`` cannot make restore write outside the data dir."""
    out = tmp_path / "out"
    out.mkdir()
    entry = {"name": "../evil", "kind": "secret", "bytes": 0, "sha256": "", "schema_version": None}
    (out / MANIFEST).write_text(json.dumps({"files": [entry]}))
    with pytest.raises(BackupError, match="path"):
        restore(out, tmp_path / "data", force=False)


def test_cli_backup_and_restore_mistakes_are_one_line(tmp_path: Path) -> None:
    """A non-empty target, a folder that is no backup and an occupied data dir: exit 2."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "stats.sqlite3").write_bytes(b"")
    config = tmp_path / "proxy.yaml"
    config.write_text(f"data_dir: {data}\n")
    ok = run("--config", str(config), "backup", str(tmp_path / "b1"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    for args in (
        ("backup", str(tmp_path / "b1")),
        ("restore", str(tmp_path)),
        ("restore", str(tmp_path / "b1")),
    ):
        result = run("--config", str(config), *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert run("--config", str(config), "restore", "--force", str(tmp_path / "b1")).returncode == 0
