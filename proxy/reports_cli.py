"""``stats export`` and ``purge``: the library's reports and the retention policy by hand.

Contract: ``stats export --from DATE --to DATE --format csv|json [--out FILE]`` writes the
aggregate daily rows (day, vendor, library, sessions, unique patrons, requests, bytes,
downloads) and login outcomes; ``purge`` applies the retention rules now and prints what it
removed. Both open the stores directly: run ``purge`` while the server is stopped, or let
the server's own daily purge do it (the server caches epoch keys in memory).
Not here: counting (core/usage.py), retention rules (purge.py).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from proxy.core.settings import Settings
from proxy.purge import Stores, purge_all
from proxy.secretfiles import read_or_create_secret
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.sessions import DB_FILE, SqliteSessionStore
from proxy.stores.stats import StatsStore, UsageRow
from proxy.stores.suspensions import Suspensions

USAGE_COLUMNS = [f.name for f in dataclasses.fields(UsageRow)]


def add_reports_parsers(commands: Any) -> None:
    """Add ``stats export`` and ``purge``."""
    stats = commands.add_parser("stats", help="aggregate usage statistics")
    stats_cmds = stats.add_subparsers(dest="stats_command", required=True, metavar="SUBCOMMAND")
    export = stats_cmds.add_parser("export", help="daily aggregate rows as CSV or JSON")
    today = datetime.now(UTC).date()
    export.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        default=today - timedelta(days=30),
        help="first day (YYYY-MM-DD)",
    )
    export.add_argument(
        "--to", dest="end", type=date.fromisoformat, default=today, help="last day (YYYY-MM-DD)"
    )
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--out", default="-", help="file to write (default: stdout)")
    commands.add_parser("purge", help="apply the retention rules now")


def run_stats_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write the rows for the period."""
    if args.end < args.start:
        print("stats export: --to is before --from", file=sys.stderr)
        return 2
    store = StatsStore.open(Path(settings.data_dir))
    try:
        rows = store.daily(args.start, args.end)
        logins = store.logins(args.start, args.end)
    finally:
        store.close()
    if args.out == "-":
        write_rows(sys.stdout, args.format, rows, logins)
    else:
        with Path(args.out).open("w", encoding="utf-8", newline="") as out:
            write_rows(out, args.format, rows, logins)
    return 0


def write_rows(
    out: TextIO, fmt: str, rows: list[UsageRow], logins: list[tuple[str, str, str, int]]
) -> None:
    """CSV (usage rows only, one header) or JSON (usage and login outcomes)."""
    if fmt == "json":
        json.dump(
            {
                "usage": [dataclasses.asdict(r) for r in rows],
                "logins": [
                    dict(zip(("day", "library", "outcome", "count"), row, strict=True))
                    for row in logins
                ],
            },
            out,
            indent=2,
        )
        out.write("\n")
        return
    writer = csv.writer(out)
    writer.writerow(USAGE_COLUMNS)
    writer.writerows(dataclasses.astuple(r) for r in rows)


def run_purge(settings: Settings) -> int:
    """Apply the retention rules once and print the counts."""
    report = asyncio.run(_purge(settings))
    for name, value in dataclasses.asdict(report).items():
        print(f"{name.replace('_', ' ')}: {value}")
    return 0


async def _purge(settings: Settings) -> Any:
    data = Path(settings.data_dir)
    pepper = read_or_create_secret(data / "pepper.key")
    sessions = await SqliteSessionStore.open(
        data / DB_FILE,
        timedelta(minutes=settings.sessions.idle_minutes),
        timedelta(hours=settings.sessions.lifetime_hours),
    )
    stores = Stores(
        EpochKeyStore.open(data), StatsStore.open(data), Suspensions.open(data, pepper), sessions
    )
    try:
        return await purge_all(stores, settings, datetime.now(UTC))
    finally:
        stores.epochs.close()
        stores.stats.close()
        stores.suspensions.close()
        await sessions.close()
