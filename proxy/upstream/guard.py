"""Which addresses the proxy may connect to: the guarded resolver and admin overrides.

Contract: ``GuardedResolver(overrides, base).resolve(host, port)`` answers only with
addresses the proxy may connect to (DESIGN P6): loopback, private, link-local, CGNAT,
multicast, metadata addresses and their IPv4-mapped/NAT64/6to4/Teredo forms are dropped, and
``ForbiddenUpstream`` is raised when nothing is left. Hosts in ``upstream_overrides`` map to
the admin's address, unchecked. ``ip_or_none`` parses an address literal (cached).
``BoundedResolver`` is the DNS behind the guard (R14): getaddrinfo on its own small thread
pool (never the loop's default executor, which session writes and file reads share), at most
``per_domain`` lookups at once per registrable domain, failed lookups remembered for
``negative_ttl`` seconds, and a lookup is handed to a thread only when one is free, so a
cancelled request's waiting lookup never runs.
Why threads and not an async resolver (aiodns/c-ares): getaddrinfo keeps the system's
resolution (/etc/hosts, nsswitch, search domains) that admins and tests rely on, and needs
no new C dependency (aiodns is not installed here); bounding and queueing are what R14 needs.
Not here: the address rules themselves (core/addresses.py), connecting (pool.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from publicsuffixlist import PublicSuffixList

from proxy.core.addresses import forbidden_reason
from proxy.core.hostmap import DEFAULT_PORTS, Scheme
from proxy.logconfig import get_logger
from proxy.upstream.errors import ForbiddenUpstream

log = get_logger("upstream")

DNS_TTL: Final = 60  # seconds; only checked answers are ever cached (GuardedResolver filters)
_NUMERIC_FLAGS: Final = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
NEGATIVE_CACHE_SIZE: Final = 4096  # remembered failed hosts; cleared beyond (random names)

# socket.getaddrinfo's shape: (host, port, family, type, proto, flags) → answers
AddrInfo = tuple[Any, ...]
GetAddrInfo = Callable[[str, int, int, int, int, int], Sequence[AddrInfo]]


@dataclass(frozen=True, slots=True)
class Override:
    """Where an admin-mapped vendor host really is: ``http://127.0.0.1:9001``."""

    scheme: Scheme
    host: str
    port: int

    @classmethod
    def parse(cls, origin: str) -> Override:
        """Parse an origin already validated by ``Settings`` (scheme http/https, a host)."""
        parts = urlsplit(origin)
        scheme: Scheme = "https" if parts.scheme == "https" else "http"
        return cls(scheme, parts.hostname or "", parts.port or DEFAULT_PORTS[scheme])


def parse_overrides(raw: Mapping[str, str]) -> dict[str, Override]:
    """``Settings.upstream_overrides`` as values, keyed by lowercase vendor host."""
    return {host.lower(): Override.parse(origin) for host, origin in raw.items()}


@functools.lru_cache(maxsize=1024)  # per request (hosts repeat); ipaddress parsing is slow
def ip_or_none(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip("[]"))
    except ValueError:
        return None


def _answer_reason(answer: ResolveResult) -> str | None:
    addr = ip_or_none(answer["host"])
    return "not an IP address" if addr is None else forbidden_reason(addr)


def _literal_result(hostname: str, addr: IPv4Address | IPv6Address, port: int) -> ResolveResult:
    family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    return ResolveResult(
        hostname=hostname, host=str(addr), port=port, family=family, proto=0, flags=_NUMERIC_FLAGS
    )


def refused(host: str, reason: str) -> ForbiddenUpstream:
    log.warning("upstream_refused", host=host, reason=reason)
    return ForbiddenUpstream(host, reason)


class GuardedResolver(AbstractResolver):
    """A resolver that never answers with an address the proxy must not connect to.

    Hosts in ``upstream_overrides`` map to the override's address, unchecked (the admin chose
    it) and with the port asked for. Any other host is resolved by ``base``; forbidden
    addresses are dropped and ``ForbiddenUpstream`` is raised if none is left.

    No DNS-rebinding window: aiohttp's connector connects to exactly the addresses this
    method returns (and caches only those), it never resolves the name a second time. The
    address that was checked is the address that is connected to.
    """

    def __init__(self, overrides: Mapping[str, Override], base: AbstractResolver) -> None:
        self._overrides = overrides
        self._base = base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        override = self._overrides.get(host.lower())
        if override is not None:
            return await self._resolve_override(host, port, family, override)
        literal = ip_or_none(host)  # aiohttp skips resolvers for IP literals; just in case
        if literal is not None:
            reason = forbidden_reason(literal)
            if reason is not None:
                raise refused(host, reason)
            return [_literal_result(host, literal, port)]
        answers = await self._base.resolve(host, port, family)
        reasons = [_answer_reason(answer) for answer in answers]
        allowed = [answer for answer, why in zip(answers, reasons, strict=True) if why is None]
        if not allowed:
            raise refused(host, next(filter(None, reasons), "no address"))
        return allowed

    async def _resolve_override(
        self, host: str, port: int, family: socket.AddressFamily, override: Override
    ) -> list[ResolveResult]:
        literal = ip_or_none(override.host)
        if literal is not None:
            return [_literal_result(host, literal, port)]
        return await self._base.resolve(override.host, port, family)

    async def close(self) -> None:
        await self._base.close()


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # bundled list; no network


@functools.lru_cache(maxsize=4096)
def lookup_domain(host: str) -> str:
    """The registrable domain whose lookups share a limit (``a1.x.example.co.uk`` →
    ``example.co.uk``): random subdomains of one ``domains:`` rule count as one."""
    return _suffixes().privatesuffix(host) or host


class _Slots:
    """A domain's lookup limit, and how many lookups hold or wait for it."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class BoundedResolver(AbstractResolver):
    """getaddrinfo on its own threads, bounded per domain, failures cached (R14)."""

    def __init__(
        self,
        *,
        threads: int = 4,
        per_domain: int = 2,
        negative_ttl: float = 10.0,
        getaddrinfo: GetAddrInfo = socket.getaddrinfo,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="clamshell-dns")
        self._threads = asyncio.Semaphore(threads)
        self._per_domain_limit = per_domain
        self._domains: dict[str, _Slots] = {}
        self._negative_ttl = negative_ttl
        self._failed: dict[str, float] = {}  # host → until when its failure is remembered
        self._getaddrinfo = getaddrinfo
        self._clock = clock

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key = host.lower()
        until = self._failed.get(key)
        if until is not None and until > self._clock():
            raise OSError(f"{host}: lookup failed recently")
        try:
            infos = await self._lookup(key, host, port, family)
        except socket.gaierror:
            self._remember_failure(key)
            raise
        return [_result_of(host, info) for info in infos if _usable(info)]

    async def _lookup(
        self, key: str, host: str, port: int, family: socket.AddressFamily
    ) -> Sequence[AddrInfo]:
        """Wait for the domain's slot and a free thread, then look up on that thread.

        Both slots are given back when the thread is done, not when the waiter goes away:
        a lookup that already runs still holds its thread (getaddrinfo cannot be stopped).
        """
        domain = lookup_domain(key)
        slots = self._domains.get(domain) or self._domains.setdefault(
            domain, _Slots(self._per_domain_limit)
        )
        slots.users += 1
        try:
            await slots.semaphore.acquire()
            try:
                await self._threads.acquire()
            except BaseException:
                slots.semaphore.release()
                raise
        except BaseException:
            self._leave(domain, slots)
            raise
        args = (host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)
        future = self._executor.submit(self._getaddrinfo, *args)
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: _call_soon(loop, self._done, domain, slots))
        return await asyncio.wrap_future(future)

    def _done(self, domain: str, slots: _Slots) -> None:
        self._threads.release()
        slots.semaphore.release()
        self._leave(domain, slots)

    def _leave(self, domain: str, slots: _Slots) -> None:
        slots.users -= 1
        if slots.users == 0 and self._domains.get(domain) is slots:
            del self._domains[domain]

    def _remember_failure(self, key: str) -> None:
        if self._negative_ttl <= 0:
            return
        if len(self._failed) >= NEGATIVE_CACHE_SIZE:
            self._failed.clear()
        self._failed[key] = self._clock() + self._negative_ttl

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """From the lookup's thread: hand its slots back on the loop (unless it has closed)."""
    with contextlib.suppress(RuntimeError):  # the loop closed while a lookup still ran
        loop.call_soon_threadsafe(callback, *args)


def _usable(info: AddrInfo) -> bool:
    """IPv4 and IPv6 stream answers (an IPv6 answer without its fields: IPv6 is off)."""
    family, address = info[0], info[4]
    return family == socket.AF_INET or (family == socket.AF_INET6 and len(address) >= 3)


def _result_of(host: str, info: AddrInfo) -> ResolveResult:
    family, _, proto, _, address = info
    return ResolveResult(
        hostname=host,
        host=str(address[0]),
        port=int(address[1]),
        family=family,
        proto=proto,
        flags=_NUMERIC_FLAGS,
    )
