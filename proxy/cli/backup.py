"""``backup DIR`` and ``restore DIR``: copy the data dir out and back (issue #20).

Contract: ``backup DIR`` writes every database (SQLite online backup: safe while serving),
every secret (0600) and a manifest into the new folder DIR and prints one line per file;
``restore DIR [--force]`` checks the manifest, then puts the files into the config's data dir
(stop the server first). With ``state.backend: redis`` both remind the operator to snapshot
Redis too. A mistake is one ``error:`` line and exit 2.
Not here: the copying itself (proxy/backup.py).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from proxy.backup import BackupError, Entry, backup, restore
from proxy.cli.startup import settings_of
from proxy.core.settings import Settings

REDIS_NOTE: Final = (
    "note: state.backend is redis: sessions, blocks, throttles and usage increments live in "
    "Redis; snapshot it as well (redis-cli --rdb FILE, or copy the RDB/AOF files) and keep the "
    "snapshot with this backup."
)


def add_backup_parsers(commands: Any) -> None:
    """Add ``backup`` and ``restore``."""
    out = commands.add_parser("backup", help="copy every database and secret into a new folder")
    out.add_argument("dir", help="a new (or empty) folder for this backup")
    back = commands.add_parser("restore", help="put a backup into the data dir (server stopped)")
    back.add_argument("dir", help="a folder written by `clamshell backup`")
    back.add_argument("--force", action="store_true", help="overwrite existing databases")


def backup_command(args: argparse.Namespace) -> int:
    """``backup DIR``."""
    settings = settings_of(args)
    return _report(
        settings, lambda: backup(Path(settings.data_dir), Path(args.dir), datetime.now(UTC))
    )


def restore_command(args: argparse.Namespace) -> int:
    """``restore DIR``."""
    settings = settings_of(args)
    return _report(
        settings, lambda: restore(Path(args.dir), Path(settings.data_dir), force=args.force)
    )


def _report(settings: Settings, run: Any) -> int:
    try:
        entries: list[Entry] = run()
    except BackupError as exc:
        print(f"error: {exc.public_message}", file=sys.stderr)
        return 2
    for e in entries:
        version = "" if e.schema_version is None else f" schema {e.schema_version}"
        print(f"{e.name}: {e.kind}{version}, {e.bytes} bytes")
    state = getattr(settings, "state", None)
    if getattr(state, "backend", "local") == "redis":
        print(REDIS_NOTE)
    return 0
