"""Usage statistics gathered by every process into Redis, written to SQLite by one leader.

Contract: each process still counts in memory (core/usage.py: no Redis call per request) and,
every few seconds, ``push``es its drained counters: ``HINCRBY`` on one hash per day,
``<prefix>u:<day>``, fields ``usage|vendor|library|measure``, ``login|library|outcome``,
``tp|vendor|host|kind``, ``start|rule|database|library`` and ``uh|host`` (#17); unique
patrons go into a HyperLogLog per (day, vendor, library),
``<prefix>hll:<day>:<vendor>|<library>``, as keyed hashes of (day, patron key) under the
pepper, so the same patron on two nodes counts once and nothing in Redis names anyone. The
HyperLogLogs expire shortly after their day ends (the daily key is destroyed at rollover).
``flush_if_leader(stats)``: one process at a time holds ``<prefix>lead`` (``SET NX PX``,
renewed by its holder) and moves the day hashes into the statistics file: a Lua script takes
a hash and deletes it atomically, the rows are written with ``StatsStore.add`` (uniques as
the HyperLogLog's count, merged by maximum), and on a failed write the counts go back to
Redis. So the file has a single writer per deployment (the leader's node).
Not here: counting (core/usage.py), the file (stats.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from proxy.core.keyedhash import keyed_hash
from proxy.core.usage import Drained, UsageDelta
from proxy.stores.redis_state import RedisState, state_errors
from proxy.stores.stats import StatsStore

LEASE_MS: Final = 15_000  # a leader that stops renewing is replaced after this
HLL_GRACE: Final = timedelta(minutes=10)  # the leader's last flush of a day still sees it
DAY_KEEP_S: Final = 3 * 86_400  # an unflushed day hash (no leader for days) expires
MEASURES: Final = ("sessions", "requests", "bytes", "downloads")
TAKE_SCRIPT: Final = """
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"""
RENEW_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class SharedUsage:
    """Pushes a process's counters to Redis; the leader writes them to the stats file."""

    def __init__(self, state: RedisState, pepper: bytes) -> None:
        self.state, self.pepper = state, pepper
        self._take = state.client.register_script(TAKE_SCRIPT)
        self._renew = state.client.register_script(RENEW_SCRIPT)

    async def push(self, drained: Drained, now: datetime) -> None:
        """Add one drain to Redis (``StateUnavailable``: the caller keeps it for later);
        ``now`` (the app's clock) sets when each day's HyperLogLog expires."""
        fields = _fields(drained)
        with state_errors("usage_push"):
            async with self.state.client.pipeline(transaction=False) as pipe:
                for iso, counts in fields.items():
                    for name, n in counts.items():
                        pipe.hincrby(self.state.key("u", iso), name, n)
                    pipe.expire(self.state.key("u", iso), DAY_KEEP_S)
                for (day, vendor, library), patrons in drained.patrons.items():
                    hll = self._hll(day.isoformat(), vendor, library)
                    pipe.pfadd(hll, *(self._element(day, p) for p in sorted(patrons)))
                    ends = datetime.combine(day, time(), UTC) + _DAY + HLL_GRACE
                    pipe.pexpire(hll, max(1, (ends - now) // timedelta(milliseconds=1)))
                await pipe.execute()

    async def flush_if_leader(self, stats: StatsStore) -> bool:
        """When this process leads: move every day's counters into ``stats``."""
        lead = self.state.key("lead")
        with state_errors("usage_lead"):
            if not await self._renew(keys=[lead], args=[self.state.node, LEASE_MS]):
                return False
            days = [k async for k in self.state.client.scan_iter(match=self.state.key("u", "*"))]
        for day_key in days:
            await self._move(_text(day_key), stats)
        return True

    async def _move(self, day_key: str, stats: StatsStore) -> None:
        with state_errors("usage_take"):
            flat = await self._take(keys=[day_key])
        counts = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        day = date.fromisoformat(day_key.rsplit(":", 1)[1])
        drained = await self._drained(day, counts)
        try:
            await asyncio.to_thread(stats.add, drained)
        except Exception:
            with state_errors("usage_return"):
                async with self.state.client.pipeline(transaction=False) as pipe:
                    for name, n in counts.items():
                        pipe.hincrby(day_key, name, n)
                    await pipe.execute()
            raise

    async def _drained(self, day: date, counts: dict[str, int]) -> Drained:
        drained = Drained()
        for name, n in counts.items():
            kind, _, rest = name.partition("|")
            parts = rest.split("|")
            if kind == "usage":
                vendor, library, measure = parts
                delta = drained.usage.setdefault((day, vendor, library), UsageDelta())
                setattr(delta, measure, getattr(delta, measure) + n)
            elif kind == "login":
                drained.logins[(day, parts[0], parts[1])] += n
            elif kind == "tp":
                drained.third_party[(day, parts[0], parts[1], parts[2])] += n
            elif kind == "start":
                drained.starts[(day, parts[0], parts[1], parts[2])] += n
            elif kind == "uh":
                drained.unknown_hosts[(day, parts[0])] += n
        with state_errors("usage_uniques"):
            for key, delta in drained.usage.items():
                delta.uniques = await self.state.client.pfcount(
                    self._hll(day.isoformat(), *key[1:])
                )
        return drained

    def _hll(self, day: str, vendor: str, library: str) -> str:
        return self.state.key("hll", day, f"{vendor}|{library}")

    def _element(self, day: date, patron: str) -> str:
        """A keyed hash of (day, patron): unlinkable across days and without the pepper."""
        return keyed_hash(self.pepper, "usage-unique", f"{day.isoformat()}|{patron}")[:32]


_DAY: Final = timedelta(days=1)


def _fields(drained: Drained) -> dict[str, Counter[str]]:
    """The day hashes' increments (vendor, database and library ids and hosts hold no ``|``)."""
    out: dict[str, Counter[str]] = {}
    for (day, vendor, library), delta in drained.usage.items():
        counts = out.setdefault(day.isoformat(), Counter())
        for measure in MEASURES:
            counts[f"usage|{vendor}|{library}|{measure}"] += getattr(delta, measure)
    for (day, library, outcome), n in drained.logins.items():
        out.setdefault(day.isoformat(), Counter())[f"login|{library}|{outcome}"] += n
    for (day, vendor, host, kind), n in drained.third_party.items():
        out.setdefault(day.isoformat(), Counter())[f"tp|{vendor}|{host}|{kind}"] += n
    for (day, rule, database, library), n in drained.starts.items():
        out.setdefault(day.isoformat(), Counter())[f"start|{rule}|{database}|{library}"] += n
    for (day, host), n in drained.unknown_hosts.items():
        out.setdefault(day.isoformat(), Counter())[f"uh|{host}"] += n
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
