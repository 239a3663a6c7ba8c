"""The local block list shared by every node through Redis (``state.backend: redis``, #15).

Contract: ``SharedBlockList`` is a ``BlockList`` (same methods, same answers, blocking I/O:
call it from a worker thread, as the login path and the admin console already do) whose list
lives in one Redis hash, ``<prefix>blk``: field = the card's keyed hash (as in
``blocks.sqlite3``; never a card number), value = JSON ``[library, case, reason, by,
created, expires]``. A block added on any node (admin console, ``patrons block``) refuses
that card's login on every node at once; a lift on any node lifts it everywhere.
``is_blocked`` reads Redis, and raises ``StateUnavailable`` when Redis is down (the login
is refused with the 503 page, never let through unchecked).
Each node's ``blocks.sqlite3`` mirrors the shared list: written through on this node's own
adds and lifts, and replaced by Redis's list at start-up (``restore``), whenever blocks are
listed, and when another node announces a change on the bus (``blocks_changed``).
``<prefix>blk:seeded`` marks that Redis holds the list: at start-up without it (a new Redis,
or one that lost its data) the node seeds Redis from its file, so blocks survive even the
loss of Redis's data as long as one node's file remains (a block made or lifted while that
node was away is then as that node last saw it).
It uses a synchronous Redis client of its own: every caller is in a worker thread already.
Not here: the file (blocks.py), the refusal (web/card_check.py), tracing (abuse_report.py).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from proxy.core.settings import State
from proxy.logconfig import get_logger
from proxy.stores.blocks import Block, BlockList, BlockListError, check_prefix
from proxy.stores.redis_state import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    BUS_CHANNEL,
    COMMAND_RETRIES,
    RedisState,
    StateUnavailable,
    read_password,
    state_errors,
)
from proxy.tasks import TaskOwner

if TYPE_CHECKING:
    import redis

log = get_logger("blocks")
HASH: Final = "blk"
SEEDED: Final = "blk:seeded"
CHANGED: Final = "blocks_changed"  # the bus message kind


class SharedBlockList(BlockList):
    """Blocks in Redis for every node, mirrored into this node's file."""

    _redis: redis.Redis
    _prefix: str = ""
    _closed: bool = False  # set by close(): a late bus refresh must not touch the file

    @classmethod
    def open_shared(cls, data_dir: Path, state: State) -> SharedBlockList:
        """Open the file, connect (lazily) and ``restore``."""
        blocks = cls.open(data_dir)
        blocks._redis = sync_client(state)
        blocks._prefix = state.key_prefix
        blocks.restore()
        return blocks

    def _key(self, name: str) -> str:
        return self._prefix + name

    def follow(self, state: RedisState, tasks: TaskOwner) -> None:
        """Refresh this node's file when another node announces a change (bus)."""
        state.on(CHANGED, lambda _: tasks.spawn(asyncio.to_thread(self.refresh), name=CHANGED))

    def refresh(self) -> None:
        """Replace the file with the shared list (a failure is logged; retried next time)."""
        if self._closed:
            return
        try:
            entries = self._fetch()
            if not self._closed:
                self.replace_all(entries)
        except StateUnavailable:
            log.error("blocks_mirror_failed")

    def announce(self) -> None:
        """Tell the other nodes the list changed (they refresh their files); best effort."""
        try:
            with state_errors("publish"):
                self._redis.publish(self._key(BUS_CHANNEL), f"{CHANGED} - blocks")
        except StateUnavailable:
            log.error("blocks_announce_failed")

    def restore(self) -> None:
        """Mirror Redis's list into the file, or seed Redis from the file when it holds none
        (a failure is logged: logins fail closed until Redis answers)."""
        try:
            with state_errors("blocks_restore"):
                if self._redis.exists(self._key(SEEDED)):
                    self.replace_all(self._fetch())
                    return
                mine = super().list_all()
                with self._redis.pipeline(transaction=True) as pipe:
                    for entry in mine:
                        pipe.hsetnx(self._key(HASH), entry.card_hash, encode(entry))
                    pipe.set(self._key(SEEDED), "1")
                    pipe.execute()
        except StateUnavailable:
            log.error("blocks_restore_failed")

    def add(self, entry: Block) -> None:
        """Block a card on every node, then in this node's file."""
        with state_errors("block_write"), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(HASH), entry.card_hash, encode(entry))
            pipe.set(self._key(SEEDED), "1")
            pipe.execute()
        super().add(entry)
        self.announce()

    def is_blocked(self, card_hash: str, now: datetime) -> bool:
        """True when the shared list holds the card and its block has not expired."""
        with state_errors("block_read"):
            value = self._redis.hget(self._key(HASH), card_hash)
        return value is not None and decode(card_hash, value).active(now)

    def list_all(self) -> list[Block]:
        """Every block on the shared list, newest first (the file is refreshed with them)."""
        entries = self._fetch()
        self.replace_all(entries)
        return sorted(entries, key=lambda entry: entry.created, reverse=True)

    def drop_expired(self, now: datetime) -> int:
        """Delete blocks whose expiry has passed, everywhere; how many."""
        return self._lift([e for e in self._fetch() if not e.active(now)])

    def lift_case(self, case: str) -> int:
        """Lift the block(s) of a case number on every node; how many."""
        return self._lift([e for e in self._fetch() if e.case == case])

    def lift_prefix(self, prefix: str) -> int:
        """Lift the one block whose card hash starts with ``prefix``, on every node.

        Raises:
            BlockListError: the prefix is too short, not hex, or matches several blocks.
        """
        prefix = check_prefix(prefix)
        found = [e for e in self._fetch() if e.card_hash.startswith(prefix)]
        if len(found) > 1:
            raise BlockListError(f"{len(found)} blocks start with {prefix}; give more digits")
        return self._lift(found)

    def close(self) -> None:
        """Close the file and the Redis client."""
        self._closed = True
        super().close()
        self._redis.close()

    def _fetch(self) -> list[Block]:
        with state_errors("block_read"):
            stored = self._redis.hgetall(self._key(HASH))
        return [decode(_text(k), v) for k, v in stored.items()]

    def _lift(self, entries: list[Block]) -> int:
        if not entries:
            return 0
        hashes = [entry.card_hash for entry in entries]
        with state_errors("block_write"):
            lifted = int(self._redis.hdel(self._key(HASH), *hashes))
        self.forget(hashes)
        self.announce()
        return lifted


def sync_client(state: State) -> redis.Redis:
    """A synchronous client for ``state.url``, with the async client's timeouts and retry
    (redis is imported here, in redis mode only: see stores/redis_state.py)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    assert state.url is not None  # the settings validator requires it for redis
    return redis.Redis.from_url(
        state.url,
        password=read_password(state.password_file),
        socket_connect_timeout=state.connect_timeout,
        socket_timeout=state.command_timeout,
        retry=Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), COMMAND_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def encode(entry: Block) -> str:
    """The JSON value of one block (times as ISO strings)."""
    expires = entry.expires.isoformat() if entry.expires else None
    created = entry.created.isoformat()
    return json.dumps([entry.library, entry.case, entry.reason, entry.by, created, expires])


def decode(card_hash: str, value: bytes | str) -> Block:
    """The inverse of ``encode``."""
    library, case, reason, by, created, expires = json.loads(value)
    return Block(
        card_hash,
        library,
        case,
        reason,
        by,
        datetime.fromisoformat(created),
        datetime.fromisoformat(expires) if expires else None,
    )


def open_block_list(data_dir: Path, state: State) -> BlockList:
    """The block list of the configured backend: the file, or shared through Redis."""
    if state.backend == "redis":
        return SharedBlockList.open_shared(data_dir, state)
    return BlockList.open(data_dir)
