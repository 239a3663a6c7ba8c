"""R14: slow DNS stays in its own bounded pool and never delays the loop's default executor.

The blocking lookup is a stand-in for getaddrinfo (it plays the network's slow DNS); the
bounding, queueing, cancellation and negative cache under test are the real resolver's.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from proxy.upstream.guard import BoundedResolver, GuardedResolver


class SlowDns:
    """A blocking getaddrinfo that answers 93.184.215.14 after ``delay`` or when released."""

    def __init__(self, delay: float = 0.0, *, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.asked: list[str] = []
        self.release = threading.Event()

    def __call__(self, host: str, port: int, *_: Any) -> Sequence[tuple[Any, ...]]:
        self.asked.append(host)
        if self.delay:
            time.sleep(self.delay)
        else:
            self.release.wait(5)
        if self.fail:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]


async def test_slow_lookups_do_not_delay_the_default_executor() -> None:
    """R14: twenty slow lookups of random subdomains leave run_in_executor(None) work fast."""
    dns = SlowDns(delay=0.5)
    resolver = GuardedResolver({}, BoundedResolver(threads=2, per_domain=2, getaddrinfo=dns))
    lookups = [
        asyncio.ensure_future(resolver.resolve(f"r{i}.vendor.example", 443)) for i in range(20)
    ]
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    for _ in range(6):  # e.g. session writes, each needing a default-executor thread
        await loop.run_in_executor(None, time.sleep, 0.01)
    assert time.monotonic() - started < 0.3
    for lookup in lookups:
        lookup.cancel()
    await asyncio.gather(*lookups, return_exceptions=True)
    await resolver.close()
    assert len(dns.asked) <= 4  # two threads: the other lookups waited, then were cancelled


async def test_a_cancelled_queued_lookup_never_runs() -> None:
    """R14: a lookup waiting for its domain's slot that is cancelled does not run later."""
    dns = SlowDns()
    resolver = BoundedResolver(threads=4, per_domain=1, getaddrinfo=dns)
    first = asyncio.ensure_future(resolver.resolve("a.vendor.example", 443))
    queued = asyncio.ensure_future(resolver.resolve("b.vendor.example", 443))
    later = asyncio.ensure_future(resolver.resolve("c.vendor.example", 443))
    await asyncio.sleep(0.05)
    queued.cancel()
    dns.release.set()
    answers = await asyncio.gather(first, later)
    assert [a[0]["host"] for a in answers] == ["93.184.215.14"] * 2
    assert queued.cancelled()
    assert dns.asked == ["a.vendor.example", "c.vendor.example"]
    await resolver.close()


async def test_lookups_of_one_domain_are_limited_not_others() -> None:
    """R14: random subdomains of one domain share its limit; another domain still resolves."""
    dns = SlowDns()
    resolver = BoundedResolver(threads=4, per_domain=1, getaddrinfo=dns)
    flood = [
        asyncio.ensure_future(resolver.resolve(f"r{i}.flood.example.co.uk", 443)) for i in range(5)
    ]
    other = asyncio.ensure_future(resolver.resolve("www.jstor.org", 443))
    await asyncio.sleep(0.05)
    assert dns.asked == ["r0.flood.example.co.uk", "www.jstor.org"]
    dns.release.set()
    await asyncio.gather(*flood, other)
    await resolver.close()


async def test_failed_lookups_are_remembered_briefly() -> None:
    """R14: a host that does not resolve is not looked up again within the negative TTL."""
    now = [0.0]
    dns = SlowDns(delay=0.001, fail=True)
    resolver = BoundedResolver(negative_ttl=10, getaddrinfo=dns, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(OSError):
            await resolver.resolve("nx.vendor.example", 443)
    assert dns.asked == ["nx.vendor.example"]
    now[0] = 11.0
    with pytest.raises(OSError):
        await resolver.resolve("nx.vendor.example", 443)
    assert len(dns.asked) == 2
    await resolver.close()
