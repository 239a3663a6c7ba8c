"""The anonymous-request quota per client address (#17): in memory (local) or shared in Redis.

Contract: ``AnonymousQuota.admit(address, now)`` (``now`` in seconds of the app's clock)
counts one request relayed without a session for ``address`` in the current fixed window
and answers False once the address has used its quota there. ``LocalAnonymousQuota`` awaits
nothing around core/addressquota.py's ``AddressQuota`` of one process.
``RedisAnonymousQuota`` counts in ``<prefix>aq:<keyed hash of the address>:<window>`` (one
``INCR`` with a TTL of two windows, in a Lua script so the count and its expiry are one
step), so the quota holds once across every worker and node rather than N times; the raw
address never reaches Redis (DESIGN P3). Redis down: ``StateUnavailable`` (the 503 page):
nothing is relayed uncounted. The window follows the app's clock, which nodes share (NTP).
Not here: the window arithmetic of one process (core/addressquota.py), which requests are
anonymous (core/decision.py).
"""

from __future__ import annotations

from typing import Final, Protocol

from proxy.core.addressquota import AddressQuota
from proxy.core.keyedhash import keyed_hash
from proxy.stores.redis_state import RedisState, state_errors

# KEYS[1]: an address's counter for one window. ARGV: the quota, ttl (ms). 1: admitted.
ADMIT_SCRIPT: Final = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return count <= tonumber(ARGV[1]) and 1 or 0
"""


class AnonymousQuota(Protocol):
    """What the anonymous relay awaits (see the module doc)."""

    async def admit(self, address: str, now: float) -> bool:
        """True when ``address`` may send one more anonymous request now (and count it)."""
        ...


class LocalAnonymousQuota:
    """The fixed windows of one process."""

    def __init__(self, quota: AddressQuota | None = None) -> None:
        self.quota = quota or AddressQuota()

    async def admit(self, address: str, now: float) -> bool:
        """See ``AddressQuota.admit``."""
        return self.quota.admit(address, now)


class RedisAnonymousQuota:
    """Fixed windows shared by every worker and node, in Redis."""

    def __init__(self, state: RedisState, pepper: bytes, quota: AddressQuota | None = None) -> None:
        self.state, self.pepper = state, pepper
        shape = quota or AddressQuota()
        self.per_window, self.window_seconds = shape.per_window, shape.window_seconds
        self._admit = state.client.register_script(ADMIT_SCRIPT)

    async def admit(self, address: str, now: float) -> bool:
        """Count one request on the address's shared window; False past the quota."""
        window = str(int(now // self.window_seconds))
        hashed = keyed_hash(self.pepper, "anonymous-address", address)[:32]
        ttl = int(2 * self.window_seconds * 1000)
        with state_errors("anonymous_quota"):
            admitted = await self._admit(
                keys=[self.state.key("aq", hashed, window)], args=[self.per_window, ttl]
            )
        return bool(admitted)


def open_anonymous_quota(state: RedisState | None, pepper: bytes) -> AnonymousQuota:
    """The anonymous quota of the configured backend."""
    return LocalAnonymousQuota() if state is None else RedisAnonymousQuota(state, pepper)
