"""One way to open a project SQLite file: created 0600, WAL, a schema version, clear errors.

Contract: ``open_db(path, schema=..., version=..., synchronous=...)`` creates the file with
mode 0600 before SQLite touches it (SQLite gives ``-wal``/``-shm`` the same mode), sets WAL
and the requested durability, applies the schema when the file is new or older, and raises
``StoreError`` naming the file when it is unreadable or from a newer clamshell.
``synchronous=FULL`` for security-relevant state, ``NORMAL`` for statistics (CONVENTIONS
"Traps": NORMAL survives kill -9 but can lose recent commits on power loss).
Not here: any table's meaning.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

from proxy.errors import ClamshellError
from proxy.secretfiles import ensure_private_dir


class StoreError(ClamshellError):
    """A store file cannot be opened or has an unknown schema."""


def open_db(
    path: Path, *, schema: str, version: int, synchronous: Literal["FULL", "NORMAL"] = "FULL"
) -> sqlite3.Connection:
    """Open (creating if needed) one SQLite store file."""
    ensure_private_dir(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > version:
            raise StoreError(f"{path}: schema version {current} is newer than this clamshell")
        if current < version:
            conn.executescript(schema)
            conn.execute(f"PRAGMA user_version = {int(version)}")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open: {exc}") from None
    return conn
