"""The per-card abuse counters as the relay uses them: in memory (local) or shared in Redis.

Contract: ``AbuseCounters`` is the async face of core/abuse.py's ``AbuseMonitor`` as the
relay needs it (``admit``, ``network_seen``, ``add_download``; same arguments, same
answers), plus ``byte_count`` (a synchronous per-response meter: one addition per body
chunk, no I/O) and ``settle`` (the meter's bytes, for the shared window, once the response
is over). ``LocalAbuseCounters`` simply awaits nothing around the process's ``AbuseMonitor``
(the meter counts straight into it; ``settle`` does nothing).
``RedisAbuseCounters`` keeps each subject's one-minute buckets in a Redis hash
``<prefix>ab:<subject>`` (fields ``r:<minute>``, ``b:<minute>``, ``d:<minute>``) and a
card's networks in ``<prefix>an:<card hash>`` (field = a keyed hash of the network, value =
when last seen): one Lua script rolls the window, sums and counts atomically, so N workers
or nodes allow the limits once, not N times. A subject is already a keyed hash (the card's
``patron_key``) or the SHA-256 session key; no card, address or network reaches Redis raw
(DESIGN P3/P4). Every key's TTL is its window, so counts of cards no longer used vanish.
Bytes: a response's meter starts from the window's bytes as this node last read them (at
``admit``, plus what it relayed since) and cuts the body once that plus its own bytes pass
the limit; ``settle`` keeps them in memory and the subject's next ``admit`` on this node adds
them in the same script (one Redis round trip per request, not two). So another node sees a
response's bytes once the card's next request reaches this node: with round-robin balancing
a card can pass the megabyte limit by about one response per process, then is refused.
Redis down: ``admit``/``network_seen``/``add_download`` raise ``StateUnavailable`` (the 503
page: nothing is relayed uncounted); unsent bytes are kept for the next try.
Not here: the window arithmetic's reference and the verdicts (core/abuse.py), suspending
(stores/suspensions.py, web/relay_guard.py).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Final, Protocol

from proxy.core.abuse import (
    MINUTE,
    AbuseLimits,
    AbuseMonitor,
    LimitCrossed,
    admission,
    first_minute,
    minute_of,
    over,
)
from proxy.core.keyedhash import keyed_hash
from proxy.stores.redis_state import RedisState, StateUnavailable, state_errors

MAX_REMEMBERED: Final = 100_000  # subjects whose last-read byte total this node keeps
NONE: Final = -1  # "no limit" in the script's arguments

# KEYS[1]: a subject's window (fields '<r|b|d>:<minute>'). ARGV: minute, first minute of the
# window, ttl (ms), the kind to add, the amount, then the minute and amount of bytes relayed
# since this node last counted (0: none; added first); for an admission also the requests,
# bytes and downloads limits (-1: none): then nothing is added when one more request would
# cross. Returns the requests, bytes and downloads in the window before the add, 1 if added.
COUNT_SCRIPT: Final = """
local minute, first, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[1], 'b:' .. ARGV[6], ARGV[7]) end
local totals = {r = 0, b = 0, d = 0}
local flat = redis.call('HGETALL', KEYS[1])
local old = {}
for i = 1, #flat, 2 do
  local kind, at = string.match(flat[i], '^(%a):(%d+)$')
  if tonumber(at) < first then old[#old + 1] = flat[i]
  else totals[kind] = totals[kind] + tonumber(flat[i + 1]) end
end
if #old > 0 then redis.call('HDEL', KEYS[1], unpack(old)) end
local add = true
if ARGV[8] then
  local lr, lb, ld = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  add = not ((lr >= 0 and totals.r + 1 > lr) or (lb >= 0 and totals.b > lb)
    or (ld >= 0 and totals.d > ld))
end
if add then redis.call('HINCRBY', KEYS[1], ARGV[4] .. ':' .. minute, ARGV[5]) end
if add or tonumber(ARGV[7]) > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {totals.r, totals.b, totals.d, add and 1 or 0}
"""
# KEYS[1]: a card's networks. ARGV: the network's keyed hash, now (s), horizon (s), ttl (ms).
# Returns 1 if the network is new within the interval, and how many networks it now holds.
NETWORK_SCRIPT: Final = """
local horizon = tonumber(ARGV[3])
local seen = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local flat = redis.call('HGETALL', KEYS[1])
local old, count = {}, 0
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) < horizon then old[#old + 1] = flat[i] else count = count + 1 end
end
if #old > 0 then redis.call('HDEL', KEYS[1], unpack(old)) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local fresh = (not seen) or tonumber(seen) < horizon
return {fresh and 1 or 0, count}
"""


class ByteMeter(Protocol):
    """One response's body bytes against its subject's bytes limit (no I/O per chunk)."""

    def add(self, size: int) -> LimitCrossed | None: ...


class AbuseCounters(Protocol):
    """What the relay awaits (see the module doc)."""

    async def admit(self, subject: str, limits: AbuseLimits, now: datetime) -> LimitCrossed | None:
        """Count one request about to be sent, or the limit it would cross (nothing counted)."""
        ...

    async def network_seen(
        self, patron_key: str, network: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """Note the card's network; crossed when too many within the interval."""
        ...

    async def add_download(
        self, subject: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """Count one document download; crossed past the limit."""
        ...

    def byte_count(self, subject: str, limits: AbuseLimits, now: datetime) -> ByteMeter:
        """A meter for one response's body."""
        ...

    async def settle(self, meter: ByteMeter) -> None:
        """The response is over: its bytes into the shared window (local: already there)."""
        ...


class LocalAbuseCounters:
    """The process's in-memory ``AbuseMonitor``."""

    def __init__(self, monitor: AbuseMonitor) -> None:
        self.monitor = monitor

    async def admit(self, subject: str, limits: AbuseLimits, now: datetime) -> LimitCrossed | None:
        """See ``AbuseMonitor.admit``."""
        return self.monitor.admit(subject, limits, now)

    async def network_seen(
        self, patron_key: str, network: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """See ``AbuseMonitor.network_seen``."""
        return self.monitor.network_seen(patron_key, network, limits, now)

    async def add_download(
        self, subject: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """See ``AbuseMonitor.add_download``."""
        return self.monitor.add_download(subject, limits, now)

    def byte_count(self, subject: str, limits: AbuseLimits, now: datetime) -> ByteMeter:
        """See ``AbuseMonitor.byte_count``: counts into the window as the body streams."""
        return self.monitor.byte_count(subject, limits, now)

    async def settle(self, meter: ByteMeter) -> None:
        """Nothing to do: the meter counted into the window already."""


class RedisByteMeter:
    """A response's bytes on top of the window's bytes as last read; settled afterwards."""

    __slots__ = ("base", "limits", "minute", "size", "subject")

    def __init__(self, subject: str, base: int, limits: AbuseLimits, minute: int) -> None:
        self.subject, self.base, self.limits, self.minute = subject, base, limits, minute
        self.size = 0

    def add(self, size: int) -> LimitCrossed | None:
        """Count ``size`` bytes; the bytes limit once the total passes it."""
        self.size += size
        return over("bytes", self.base + self.size, self.limits.bytes)


class RedisAbuseCounters:
    """Counters shared by every worker and node, in Redis."""

    def __init__(self, state: RedisState, pepper: bytes) -> None:
        self.state, self.pepper = state, pepper
        self._count = state.client.register_script(COUNT_SCRIPT)
        self._network = state.client.register_script(NETWORK_SCRIPT)
        self._bytes_read: OrderedDict[str, int] = OrderedDict()  # subject → bytes at admit
        self._unsent: OrderedDict[str, tuple[int, int]] = OrderedDict()  # → (minute, bytes)

    async def _run(
        self, subject: str, limits: AbuseLimits, now: datetime, kind: str, amount: int, *gate: int
    ) -> tuple[int, int, int, bool]:
        minute = minute_of(now)
        ttl = (limits.interval + MINUTE) // timedelta(milliseconds=1)
        unsent = self._unsent.pop(subject, (minute, 0))
        args: list[int | str] = [minute, first_minute(minute, limits.interval), ttl, kind, amount]
        try:
            with state_errors("abuse_count"):
                reply = await self._count(
                    keys=[self.state.key("ab", subject)], args=[*args, *unsent, *gate]
                )
        except StateUnavailable:
            self._keep_unsent(subject, *unsent)
            raise
        requests, size, downloads, added = (int(value) for value in reply)
        self._remember(subject, size)
        return requests, size, downloads, bool(added)

    async def admit(self, subject: str, limits: AbuseLimits, now: datetime) -> LimitCrossed | None:
        """Count one request on every node's window, unless it would cross a limit."""
        gate = [_limit(limits.requests), _limit(limits.bytes), _limit(limits.downloads)]
        requests, size, downloads, _ = await self._run(subject, limits, now, "r", 1, *gate)
        return admission((requests, size, downloads), limits)

    async def add_download(
        self, subject: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """Count one download on the shared window; crossed past the limit."""
        *_, downloads, _ = await self._run(subject, limits, now, "d", 1)
        return over("downloads", downloads + 1, limits.downloads)

    async def network_seen(
        self, patron_key: str, network: str, limits: AbuseLimits, now: datetime
    ) -> LimitCrossed | None:
        """Note the card's network (as a keyed hash) in the shared set; crossed when a new
        network makes more than the limit within the interval."""
        if limits.card_networks is None:
            return None
        stamp = int(now.timestamp())
        interval = limits.card_networks_interval
        args: list[int | str] = [
            keyed_hash(self.pepper, "abuse-network", network),
            stamp,
            stamp - int(interval.total_seconds()),
            (interval + MINUTE) // timedelta(milliseconds=1),
        ]
        with state_errors("abuse_networks"):
            fresh, count = await self._network(keys=[self.state.key("an", patron_key)], args=args)
        if int(fresh) and int(count) > limits.card_networks:
            return LimitCrossed("card_networks", int(count), limits.card_networks)
        return None

    def byte_count(self, subject: str, limits: AbuseLimits, now: datetime) -> ByteMeter:
        """A meter starting from the window's bytes as this node read them at ``admit``, plus
        the bytes this node relayed since and has not yet added."""
        base = self._bytes_read.get(subject, 0) + self._unsent.get(subject, (0, 0))[1]
        return RedisByteMeter(subject, base, limits, minute_of(now))

    async def settle(self, meter: ByteMeter) -> None:
        """Keep the response's bytes for the subject's next count on this node (no Redis
        round trip of its own: the relay's hot path pays one script per request)."""
        if isinstance(meter, RedisByteMeter) and meter.size:
            self._keep_unsent(meter.subject, meter.minute, meter.size)

    def _keep_unsent(self, subject: str, minute: int, size: int) -> None:
        """Add to the subject's unsent bytes (counted at the later minute: never too early)."""
        if not size:
            return
        old_minute, old_size = self._unsent.pop(subject, (minute, 0))
        self._unsent[subject] = (max(minute, old_minute), old_size + size)
        while len(self._unsent) > MAX_REMEMBERED:
            self._unsent.popitem(last=False)

    def _remember(self, subject: str, size: int) -> None:
        self._bytes_read[subject] = size
        self._bytes_read.move_to_end(subject)
        while len(self._bytes_read) > MAX_REMEMBERED:
            self._bytes_read.popitem(last=False)


def _limit(threshold: int | None) -> int:
    return NONE if threshold is None else threshold


def open_abuse_counters(
    state: RedisState | None, monitor: AbuseMonitor, pepper: bytes
) -> AbuseCounters:
    """The abuse counters of the configured backend."""
    return LocalAbuseCounters(monitor) if state is None else RedisAbuseCounters(state, pepper)
