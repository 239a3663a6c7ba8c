"""Backup and restore of a data dir (issue #20): every SQLite database, every secret, a manifest.

Contract: ``backup(data_dir, dest, now)`` copies each ``*.sqlite3`` with SQLite's online backup
API (consistent while the server runs), each other regular file (the secrets: pepper, keys,
admin token) byte for byte, all with mode 0600 in a new 0700 ``dest``, and writes
``manifest.json`` (clamshell version, time, per file: kind, size, SHA-256, schema version).
``restore(src, data_dir, force=...)`` checks the manifest (every file present, every digest
right, no name with a path in it) before it writes anything, then puts each file in place
(temporary file + rename, 0600) and removes a restored database's stale ``-wal``/``-shm``.
It refuses a data dir that already holds databases unless ``force``. Run restore with the
server stopped; the schema is brought up to date by the next start (migrations in
stores/sqlitedb.py). ``BackupError`` (exit 2 in the CLI) says what is wrong in one line.
Not here: Redis (with ``state.backend: redis`` the operator snapshots Redis itself: the CLI
says so), the command line (cli/backup.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from proxy import __version__
from proxy.errors import ClamshellError
from proxy.secretfiles import ensure_private_dir

MANIFEST: Final = "manifest.json"
DATABASE_SUFFIX: Final = ".sqlite3"
# SQLite's companions of a database: never copied (the backup API reads through them).
SIDE_FILES: Final = ("-wal", "-shm", "-journal")


class BackupError(ClamshellError):
    """A backup or restore that cannot be done; the message says why."""

    status_hint = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.public_message = message


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a backup."""

    name: str
    kind: Literal["database", "secret"]
    bytes: int
    sha256: str
    schema_version: int | None


def backup(data_dir: Path, dest: Path, now: datetime) -> list[Entry]:
    """Copy the data dir into a new ``dest``; returns the manifest's entries."""
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: no data dir here")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest}: not empty; choose a new folder for each backup")
    ensure_private_dir(dest)
    entries = [_copy(path, dest) for path in sorted(data_dir.iterdir()) if _wanted(path)]
    manifest = {
        "clamshell": __version__,
        "created": now.isoformat(),
        "files": [asdict(e) for e in entries],
    }
    _write_private(dest / MANIFEST, json.dumps(manifest, indent=2).encode())
    return entries


def restore(src: Path, data_dir: Path, *, force: bool) -> list[Entry]:
    """Put a checked backup in place in ``data_dir``; returns its entries."""
    entries = read_manifest(src)
    if data_dir.exists() and any(data_dir.glob(f"*{DATABASE_SUFFIX}")) and not force:
        raise BackupError(f"{data_dir}: already holds databases; stop the server and add --force")
    ensure_private_dir(data_dir)
    for entry in entries:
        target = data_dir / entry.name
        _write_private(target, (src / entry.name).read_bytes())
        for side in SIDE_FILES:
            Path(f"{target}{side}").unlink(missing_ok=True)
    return entries


def read_manifest(src: Path) -> list[Entry]:
    """The manifest's entries, after checking every file against it."""
    try:
        raw = json.loads((src / MANIFEST).read_text("utf-8"))
        entries = [Entry(**item) for item in raw["files"]]
    except FileNotFoundError:
        raise BackupError(f"{src}: no {MANIFEST}; not a clamshell backup") from None
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{src / MANIFEST}: not a valid manifest") from None
    for entry in entries:
        if Path(entry.name).name != entry.name or entry.name in {"", ".", ".."}:
            raise BackupError(f"{src / MANIFEST}: file name {entry.name!r} has a path in it")
        path = src / entry.name
        if not path.is_file() or _sha256(path.read_bytes()) != entry.sha256:
            raise BackupError(f"{path}: missing or changed since the backup (SHA-256 differs)")
    return entries


def _wanted(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and not path.name.endswith(SIDE_FILES)


def _copy(path: Path, dest: Path) -> Entry:
    target = dest / path.name
    if path.name.endswith(DATABASE_SUFFIX):
        _online_backup(path, target)
        kind: Literal["database", "secret"] = "database"
        version: int | None = _schema_version(target)
    else:
        _write_private(target, path.read_bytes())
        kind, version = "secret", None
    data = target.read_bytes()
    return Entry(path.name, kind, len(data), _sha256(data), version)


def _online_backup(source: Path, target: Path) -> None:
    """SQLite's backup API: a consistent copy even while the server writes."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file in the backup
    finally:
        dst.close()
        src.close()


def _schema_version(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a 0600 temporary file, fsync, and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
