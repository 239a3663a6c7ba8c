"""The login throttle as the login handler uses it: in memory (local) or shared in Redis.

Contract: ``LoginThrottle`` is the async face of core/throttle.py's ``Throttle`` (``blocked``,
``alarm``, ``record_failure``, ``record_success``, ``admit_login``; same arguments, same
answers). ``LocalLoginThrottle`` simply awaits nothing around the in-memory ``Throttle``.
``RedisLoginThrottle`` keeps every counter in Redis, so a card, address or network locked
through one node is locked on all, and the global alarm is raised by failures counted on
every node: each failure runs one Lua script that rolls the same two-bucket sliding window
as the core (``Throttle``'s module doc), counts, and locks, atomically for all scopes.
Keys: ``<prefix>t:<scope>:<keyed hash>`` (``t:global:-`` for the global counter), hashes of
``ws`` (window start), ``cur``, ``prev``, ``lock`` in microseconds of the app's clock, with a
TTL of the longest time they can still matter. Only keyed hashes of the card, address and
network reach Redis (the caller hashes them; DESIGN P3/P4).
``alarms_raised`` of the in-memory ``Throttle`` is still what the admin console shows; the
Redis throttle adds the alarms this node tripped to it.
Not here: the window arithmetic's reference (core/throttle.py), messages and delays
(web/card_check.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Protocol

from proxy.core.throttle import (
    MINUTE,
    LockScope,
    LoginKeys,
    Scope,
    Throttle,
    ThrottleLimits,
    ThrottleVerdict,
)
from proxy.stores.redis_state import RedisState, state_errors
from proxy.stores.sessions import from_micros, to_micros

# KEYS: one counter per scope. ARGV: now, window, lockout (µs), ttl (ms), then one limit
# per key. Returns the 1-based indexes of the keys this failure locked.
FAIL_SCRIPT: Final = """
local now, window, lockout, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local tripped = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[4 + i])
  local h = redis.call('HMGET', key, 'ws', 'cur', 'prev', 'lock')
  local ws, cur, prev = tonumber(h[1]) or now, tonumber(h[2]) or 0, tonumber(h[3]) or 0
  local elapsed = now - ws
  if elapsed >= 2 * window then ws, cur, prev = now, 0, 0
  elseif elapsed >= window then ws, cur, prev = ws + window, 0, cur end
  cur = cur + 1
  local estimate = cur + prev * (1 - (now - ws) / window)
  if estimate >= limit then
    local lock = math.max(tonumber(h[4]) or 0, now + lockout)
    redis.call('HSET', key, 'ws', ARGV[1], 'cur', 0, 'prev', 0, 'lock', string.format('%d', lock))
    tripped[#tripped + 1] = i
  else
    redis.call('HSET', key, 'ws', string.format('%d', ws), 'cur', cur, 'prev', prev)
  end
  redis.call('PEXPIRE', key, ttl)
end
return tripped
"""
# KEYS[1]: the card's login-rate counter. ARGV: limit, ttl (ms). Fixed minute, as the core.
ADMIT_SCRIPT: Final = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return count <= tonumber(ARGV[1]) and 1 or 0
"""


class LoginThrottle(Protocol):
    """What the login handler awaits (see the module doc)."""

    async def blocked(self, keys: LoginKeys, now: datetime) -> ThrottleVerdict | None: ...
    async def alarm(self, now: datetime) -> datetime | None: ...
    async def record_failure(self, keys: LoginKeys, now: datetime) -> tuple[Scope, ...]: ...
    async def record_success(self, keys: LoginKeys, now: datetime) -> None: ...
    async def admit_login(self, card_key: str, now: datetime) -> bool: ...


class LocalLoginThrottle:
    """The in-memory ``Throttle`` of one process."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle

    async def blocked(self, keys: LoginKeys, now: datetime) -> ThrottleVerdict | None:
        """See ``Throttle.blocked``."""
        return self.throttle.blocked(keys, now)

    async def alarm(self, now: datetime) -> datetime | None:
        """See ``Throttle.alarm``."""
        return self.throttle.alarm(now)

    async def record_failure(self, keys: LoginKeys, now: datetime) -> tuple[Scope, ...]:
        """See ``Throttle.record_failure``."""
        return self.throttle.record_failure(keys, now)

    async def record_success(self, keys: LoginKeys, now: datetime) -> None:
        """See ``Throttle.record_success``."""
        self.throttle.record_success(keys, now)

    async def admit_login(self, card_key: str, now: datetime) -> bool:
        """See ``Throttle.admit_login``."""
        return self.throttle.admit_login(card_key, now)


class RedisLoginThrottle:
    """Counters shared by every node, in Redis."""

    def __init__(self, state: RedisState, limits: ThrottleLimits, local: Throttle) -> None:
        self.state = state
        self.limits = limits
        self.local = local  # only for ``alarms_raised`` on the admin console
        self._fail = state.client.register_script(FAIL_SCRIPT)
        self._admit = state.client.register_script(ADMIT_SCRIPT)
        horizon = max(2 * limits.window, limits.lockout)
        self._ttl_ms = horizon // timedelta(milliseconds=1)

    def _key(self, scope: Scope, key: str) -> str:
        return self.state.key("t", scope, key)

    async def blocked(self, keys: LoginKeys, now: datetime) -> ThrottleVerdict | None:
        """The lock that refuses this login, if any (the latest-ending one)."""
        scoped = _scoped(keys)
        with state_errors("throttle_read"):
            async with self.state.client.pipeline(transaction=False) as pipe:
                for scope, key in scoped:
                    pipe.hget(self._key(scope, key), "lock")
                locks = await pipe.execute()
        verdicts = [
            ThrottleVerdict(scope, from_micros(int(lock)))
            for (scope, _), lock in zip(scoped, locks, strict=True)
            if lock is not None and to_micros(now) < int(lock)
        ]
        return max(verdicts, key=lambda verdict: verdict.until, default=None)

    async def alarm(self, now: datetime) -> datetime | None:
        """Until when the global alarm (raised by any node) lasts, or None."""
        with state_errors("throttle_read"):
            lock = await self.state.client.hget(self._key("global", "-"), "lock")
        if lock is None or to_micros(now) >= int(lock):
            return None
        return from_micros(int(lock))

    async def record_failure(self, keys: LoginKeys, now: datetime) -> tuple[Scope, ...]:
        """Count a failure in every scope at once; the scopes it locked or alarmed."""
        everywhere: list[tuple[Scope, str]] = [*_scoped(keys), ("global", "-")]
        micro = timedelta(microseconds=1)
        args: list[int | str] = [
            to_micros(now),
            self.limits.window // micro,
            self.limits.lockout // micro,
            str(self._ttl_ms),
        ]
        args += [self.limits.attempts(scope) for scope, _ in everywhere]
        with state_errors("throttle_count"):
            hit = await self._fail(keys=[self._key(s, k) for s, k in everywhere], args=args)
        tripped = tuple(everywhere[int(i) - 1][0] for i in hit)
        if "global" in tripped:
            self.local.alarms_raised += 1
        return tripped

    async def record_success(self, keys: LoginKeys, now: datetime) -> None:
        """Clear the card's counter after a good login (the other counts stay)."""
        if keys.card is not None:
            with state_errors("throttle_clear"):
                await self.state.client.delete(self._key("card", keys.card))

    async def admit_login(self, card_key: str, now: datetime) -> bool:
        """Count a good login of the card; False past ``card_logins_per_minute``."""
        minute = to_micros(now) // (MINUTE // timedelta(microseconds=1))
        key = self.state.key("t", "logins", card_key, str(minute))
        ttl = str(MINUTE // timedelta(milliseconds=1))
        with state_errors("throttle_admit"):
            admitted = await self._admit(keys=[key], args=[self.limits.card_logins_per_minute, ttl])
        return bool(admitted)


def _scoped(keys: LoginKeys) -> list[tuple[LockScope, str]]:
    scoped: list[tuple[LockScope, str]] = [("address", keys.address), ("network", keys.network)]
    return [("card", keys.card), *scoped] if keys.card is not None else scoped
