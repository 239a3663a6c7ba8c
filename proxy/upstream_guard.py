"""Which addresses the proxy may connect to: the guarded resolver and admin overrides.

Contract: ``GuardedResolver(overrides, base).resolve(host, port)`` answers only with
addresses the proxy may connect to (DESIGN P6): loopback, private, link-local, CGNAT,
multicast, metadata addresses and their IPv4-mapped/NAT64/6to4/Teredo forms are dropped, and
``ForbiddenUpstream`` is raised when nothing is left. Hosts in ``upstream_overrides`` map to
the admin's address, unchecked. ``ip_or_none`` parses an address literal (cached).
Not here: the address rules themselves (core/addresses.py), connecting (upstream_pool.py).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from proxy.core.addresses import forbidden_reason
from proxy.core.hostmap import DEFAULT_PORTS, Scheme
from proxy.logconfig import get_logger
from proxy.upstream_errors import ForbiddenUpstream

log = get_logger("upstream")

DNS_TTL: Final = 60  # seconds; only checked answers are ever cached (GuardedResolver filters)
_NUMERIC_FLAGS: Final = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


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
