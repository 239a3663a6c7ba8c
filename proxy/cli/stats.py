"""``stats export``: the library's usage reports.

Contract: ``stats export --from DATE --to DATE --format csv|json [--granularity day|month]
[--table usage|logins] [--out FILE]`` writes the aggregate rows (day, vendor, library,
sessions, unique patrons, requests, bytes, downloads) and login outcomes (day, library,
outcome, count). ``--granularity month`` (#18) reads whole months: the rows the retention
rolled up plus the days not yet rolled up, ``day`` holding YYYY-MM; daily detail older than
the retention exists only this way. JSON holds both tables; CSV one, chosen by ``--table``
(default usage). Exit 2 when ``--to`` is before ``--from``. It reads the
statistics store directly (safe while the server runs).
Not here: counting (core/usage.py), storing (proxy/stores/stats.py), ``purge`` (purge.py).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from proxy.cli.startup import configured
from proxy.core.settings import Settings
from proxy.stores.audit import AuditLog
from proxy.stores.stats import StatsStore, UsageRow

USAGE_COLUMNS = [f.name for f in dataclasses.fields(UsageRow)]
LOGIN_COLUMNS = ["day", "library", "outcome", "count"]


def add_stats_parser(commands: Any) -> None:
    """Add ``stats export``."""
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
    export.add_argument(
        "--granularity",
        choices=("day", "month"),
        default="day",
        help="day rows, or month rows (the only rows left past the daily retention)",
    )
    export.add_argument(
        "--table", choices=("usage", "logins"), default="usage", help="the table a CSV holds"
    )
    export.add_argument("--out", default="-", help="file to write (default: stdout)")


def stats_command(args: argparse.Namespace) -> int:
    """``stats export`` (its only subcommand) with the config's settings."""
    return run_stats_export(args, configured(args))


def run_stats_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write the rows for the period."""
    if args.end < args.start:
        print("stats export: --to is before --from", file=sys.stderr)
        return 2
    store = StatsStore.open(Path(settings.data_dir))
    try:
        if args.granularity == "month":
            rows = store.monthly(args.start, args.end)
            logins = store.monthly_logins(args.start, args.end)
        else:
            rows = store.daily(args.start, args.end)
            logins = store.logins(args.start, args.end)
    finally:
        store.close()
    if args.out == "-":
        write_rows(sys.stdout, args.format, rows, logins, table=args.table)
    else:
        with Path(args.out).open("w", encoding="utf-8", newline="") as out:
            write_rows(out, args.format, rows, logins, table=args.table)
    record_export(settings, args)
    return 0


def record_export(settings: Settings, args: argparse.Namespace) -> None:
    """The audit log's entry for an export (#20): the table and the period, nothing more."""
    log = AuditLog.open(Path(settings.data_dir), timedelta(days=settings.admin.audit_days))
    try:
        detail = f"{args.table} {args.granularity} {args.start}..{args.end}"
        log.record("cli", "stats_exported", datetime.now(UTC), detail=detail)
    finally:
        log.close()


def write_rows(
    out: TextIO,
    fmt: str,
    rows: list[UsageRow],
    logins: list[tuple[str, str, str, int]],
    *,
    table: str = "usage",
) -> None:
    """JSON (usage and login outcomes) or CSV (one table, one header: usage or logins)."""
    if fmt == "json":
        json.dump(
            {
                "usage": [dataclasses.asdict(r) for r in rows],
                "logins": [dict(zip(LOGIN_COLUMNS, row, strict=True)) for row in logins],
            },
            out,
            indent=2,
        )
        out.write("\n")
        return
    writer = csv.writer(out)
    if table == "logins":
        writer.writerow(LOGIN_COLUMNS)
        writer.writerows(logins)
        return
    writer.writerow(USAGE_COLUMNS)
    writer.writerows(dataclasses.astuple(r) for r in rows)
