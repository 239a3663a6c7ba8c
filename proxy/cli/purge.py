"""``purge``: apply the retention rules now, by hand, and print what was removed.

Contract: ``purge_command(args)`` opens the stores directly, runs ``purge_all`` once and prints
one ``name: count`` line per kind of record; exit 0. Run it while the server is stopped, or
let the server's own daily purge do it (the server caches epoch keys in memory).
Not here: the retention rules (proxy/purge.py).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from proxy.cli.startup import configured
from proxy.core.settings import Settings
from proxy.purge import Stores, purge_all
from proxy.secretfiles import read_or_create_secret
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.sessions import DB_FILE, SqliteSessionStore
from proxy.stores.stats import StatsStore
from proxy.stores.suspensions import Suspensions


def add_purge_parser(commands: Any) -> None:
    """Add ``purge``."""
    commands.add_parser("purge", help="apply the retention rules now")


def purge_command(args: argparse.Namespace) -> int:
    """``purge`` with the config's settings."""
    return run_purge(configured(args))


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
