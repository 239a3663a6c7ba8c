"""Retention: what is deleted when, applied by a daily background task and ``purge``.

Contract: ``purge_all(stores, settings, now)`` destroys pseudonym epoch keys older than the
retention (cryptographic erasure: those pseudonyms can no longer be traced to a card), rolls
daily statistics older than their retention into monthly rows, deletes abuse events past
theirs, and purges expired sessions; it returns what it did for the log and the CLI.
Failed-login throttle counters never reach disk: they expire in memory within the window.
Every blocking store call (deletes, WAL checkpoints, the roll-up) runs in a worker thread:
the daily task shares the event loop with the requests (#14). The purge also makes the keys
of the next epochs ahead of time (``EpochKeyStore.prepare``), so that the relay's
``key_for`` finds them in memory.
Not here: the stores themselves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from proxy.core.settings import Settings
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.sessions import SessionStore
from proxy.stores.stats import StatsStore
from proxy.stores.suspensions import Suspensions


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """Counts of what one purge removed."""

    epoch_keys_destroyed: int
    daily_stats_rolled_up: int
    abuse_events_deleted: int
    sessions_purged: int


@dataclass(frozen=True, slots=True)
class Stores:
    """The stores a purge touches."""

    epochs: EpochKeyStore
    stats: StatsStore
    suspensions: Suspensions
    sessions: SessionStore


async def purge_all(stores: Stores, settings: Settings, now: datetime) -> PurgeReport:
    """Apply every retention rule once (each store's work in a worker thread)."""
    keep = settings.retention
    destroyed = await asyncio.to_thread(
        stores.epochs.destroy_older_than, now - timedelta(days=keep.epoch_key_days)
    )
    await asyncio.to_thread(stores.epochs.prepare, now)
    return PurgeReport(
        epoch_keys_destroyed=destroyed,
        daily_stats_rolled_up=await asyncio.to_thread(
            stores.stats.roll_up, (now - timedelta(days=keep.daily_stats_days)).date()
        ),
        abuse_events_deleted=await asyncio.to_thread(
            stores.suspensions.purge, now - timedelta(days=keep.abuse_event_days)
        ),
        sessions_purged=await stores.sessions.purge_expired(now),
    )
