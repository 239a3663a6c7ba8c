"""Retention: what is deleted when, applied by a daily background task and ``purge``.

Contract: ``purge_all(stores, settings, now)`` destroys pseudonym epoch keys older than the
retention (cryptographic erasure: those pseudonyms can no longer be traced to a card), rolls
daily statistics older than their retention into monthly rows, deletes abuse events past
theirs, and purges expired sessions; it returns what it did for the log and the CLI.
Failed-login throttle counters never reach disk: they expire in memory within the window.
Not here: the stores themselves.
"""

from __future__ import annotations

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
    """Apply every retention rule once."""
    keep = settings.retention
    return PurgeReport(
        epoch_keys_destroyed=stores.epochs.destroy_older_than(
            now - timedelta(days=keep.epoch_key_days)
        ),
        daily_stats_rolled_up=stores.stats.roll_up(
            (now - timedelta(days=keep.daily_stats_days)).date()
        ),
        abuse_events_deleted=stores.suspensions.purge(now - timedelta(days=keep.abuse_event_days)),
        sessions_purged=await stores.sessions.purge_expired(now),
    )
