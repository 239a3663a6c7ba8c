"""Vendor cookie jars shared through Redis (``state.backend: redis``).

Contract: the relay keeps using the in-memory ``JarRegistry`` (core/cookiejar.py: RFC 6265
semantics and the per-jar bound); in redis mode it calls ``load`` before it builds a vendor
request and ``save`` after a vendor response stored cookies. A session's jars live in one
hash, ``<prefix>j:<session key>``, one field per vendor id, each a compact JSON list of the
live cookies; the hash expires with the session (its TTL is copied from the session's key
by a Lua script that writes nothing once the session is gone, so a jar is never written for
a logged-out session) and the session store deletes it with the session (DESIGN P5).
``load`` replaces the local jar only when the stored bytes changed since this node last saw
them. Two nodes answering the same session at the same instant: the last ``save`` wins,
as two tabs of one browser would race on one cookie.
Not here: cookie parsing and matching (core), the session store (redis_sessions.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from proxy.core.cookiejar import CookieJar, StoredCookie
from proxy.stores.redis_state import RedisState, state_errors
from proxy.stores.sessions import from_micros, to_micros

# Write the jar only while its session lives, with the session's remaining lifetime.
SAVE_SCRIPT: Final = """
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""


class RedisJars:
    """Loads and saves one (session, vendor) jar at a time; remembers what it last saw."""

    def __init__(self, state: RedisState) -> None:
        self.state = state
        self._save = state.client.register_script(SAVE_SCRIPT)
        self._seen: dict[tuple[str, str], bytes] = {}

    async def load(self, jar: CookieJar, session_key: str, vendor_id: str, now: datetime) -> None:
        """Bring the local jar up to date with Redis."""
        with state_errors("jar_load"):
            stored = await self.state.client.hget(self.state.key("j", session_key), vendor_id)
        data = stored.encode() if isinstance(stored, str) else stored or b""
        if self._seen.get((session_key, vendor_id)) == data:
            return
        jar.restore(decode(data), now)
        self._remember(session_key, vendor_id, data)

    async def save(self, jar: CookieJar, session_key: str, vendor_id: str, now: datetime) -> None:
        """Write the local jar to Redis (while the session lives)."""
        data = encode(jar.snapshot(now))
        keys = [self.state.key("j", session_key), self.state.key("s", session_key)]
        with state_errors("jar_save"):
            await self._save(keys=keys, args=[vendor_id, data])
        self._remember(session_key, vendor_id, data)

    def forget(self, session_key: str) -> None:
        """A session ended (a delete listener): drop what this node remembers of it."""
        for key in [k for k in self._seen if k[0] == session_key]:
            del self._seen[key]

    def _remember(self, session_key: str, vendor_id: str, data: bytes) -> None:
        self._seen[(session_key, vendor_id)] = data


def encode(items: list[tuple[StoredCookie, datetime]]) -> bytes:
    """The compact form: one short list per cookie, times in microseconds."""
    rows = [
        [
            c.name,
            c.value,
            c.domain,
            int(c.host_only),
            c.path,
            int(c.secure),
            int(c.http_only),
            None if c.expires is None else to_micros(c.expires),
            to_micros(c.created),
            c.same_site,
            to_micros(seen),
        ]
        for c, seen in items
    ]
    return json.dumps(rows, separators=(",", ":")).encode() if rows else b""


def decode(data: bytes) -> list[tuple[StoredCookie, datetime]]:
    """The inverse of ``encode`` (empty bytes: an empty jar)."""
    rows: list[list[Any]] = json.loads(data) if data else []
    return [
        (
            StoredCookie(
                name=name,
                value=value,
                domain=domain,
                host_only=bool(host_only),
                path=path,
                secure=bool(secure),
                http_only=bool(http_only),
                expires=None if expires is None else from_micros(expires),
                created=from_micros(created),
                same_site=same_site,
            ),
            from_micros(seen),
        )
        for name, value, domain, host_only, path, secure, http_only, expires, created, same_site, seen in rows  # noqa: E501
    ]
