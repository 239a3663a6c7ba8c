"""Connection admission: a cap per client address and a cap on all connections, at accept.

Contract: ``ConnectionCounter.admit(address)`` says whether a new connection may open (under
``per_address`` for that address, unless it is a trusted proxy's, and under ``total``);
``release`` undoes it. ``GatedSite`` is a ``web.TCPSite`` whose every accepted connection passes
an ``AdmissionGate`` first: over a cap the connection is aborted at once, before aiohttp sees a
byte, and ``connection_refused`` is logged at most once per interval with a count.
``total_cap(configured)`` keeps the global cap below the process's descriptor limit, with room
for one upstream connection per client connection plus files and databases.
Not here: slow-client deadlines (server.py's keep-alive timeout), request shape (web/errors.py).
With TLS, connections are counted once the handshake is done (asyncio hands the protocol over
only then); the handshake itself is bounded by ``ssl_handshake_timeout``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import resource
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final, cast

from aiohttp import web

from proxy.core.settings import ServerLimits
from proxy.logconfig import RateLimit, get_logger

log = get_logger("server")
# Descriptors kept free for the stores, rule files, logs and the listeners themselves.
RESERVED_DESCRIPTORS: Final = 256
MIN_TOTAL: Final = 64  # a floor, so a tiny RLIMIT_NOFILE still serves someone
REFUSAL_LOG_INTERVAL_S: Final = 10.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def total_cap(configured: int) -> int:
    """``configured``, lowered to half of what RLIMIT_NOFILE leaves (each relayed connection
    may hold an upstream descriptor too)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return min(configured, max(MIN_TOTAL, (soft - RESERVED_DESCRIPTORS) // 2))


class ConnectionCounter:
    """Open connections per address and in all; decides admission."""

    def __init__(self, per_address: int, total: int, exempt: Iterable[Network] = ()) -> None:
        self.per_address, self.total = per_address, total
        self.exempt = tuple(exempt)
        self.open: Counter[str] = Counter()
        self.open_total = 0
        self._refusals = RateLimit(REFUSAL_LOG_INTERVAL_S)

    @classmethod
    def from_settings(
        cls, limits: ServerLimits, trusted: Iterable[Network] = ()
    ) -> ConnectionCounter:
        """The caps of ``server:`` in proxy.yaml; trusted proxies have no per-address cap."""
        return cls(limits.max_connections_per_address, total_cap(limits.max_connections), trusted)

    def admit(self, address: str) -> bool:
        """Count the connection in, or refuse it (logged, rate-limited)."""
        reason = self._over(address)
        if reason is not None:
            held = self._refusals.check(reason)
            if held is not None:
                log.warning("connection_refused", reason=reason, suppressed=held)
            return False
        self.open[address] += 1
        self.open_total += 1
        return True

    def release(self, address: str) -> None:
        """The connection closed."""
        self.open_total -= 1
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def _over(self, address: str) -> str | None:
        if self.open_total >= self.total:
            return "total"
        if self.open[address] >= self.per_address and not self._exempt(address):
            return "per_address"
        return None

    def _exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.exempt)


def peer_address(transport: asyncio.BaseTransport) -> str:
    """The peer's IP address as text ('' when the transport has none)."""
    peer: Any = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class AdmissionGate(asyncio.Protocol):
    """Wraps aiohttp's protocol: admit or abort at connection_made, then only delegate."""

    __slots__ = ("_address", "_counter", "_inner")

    def __init__(self, counter: ConnectionCounter, inner: asyncio.Protocol) -> None:
        self._counter, self._inner = counter, inner
        self._address: str | None = None  # set once admitted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Abort over the cap; otherwise hand the connection to aiohttp."""
        address = peer_address(transport)
        if not self._counter.admit(address):
            cast(asyncio.Transport, transport).abort()
            return
        self._address = address
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the slot of an admitted connection."""
        if self._address is None:
            return
        self._counter.release(self._address)
        self._address = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Delegated."""
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Delegated."""
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        """Delegated."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Delegated."""
        self._inner.resume_writing()


class GatedSite(web.TCPSite):
    """A TCPSite whose connections pass an ``AdmissionGate`` first."""

    def __init__(
        self,
        runner: web.AppRunner,
        *args: Any,
        counter: ConnectionCounter,
        handshake_timeout: float = 60.0,
        **kw: Any,
    ) -> None:
        super().__init__(runner, *args, **kw)
        self.counter, self.handshake_timeout = counter, handshake_timeout

    async def start(self) -> None:
        """As ``TCPSite.start``, with the gate around aiohttp's protocol factory."""
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        counter = self.counter
        self._server = await asyncio.get_running_loop().create_server(
            lambda: AdmissionGate(counter, server()),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self.handshake_timeout if self._ssl_context else None,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
