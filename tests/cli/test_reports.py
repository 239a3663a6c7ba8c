"""stats export and purge from the command line, on real SQLite files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from proxy.config_loader import settings_from
from proxy.core import pseudonym
from proxy.core.usage import UsageCounters
from proxy.purge import Stores, purge_all
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.sessions import MemorySessionStore
from proxy.stores.stats import StatsStore
from proxy.stores.suspensions import Suspensions

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A proxy.yaml with a temp data dir holding two days of statistics."""
    path = tmp_path / "proxy.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'data'}\nrules_dir: {REPO / 'vendor_rules'}\n"
        "libraries: [{code: MAIN, name: Main}]\n",
        encoding="utf-8",
    )
    store = StatsStore.open(tmp_path / "data")
    usage = UsageCounters()
    for day, n in ((date(2026, 11, 1), 3), (date(2026, 11, 2), 5)):
        for i in range(n):
            usage.request(
                day,
                "acme",
                "MAIN",
                patron=f"p{i}",
                session=f"s{i}",
                size=10,
                content_type="application/pdf",
            )
    usage.login(date(2026, 11, 1), "MAIN", "ok")
    store.add(usage.drain())
    store.close()
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run run_proxy.py with a config."""
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "run_proxy.py"),
            "--config",
            str(config),
            "--log-format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_stats_export_csv(config: Path) -> None:
    """CSV export has one aggregate row per (day, vendor, library) and nothing per patron."""
    result = cli(config, "stats", "export", "--from", "2026-11-01", "--to", "2026-11-30")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["day"], r["requests"], r["uniques"], r["downloads"]) for r in rows] == [
        ("2026-11-01", "3", "3", "3"),
        ("2026-11-02", "5", "5", "5"),
    ]
    assert set(rows[0]) == {
        "day",
        "vendor",
        "library",
        "sessions",
        "uniques",
        "requests",
        "bytes",
        "downloads",
    }


def test_stats_export_json_with_range(config: Path) -> None:
    """JSON export honours the date range and includes login outcomes."""
    result = cli(
        config, "stats", "export", "--from", "2026-11-02", "--to", "2026-11-02", "--format", "json"
    )
    data = json.loads(result.stdout)
    assert [r["day"] for r in data["usage"]] == ["2026-11-02"]
    assert data["logins"] == []


def test_18_month_export_after_roll_up_keeps_usage_and_logins(config: Path) -> None:
    """#18: once the days are rolled up, --granularity month still exports usage and logins."""
    data = config.parent / "data"
    store = StatsStore.open(data)
    store.roll_up(date(2026, 12, 1))
    store.close()
    args = ("stats", "export", "--from", "2026-11-01", "--to", "2026-11-30")
    assert cli(config, *args, "--format", "json").stdout.count('"day"') == 0
    result = cli(config, *args, "--granularity", "month", "--format", "json")
    assert result.returncode == 0, result.stderr
    month = json.loads(result.stdout)
    assert [(r["day"], r["requests"], r["uniques"]) for r in month["usage"]] == [("2026-11", 8, 5)]
    assert month["logins"] == [{"day": "2026-11", "library": "MAIN", "outcome": "ok", "count": 1}]
    logins = cli(config, *args, "--granularity", "month", "--table", "logins")
    assert list(csv.DictReader(io.StringIO(logins.stdout))) == [
        {"day": "2026-11", "library": "MAIN", "outcome": "ok", "count": "1"}
    ]


def test_18_csv_export_can_hold_login_outcomes(config: Path) -> None:
    """#18: `--table logins` puts the daily login outcomes in the CSV export."""
    result = cli(
        config, "stats", "export", "--from", "2026-11-01", "--to", "2026-11-30", "--table", "logins"
    )
    assert result.returncode == 0, result.stderr
    assert list(csv.DictReader(io.StringIO(result.stdout))) == [
        {"day": "2026-11-01", "library": "MAIN", "outcome": "ok", "count": "1"}
    ]


def test_stats_export_rejects_bad_dates(config: Path) -> None:
    """A malformed date is a usage error."""
    assert cli(config, "stats", "export", "--from", "yesterday").returncode == 2


def test_purge_command_runs(config: Path) -> None:
    """purge applies the retention rules and prints what it removed."""
    result = cli(config, "purge")
    assert result.returncode == 0, result.stderr
    assert "epoch keys destroyed: 0" in result.stdout


async def test_destroyed_epoch_key_makes_old_pseudonyms_untraceable(tmp_path: Path) -> None:
    """After the retention passes, the epoch key is gone and the pseudonym cannot be recomputed."""
    settings = settings_from(
        {"data_dir": str(tmp_path), "retention": {"epoch_key_days": 30}},
        where="test",
        base=tmp_path,
    )
    then = datetime(2026, 1, 10, 12, tzinfo=UTC)
    epochs = EpochKeyStore.open(tmp_path)
    epoch = pseudonym.epoch_id("daily", then)
    issued = pseudonym.derive(epochs.key_for(epoch), "acme", "card-hash-1")
    stores = Stores(
        epochs,
        StatsStore.open(tmp_path),
        Suspensions.open(tmp_path, b"p" * 32),
        MemorySessionStore(timedelta(hours=1), timedelta(hours=8)),
    )
    await purge_all(stores, settings, then + timedelta(days=10))
    key = epochs.existing(epoch)
    assert key is not None and pseudonym.derive(key, "acme", "card-hash-1") == issued
    report = await purge_all(stores, settings, then + timedelta(days=40))
    assert report.epoch_keys_destroyed == 1
    assert epochs.existing(epoch) is None


def test_stats_export_is_in_the_audit_log(config: Path, tmp_path: Path) -> None:
    """An export is recorded (#20): who (the CLI), the table and the period."""
    from datetime import timedelta

    from proxy.stores.audit import AuditLog

    assert (
        cli(config, "stats", "export", "--from", "2026-11-01", "--to", "2026-11-30").returncode == 0
    )
    log = AuditLog.open(tmp_path / "data", timedelta(days=365))
    entries = log.recent()
    log.close()
    assert [(e.actor, e.action, e.detail) for e in entries] == [
        ("cli", "stats_exported", "usage day 2026-11-01..2026-11-30")
    ]
