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
    path: Path,
    *,
    schema: str,
    version: int,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    secure_delete: bool = False,
    what: str = "store",
    error: type[ClamshellError] = StoreError,
) -> sqlite3.Connection:
    """Open (creating if needed) one SQLite store file.

    Args:
        secure_delete: overwrite deleted rows with zeros (keys, pseudonym secrets).
        what: how error messages name the file ("the patron registry").
        error: the store's own error class, raised with the file's path in the message.
    """
    ensure_private_dir(path.parent)
    if not path.exists():  # SQLite gives -wal and -shm the database file's mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        if secure_delete:
            conn.execute("PRAGMA secure_delete = ON")
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > version:
            raise error(f"{path}: schema version {current} is newer than this clamshell")
        if current < version:
            conn.executescript(
                f"BEGIN IMMEDIATE; {schema} PRAGMA user_version = {int(version)}; COMMIT;"
            )
    except sqlite3.DatabaseError as exc:
        raise error(f"{path}: cannot open {what}: {exc}") from None
    return conn
