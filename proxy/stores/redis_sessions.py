"""Patron sessions in Redis (``state.backend: redis``): the ``SessionStore`` every worker and
node shares.

Contract: the same as ``stores/sessions.py`` (the token is returned once, only its SHA-256
is a key; idle and absolute expiry; ``max_per_patron``; delete listeners), with these keys:
``<prefix>s:<token hash>`` a hash (library, ptype, patron key — a keyed card hash —, the
per-session pseudonym key, times in microseconds) whose TTL is the earlier of the idle and
the absolute deadline, renewed when a visit is recorded (a Lua script that never recreates a
session deleted meanwhile); ``<prefix>p:<patron key>`` a sorted set of that card's session
keys by creation time (for ``max_per_card`` and ``delete_by_patron``). No card, name, PIN,
address or URL is ever written (DESIGN P3, P4).
Every deletion here (logout, purge, ``delete_by_patron``, oldest-beyond-the-cap) deletes the
keys at once, so every node refuses the token from then on, and is published on the bus so
each node's delete listeners (vendor cookie jars, pseudonym caches, abuse counters) run. A
session that simply expires (TTL) is noticed by ``purge_expired`` on each node that saw it.
A Redis outage raises ``StateUnavailable`` (503) from every method: nothing is relayed
without a session check, and a login is refused rather than half-recorded.
Not here: the connection and the bus (redis_state.py), the local backends (sessions.py).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from proxy.logconfig import get_logger
from proxy.stores.redis_state import RedisState, state_errors
from proxy.stores.sessions import (
    MAX_TOKEN_CHARS,
    PSEUDONYM_KEY_BYTES,
    TOKEN_BYTES,
    TOUCH_GRANULARITY,
    DeleteListener,
    Session,
    from_micros,
    to_micros,
    token_key,
)

log = get_logger("sessions")
DELETED: Final = "session_deleted"  # the bus message kind
SCAN_BATCH: Final = 500
# Record a visit only if the session still exists (a plain HSET would recreate a hash that
# another node deleted a moment ago, bringing back a logged-out session).
TOUCH_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'l', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisSessionStore:
    """Sessions shared through Redis; this node remembers only which keys it has seen."""

    def __init__(self, state: RedisState, idle: timedelta, lifetime: timedelta) -> None:
        self.state = state
        self.idle = idle
        self.lifetime = lifetime
        self._listeners: list[DeleteListener] = []
        self._seen: dict[str, None] = {}  # keys this node served: their TTL end fires listeners
        self._touch = state.client.register_script(TOUCH_SCRIPT)
        state.on(DELETED, self._notify)

    def _skey(self, key: str) -> str:
        return self.state.key("s", key)

    def _pkey(self, patron_key: str) -> str:
        return self.state.key("p", patron_key)

    def _ttl_ms(self, session: Session, now: datetime) -> int:
        end = min(session.last_seen + self.idle, session.expires_at)
        return max(1, (end - now) // timedelta(milliseconds=1))

    async def create(
        self,
        *,
        library: str,
        ptype: str | None,
        patron_key: str | None,
        now: datetime,
        max_per_patron: int | None = None,
    ) -> tuple[str, Session]:
        """Start a session; returns the raw token (for the cookie, shown once) and the session."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(
            key=token_key(token),
            library=library,
            ptype=ptype,
            patron_key=patron_key,
            pseudonym_key=secrets.token_bytes(PSEUDONYM_KEY_BYTES),
            created_at=now,
            last_seen=now,
            expires_at=now + self.lifetime,
        )
        with state_errors("session_create"):
            async with self.state.client.pipeline(transaction=True) as pipe:
                pipe.hset(self._skey(session.key), mapping=_fields(session))
                pipe.pexpire(self._skey(session.key), self._ttl_ms(session, now))
                if patron_key is not None:
                    pipe.zadd(self._pkey(patron_key), {session.key: to_micros(now)})
                    pipe.pexpire(self._pkey(patron_key), int(self.lifetime.total_seconds() * 1000))
                await pipe.execute()
        self._seen[session.key] = None
        if patron_key is not None and max_per_patron is not None:
            await self._remove((await self._patron_keys(patron_key))[:-max_per_patron])
        return token, session

    async def get(self, token: str, now: datetime) -> Session | None:
        """The live session of a token, its visit recorded; None once expired or unknown."""
        if not 0 < len(token) <= MAX_TOKEN_CHARS:
            return None
        key = token_key(token)
        with state_errors("session_get"):
            raw = await self.state.client.hgetall(self._skey(key))
        if not raw:
            return None
        session = _session(key, raw)
        if session.expired(now, self.idle):
            await self._remove([key])
            return None
        self._seen[key] = None
        if now - session.last_seen >= TOUCH_GRANULARITY:
            session = session.seen(now)
            with state_errors("session_touch"):
                args = [to_micros(now), self._ttl_ms(session, now)]
                await self._touch(keys=[self._skey(key)], args=args)
        return session

    async def delete(self, token: str) -> bool:
        """End a session (logout) on every node; False when there was none."""
        if not 0 < len(token) <= MAX_TOKEN_CHARS:
            return False
        return await self._remove([token_key(token)]) == 1

    async def delete_by_patron(self, patron_key: str) -> int:
        """End every session of one card, on every node; returns how many."""
        return await self._remove(await self._patron_keys(patron_key))

    async def purge_expired(self, now: datetime) -> int:
        """Redis expires sessions itself (TTL); fire the listeners for keys this node saw that
        are gone, so its caches forget them too. Returns how many were noticed."""
        keys = list(self._seen)
        if not keys:
            return 0
        with state_errors("session_purge"):
            async with self.state.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(self._skey(key))
                alive = await pipe.execute()
        gone = [key for key, exists in zip(keys, alive, strict=True) if not exists]
        for key in gone:
            self._notify(key)
        return len(gone)

    async def count_active(self, now: datetime) -> int:
        """How many sessions live in Redis (every node's)."""
        return len(await self.live_keys(now))

    async def live_keys(self, now: datetime) -> list[str]:
        """Keys (token hashes) of the live sessions of every node (Redis expired the rest)."""
        return await self._scan_keys()

    async def _scan_keys(self) -> list[str]:
        start = len(self._skey(""))
        with state_errors("session_scan"):
            return [
                key.decode()[start:]
                async for key in self.state.client.scan_iter(
                    match=self._skey("*"), count=SCAN_BATCH
                )
            ]

    async def count_by_library(self, now: datetime) -> dict[str, int]:
        """Live sessions per member library, of every node (the console's operations page;
        a SCAN and one pipelined HGET per session: a staff question, not a per-request one)."""
        counts: dict[str, int] = {}
        for library in (await self._libraries()).values():
            counts[library] = counts.get(library, 0) + 1
        return counts

    async def delete_by_library(self, library: str) -> int:
        """End every session of one member library on every node ("end all sessions of X")."""
        found = await self._libraries()
        return await self._remove([key for key, lib in found.items() if lib == library])

    async def delete_keys(self, keys: list[str]) -> int:
        """End the sessions with these store keys on every node (staff, by session hash)."""
        return await self._remove(keys)

    async def flush(self) -> int:
        """Nothing is held back: every write went to Redis when it happened."""
        return 0

    async def check(self) -> None:
        """``StateUnavailable`` when Redis does not answer (``/healthz``)."""
        await self.state.check()

    def add_delete_listener(self, fn: DeleteListener) -> None:
        """Call ``fn(session.key)`` after a session is deleted, on whichever node deleted it."""
        self._listeners.append(fn)

    async def close(self) -> None:
        """Forget what this node saw (the Redis client is closed by its owner)."""
        self._seen.clear()

    async def _patron_keys(self, patron_key: str) -> list[str]:
        """The card's session keys, oldest first, dropping those that expired meanwhile."""
        with state_errors("session_index"):
            members = await self.state.client.zrange(self._pkey(patron_key), 0, -1)
            keys = [_text(m) for m in members]
            async with self.state.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.exists(self._skey(key))
                alive = await pipe.execute()
            dead = [k for k, exists in zip(keys, alive, strict=True) if not exists]
            if dead:
                await self.state.client.zrem(self._pkey(patron_key), *dead)
        return [k for k, exists in zip(keys, alive, strict=True) if exists]

    async def _libraries(self) -> dict[str, str]:
        """Each live session's member library, by key (those expiring meanwhile left out)."""
        keys = await self._scan_keys()
        with state_errors("session_scan"):
            async with self.state.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(self._skey(key), "b")
                libraries = await pipe.execute()
        return {key: lib.decode() for key, lib in zip(keys, libraries, strict=True) if lib}

    async def _remove(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        with state_errors("session_delete"):
            async with self.state.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(self._skey(key), "k")
                owners = await pipe.execute()
            async with self.state.client.pipeline(transaction=True) as pipe:
                for key, owner in zip(keys, owners, strict=True):
                    pipe.delete(self._skey(key), self.state.key("j", key))
                    if owner:
                        pipe.zrem(self._pkey(owner.decode()), key)
                results = await pipe.execute()
        gone = _deleted(keys, owners, results)
        for key in gone:
            self._notify(key)
            await self.state.publish(DELETED, key)
        return len(gone)

    def _notify(self, key: str) -> None:
        self._seen.pop(key, None)
        for fn in self._listeners:
            try:
                fn(key)
            except Exception as exc:  # one broken listener must not keep others from cleaning up
                log.error("session_listener_failed", error=type(exc).__name__)


def _deleted(keys: Sequence[str], owners: Sequence[object], results: Sequence[object]) -> list[str]:
    """The keys whose session hash DEL actually removed (the results of ``_remove``'s pipe)."""
    gone, at = [], 0
    for key, owner in zip(keys, owners, strict=True):
        if results[at]:
            gone.append(key)
        at += 2 if owner else 1
    return gone


def _text(member: Any) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)


def _fields(s: Session) -> dict[Any, Any]:
    """The hash of one session (short field names: 10,000 sessions fit in a few MB)."""
    fields: dict[Any, Any] = {
        "b": s.library,
        "x": s.pseudonym_key,
        "c": to_micros(s.created_at),
        "l": to_micros(s.last_seen),
        "e": to_micros(s.expires_at),
    }
    if s.ptype is not None:
        fields["t"] = s.ptype
    if s.patron_key is not None:
        fields["k"] = s.patron_key
    return fields


def _session(key: str, raw: Mapping[Any, Any]) -> Session:
    """A session from HGETALL's answer (bytes keys and values: the client does not decode)."""
    ptype, patron = raw.get(b"t"), raw.get(b"k")
    return Session(
        key=key,
        library=sys.intern(raw[b"b"].decode()),
        ptype=None if ptype is None else sys.intern(ptype.decode()),
        patron_key=None if patron is None else patron.decode(),
        pseudonym_key=bytes(raw[b"x"]),
        created_at=from_micros(int(raw[b"c"])),
        last_seen=from_micros(int(raw[b"l"])),
        expires_at=from_micros(int(raw[b"e"])),
    )
