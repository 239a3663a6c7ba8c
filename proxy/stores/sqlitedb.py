"""One way to open a project SQLite file: created 0600, WAL, a schema version, clear errors.

Contract: ``open_db(path, schema=..., version=..., synchronous=...)`` creates the file with
mode 0600 before SQLite touches it (SQLite gives ``-wal``/``-shm`` the same mode), sets WAL
and the requested durability, applies the schema when the file is new or older, and raises
``StoreError`` naming the file when it is unreadable, fails ``PRAGMA quick_check`` (pentest
R15: a corrupt file must stop the start, not answer 500 to every login) or is from a newer
clamshell. ``StoreError`` is a ``ConfigError``, so the CLI prints its one line without a
traceback, and the stores' own error classes derive from it.
Schema migrations (issue #20): ``migrations`` maps a version N to the SQL that upgrades a file
from N-1 to N. A file older than ``version`` is stepped one version at a time, each step in its
own transaction together with its ``PRAGMA user_version`` (a failed step leaves the file at the
last good version); a version with no step re-applies ``schema`` (``CREATE … IF NOT EXISTS``:
new tables only), what every version so far needed. A new file gets ``schema`` directly.
``synchronous=FULL`` for security-relevant state, ``NORMAL`` for statistics (CONVENTIONS
"Traps": NORMAL survives kill -9 but can lose recent commits on power loss).
Not here: any table's meaning.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from proxy.errors import ConfigError, Problem
from proxy.secretfiles import ensure_private_dir


class StoreError(ConfigError):
    """A store file cannot be opened, is corrupt, or has an unknown schema.

    Raised with one message ``"<path>: <what is wrong>"``; rendered as that one line.
    """

    def __init__(self, message: str) -> None:
        where, sep, what = " ".join(message.split()).partition(": ")  # always one line
        super().__init__(
            [Problem(where, None, "", what) if sep else Problem("store", None, "", where)]
        )


def open_db(
    path: Path,
    *,
    schema: str,
    version: int,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    secure_delete: bool = False,
    what: str = "store",
    error: type[StoreError] = StoreError,
    migrations: Mapping[int, str] | None = None,
) -> sqlite3.Connection:
    """Open (creating if needed) one SQLite store file.

    Args:
        secure_delete: overwrite deleted rows with zeros (keys, pseudonym secrets).
        what: how error messages name the file ("the patron registry").
        error: the store's own error class, raised with the file's path in the message.
        migrations: version N → SQL upgrading a file from N-1 to N.
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
        _quick_check(conn, path, what, error)
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > version:
            raise error(f"{path}: schema version {current} is newer than this clamshell")
        for step, sql in migration_steps(current, version, schema, migrations or {}):
            conn.executescript(f"BEGIN IMMEDIATE; {sql} PRAGMA user_version = {step}; COMMIT;")
    except sqlite3.DatabaseError as exc:
        raise error(f"{path}: cannot open {what}: {exc}") from None
    return conn


def migration_steps(
    current: int, version: int, schema: str, migrations: Mapping[int, str]
) -> list[tuple[int, str]]:
    """The (version, SQL) steps from ``current`` to ``version``, in order."""
    if current == 0:
        return [(version, schema)] if version > 0 else []
    return [(step, migrations.get(step, schema)) for step in range(current + 1, version + 1)]


def _quick_check(conn: sqlite3.Connection, path: Path, what: str, error: type[StoreError]) -> None:
    """Refuse a corrupt file now: ``quick_check`` reads every page (O(N), no index checks)."""
    verdict = [str(row[0]) for row in conn.execute("PRAGMA quick_check(1)").fetchall()]
    if verdict != ["ok"]:
        conn.close()
        raise error(f"{path}: {what} is corrupt ({verdict[0] if verdict else 'no answer'})")
