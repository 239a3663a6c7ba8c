"""Suspensions shared by every node through Redis (``state.backend: redis``).

Contract: ``SharedSuspensions`` connects a node's ``Suspensions`` (memory for the relay's
check, ``abuse.sqlite3`` as this node's durable mirror) to one Redis hash,
``<prefix>susp``: field = the suspension's keyed hash (never a card or session key), value =
``vendor|limit|since|until`` (ISO times). A suspension marked on any node is written there
and announced on the bus; every other node installs it in memory and mirrors it to its own
file. ``restore()`` (at start-up) installs every suspension Redis holds that is still in
force and writes this node's own ones back, so a suspension survives a restart of all nodes
and even the loss of Redis's data as long as one node's file remains. Expired entries are
removed from the hash when they are seen.
Not here: counting and deciding (core/abuse.py, web/relay_guard.py), the file (suspensions.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final

from proxy.logconfig import get_logger
from proxy.stores.redis_state import RedisState, StateUnavailable, state_errors
from proxy.stores.suspensions import Suspension, Suspensions
from proxy.tasks import TaskOwner

log = get_logger("suspensions")
SUSPENDED: Final = "suspended"  # the bus message kind
HASH: Final = "susp"


class SharedSuspensions:
    """Publishes this node's suspensions and installs the others'."""

    def __init__(self, state: RedisState, book: Suspensions, tasks: TaskOwner) -> None:
        self.state, self.book, self.tasks = state, book, tasks
        book.add_listener(self._marked)
        state.on(SUSPENDED, self._announced)

    async def restore(self, now: datetime) -> int:
        """Install what Redis holds and share what only this node's file holds; returns how
        many were installed from Redis."""
        with state_errors("suspensions_restore"):
            stored = await self.state.client.hgetall(self.state.key(HASH))
        entries = [decode(_text(k), _text(v)) for k, v in stored.items()]
        live = [e for e in entries if e.active(now)]
        expired = [e.session_hash for e in entries if not e.active(now)]
        for entry in live:
            await self._install(entry)
        known = {e.session_hash for e in live}
        for entry in self.book.list_active(now):
            if entry.session_hash not in known:
                await self._write(entry)
        if expired:
            with state_errors("suspensions_restore"):
                await self.state.client.hdel(self.state.key(HASH), *expired)
        return len(live)

    def _marked(self, entry: Suspension) -> None:
        self.tasks.spawn(self._share(entry), name="suspension_share")

    async def _share(self, entry: Suspension) -> None:
        try:
            await self._write(entry)
            await self.state.publish(SUSPENDED, entry.session_hash)
        except StateUnavailable:  # kept here and in the file; restore() shares it later
            log.error("suspension_share_failed")

    async def _write(self, entry: Suspension) -> None:
        with state_errors("suspension_write"):
            await self.state.client.hset(self.state.key(HASH), entry.session_hash, encode(entry))

    def _announced(self, session_hash: str) -> None:
        self.tasks.spawn(self._fetch(session_hash), name="suspension_fetch")

    async def _fetch(self, session_hash: str) -> None:
        try:
            with state_errors("suspension_read"):
                value = await self.state.client.hget(self.state.key(HASH), session_hash)
        except StateUnavailable:
            return
        if value is not None:
            await self._install(decode(session_hash, _text(value)))

    async def _install(self, entry: Suspension) -> None:
        self.book.install(entry)
        await asyncio.to_thread(self.book.keep, entry)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def encode(entry: Suspension) -> str:
    """``vendor|limit|since|until`` (vendor ids and limit names hold no ``|``)."""
    until = entry.until.isoformat() if entry.until else ""
    return f"{entry.vendor}|{entry.limit}|{entry.since.isoformat()}|{until}"


def decode(session_hash: str, value: str) -> Suspension:
    """The inverse of ``encode``."""
    vendor, limit, since, until = value.split("|")
    return Suspension(
        session_hash,
        vendor,
        limit,
        datetime.fromisoformat(since),
        datetime.fromisoformat(until) if until else None,
    )
