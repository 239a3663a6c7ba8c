"""Pseudonym epoch keys agreed by every node through Redis (``state.backend: redis``).

Contract: each node keeps its ``EpochKeyStore`` (memory for the relay, ``keys.sqlite3``); a
key is the same on every node because the first node to offer one for an epoch wins:
``sync()`` offers every key this node holds with ``SET <prefix>ek:<epoch id> key NX`` and
adopts the stored key where it differs (in memory and in its file). It runs at start-up,
after a node makes a key (announced on the bus so the others fetch it at once) and after
each retention round (which writes the next epochs' keys ahead of time, so in steady state
every node agrees before an epoch starts). A key in Redis expires when its retention ends
(``EXPIREAT`` = epoch end + ``retention.epoch_key_days``; the ``never`` epoch does not);
``destroyed(cutoff)`` tells every node to destroy its copies older than the cutoff at once,
so after a retention round no node can compute an old pseudonym any more (DESIGN P5).
Not here: the keys' file and cache (epochkeys.py), deriving pseudonyms (core/pseudonym.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Final

from proxy.core.pseudonym import epoch_span
from proxy.logconfig import get_logger
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.redis_state import RedisState, StateUnavailable, state_errors
from proxy.tasks import TaskOwner

log = get_logger("epochkeys")
MINTED: Final = "epoch_minted"  # bus message kinds
DESTROY: Final = "epochs_destroy"


class SharedEpochKeys:
    """Keeps this node's epoch keys equal to every other node's."""

    def __init__(
        self, state: RedisState, store: EpochKeyStore, tasks: TaskOwner, keep: timedelta
    ) -> None:
        self.state, self.store, self.tasks, self.keep = state, store, tasks, keep
        store.add_mint_listener(self._minted)
        state.on(MINTED, lambda epoch: tasks.spawn(self.fetch(epoch), name="epoch_fetch"))
        state.on(DESTROY, lambda cutoff: tasks.spawn(self._destroy(cutoff), name="epoch_destroy"))

    async def sync(self) -> int:
        """Offer this node's keys, adopt those another node offered first; how many adopted."""
        held = self.store.known()
        epochs = sorted(held)
        if not epochs:
            return 0
        with state_errors("epoch_keys_sync"):
            async with self.state.client.pipeline(transaction=False) as pipe:
                for epoch in epochs:
                    pipe.set(self._key(epoch), held[epoch], nx=True, exat=self._expiry(epoch))
                    pipe.get(self._key(epoch))
                answers = await pipe.execute()
        adopted = 0
        for epoch, stored in zip(epochs, answers[1::2], strict=True):
            if stored is not None and _raw(stored) != held[epoch]:
                await asyncio.to_thread(self.store.adopt, epoch, _raw(stored))
                adopted += 1
        if adopted:
            log.info("epoch_keys_adopted", count=adopted)
        return adopted

    async def fetch(self, epoch: str) -> None:
        """Adopt the key another node announced (when this node's differs or is missing)."""
        try:
            with state_errors("epoch_key_fetch"):
                stored = await self.state.client.get(self._key(epoch))
        except StateUnavailable:
            return
        if stored is not None and self.store.known().get(epoch) != _raw(stored):
            await asyncio.to_thread(self.store.adopt, epoch, _raw(stored))

    async def destroyed(self, cutoff: datetime) -> None:
        """After this node's retention round: the keys whose epoch ended by ``cutoff`` leave
        Redis (their expiry would remove them too) and every other node destroys its copies."""
        start = len(self._key(""))
        with state_errors("epoch_keys_destroy"):
            doomed = [
                key
                async for key in self.state.client.scan_iter(match=self._key("*"))
                if _ended_by(_raw(key).decode()[start:], cutoff)
            ]
            if doomed:
                await self.state.client.delete(*doomed)
        await self.state.publish(DESTROY, str(int(cutoff.timestamp())))

    def _minted(self, epoch: str) -> None:
        self.tasks.spawn(self._share(epoch), name="epoch_share")

    async def _share(self, epoch: str) -> None:
        try:
            await self.sync()
            await self.state.publish(MINTED, epoch)
        except StateUnavailable:  # the next sync (retention round, restart) agrees
            log.error("epoch_key_share_failed")

    async def _destroy(self, cutoff: str) -> None:
        when = datetime.fromtimestamp(int(cutoff), UTC)
        destroyed = await asyncio.to_thread(self.store.destroy_older_than, when)
        log.info("epoch_keys_destroyed", count=destroyed)

    def _key(self, epoch: str) -> str:
        return self.state.key("ek", epoch)

    def _expiry(self, epoch: str) -> int | None:
        _, end = epoch_span(epoch)
        return None if end is None else int((end + self.keep).timestamp())


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _ended_by(epoch: str, cutoff: datetime) -> bool:
    try:
        _, end = epoch_span(epoch)
    except ValueError:  # not an id of ours: leave it
        return False
    return end is not None and end <= cutoff
