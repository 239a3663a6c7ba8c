"""Benchmark: import a generated patron export (default 1,000,000 rows) into a fresh registry.

Run: ``python -m bench.patron_import [--rows N] [--replace]``. Writes a CSV of valid cards
(half MAIN with PINs and Luhn check digits, half WEST with last names and weighted 3-1
check digits) into a temporary folder, imports it, and prints rows/s, seconds and the
process's peak RSS (``resource.getrusage``), with CPU seconds and the load average, since
wall time on a shared machine says little alone. The target is under 60 s for 1,000,000 rows.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from proxy.core.cards import CheckScheme, make_check_digit
from proxy.core.settings import Settings
from proxy.stores.patron_import import ImportSummary, import_csv
from proxy.stores.patrons import PatronRegistry

SETTINGS = Settings.model_validate(
    {
        "libraries": [
            {"code": "MAIN", "name": "Main", "prefix": "21234", "length": 14,
             "check_digit": "luhn", "remote_ptypes": ["adult"]},
            {"code": "WEST", "name": "West", "prefix": "29876", "length": 14,
             "check_digit": "mod10_weighted_31", "remote_ptypes": ["student"],
             "login_with": "last_name"},
        ]
    }
)  # fmt: skip
HEADER = ["barcode", "pin", "last_name", "library", "ptype", "expires", "status", "email"]
SURNAMES = ["Smith", "O'Brien-Smith", "Müller", "Nguyen", "García Lorca", "Kowalski"]


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    """A patron export with ``rows`` valid rows."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for n in range(rows):
            west = n % 2 == 1
            prefix: str = "29876" if west else "21234"
            scheme: CheckScheme = "mod10_weighted_31" if west else "luhn"
            body = f"{prefix}{n:08d}"
            out.writerow(
                [
                    f"{body}{make_check_digit(body, scheme)}",
                    f"{rng.randrange(10_000):04d}",
                    rng.choice(SURNAMES),
                    "WEST" if west else "MAIN",
                    "student" if west else "adult",
                    f"20{27 + n % 3}-0{1 + n % 9}-15",
                    "ok" if n % 50 else "fines",
                    "someone@example.org",
                ]
            )


def timed_import(
    registry: PatronRegistry, path: Path, rows: int, *, replace: bool
) -> ImportSummary:
    """Import once and print the figures."""
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = import_csv(registry, path, SETTINGS, replace=replace, progress=True)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"{'replace' if replace else 'upsert'}: imported {summary.imported:,}, updated "
        f"{summary.updated:,}, unchanged {summary.unchanged:,}, rejected {summary.rejected:,}, "
        f"removed {summary.removed:,} in {took:.1f} s = {rows / took:,.0f} rows/s "
        f"({cpu:.1f} s CPU; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """Generate, import, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--replace", action="store_true", help="import with --replace")
    parser.add_argument(
        "--again", action="store_true", help="then re-import the same file with --replace"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clamshell-bench-") as tmp:
        csv_path = Path(tmp) / "patrons.csv"
        started = time.perf_counter()
        write_csv(csv_path, args.rows)
        generated = time.perf_counter() - started
        size_mib = csv_path.stat().st_size / 2**20
        print(f"generated {args.rows:,} rows ({size_mib:.0f} MiB) in {generated:.1f} s")
        with PatronRegistry.open(Path(tmp) / "data") as registry:
            summary = timed_import(registry, csv_path, args.rows, replace=args.replace)
            if args.again:
                timed_import(registry, csv_path, args.rows, replace=True)
        db_mib = (Path(tmp) / "data" / "patrons.sqlite3").stat().st_size / 2**20
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"database {db_mib:.0f} MiB; peak RSS {peak_mib:.0f} MiB")
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
