"""HTTP/1.1 to vendors: a keep-alive connection pool over asyncio, responses parsed by httptools.

Contract: ``ConnectionPool.request(...)`` sends one request on an idle pooled connection or
a new one, and returns a ``PooledResponse`` once the response head is in; its body is read
with ``chunks()`` or ``read()``, and ``release()`` hands the connection back — only when the
response was read to its end and both sides allow keep-alive; otherwise it is closed. New
connections go to an address the caller's ``resolve`` returned (the guarded resolver), by
``loop.sock_connect`` to exactly that address, with TLS verified against the vendor's name
(SNI too). Deadlines: ``connect`` (TCP and TLS), ``first_byte`` (from the end of the request
to the response head), ``idle_read`` (silence while the caller waits for the next body
chunk; time the caller spends elsewhere is not counted, and a full buffer pauses the socket).
A reused connection that the vendor had already closed is retried once on a fresh one when
the request can be replayed (an idempotent method, no streamed body). Failures raise
``TimeoutError`` or ``UpstreamConnectionError``; the caller turns them into patron-safe
errors.

Why not aiohttp's client, which the project used before: profiled in bench/relay.py at ~190
µs per relayed request, most of it generic machinery the relay switches off anyway (request
and response objects, tracing, cookie, redirect, auth and proxy plumbing, URL normalisation).
This is one socket write per request and a C parser (httptools, llhttp) — see
docs/benchmarks.md. aiohttp's client remains for review mode's recording HTTP proxy.
Not here: one connection's parsing and flow control (upstream_wire.py), which addresses
are allowed (upstream_guard.py), which headers leave (core/headers.py), turning failures
into pages (upstream.py, web/errors.py).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Final

from proxy.upstream_wire import (
    Connection,
    PooledResponse,
    PoolKey,
    UpstreamConnectionError,
    encode_head,
)

POOL_LIMIT: Final = 256  # open upstream connections in all
POOL_LIMIT_PER_HOST: Final = 100  # per vendor (host, port, TLS): caps what one vendor can hog
IDLE_KEEP: Final = 30.0  # seconds an idle pooled connection may wait for its next request
# Only these may be sent again on a fresh connection (RFC 9110 §9.2.2: "a proxy MUST NOT
# automatically retry non-idempotent requests").
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

Address = tuple[int, str, int]  # (family, ip, port): one checked answer of the resolver
Resolve = Callable[[str, int], Awaitable[Sequence[Address]]]


class ConnectionPool:
    """Keep-alive connections per (scheme, host, port), bounded per host and in all."""

    def __init__(
        self,
        resolve: Resolve,
        tls: ssl.SSLContext,
        *,
        limit: int,
        limit_per_host: int,
    ) -> None:
        self._resolve = resolve
        self._tls = tls
        self._idle: dict[PoolKey, list[Connection]] = {}
        self._in_use: set[Connection] = set()
        self._total = asyncio.Semaphore(limit)
        self._per_host: dict[PoolKey, asyncio.Semaphore] = {}
        self._limit_per_host = limit_per_host
        self._closed = False

    async def request(
        self,
        key: PoolKey,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None,
        *,
        connect: float,
        first_byte: float,
        idle_read: float,
    ) -> PooledResponse:
        """Send the request; return once the response head is in (body unread)."""
        replayable = method in IDEMPOTENT_METHODS and (body is None or isinstance(body, bytes))
        while True:
            conn, reused = await self._acquire(key, connect)
            try:
                await self._send(conn, method, target, headers, body)
                async with asyncio.timeout(first_byte):
                    await conn.head
            except TimeoutError:
                self._drop(conn)
                raise
            except (UpstreamConnectionError, OSError) as exc:  # OSError: also ssl.SSLError
                self._drop(conn)
                if reused and replayable and not conn.received:
                    continue  # the vendor had closed this idle connection: once more, fresh
                if isinstance(exc, UpstreamConnectionError):
                    raise
                raise _wrapped(exc) from exc
            except BaseException:
                self._drop(conn)
                raise
            return PooledResponse(conn, self.put_back, idle_read)

    async def _send(
        self,
        conn: Connection,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None,
    ) -> None:
        conn.reset(head_only=method == "HEAD")
        transport = conn.transport
        if transport is None or conn.lost:
            raise UpstreamConnectionError("connection lost")
        given = {name.lower() for name, _ in headers}
        if body is None:
            transport.write(encode_head(method, target, headers, None))
            return
        if isinstance(body, bytes):
            kept = [h for h in headers if h[0].lower() != "content-length"]
            length = ("Content-Length", str(len(body)))
            transport.write(encode_head(method, target, kept, length) + body)
            return
        chunked = "content-length" not in given
        framing = ("Transfer-Encoding", "chunked") if chunked else None
        transport.write(encode_head(method, target, headers, framing))
        async for chunk in body:
            if chunk:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await conn.drain()
        if chunked:
            transport.write(b"0\r\n\r\n")

    async def _acquire(self, key: PoolKey, connect: float) -> tuple[Connection, bool]:
        host_limit = self._per_host.get(key)
        if host_limit is None:
            host_limit = self._per_host[key] = asyncio.Semaphore(self._limit_per_host)
        await host_limit.acquire()
        try:
            await self._total.acquire()
        except BaseException:
            host_limit.release()
            raise
        try:
            conn = self._idle_connection(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, connect)
        except BaseException:
            self._total.release()
            host_limit.release()
            raise
        self._in_use.add(conn)
        return conn, reused

    def _idle_connection(self, key: PoolKey) -> Connection | None:
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.lost and now - conn.idle_since < IDLE_KEEP:
                return conn
            conn.close()
        return None

    async def _connect(self, key: PoolKey, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        addresses = await self._resolve(key.host, key.port)
        last: BaseException = UpstreamConnectionError("no address")
        for family, ip, port in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(loop, key)
            try:
                async with asyncio.timeout(deadline):
                    await loop.sock_connect(sock, (ip, port))
                    await loop.create_connection(
                        _returning(conn),
                        sock=sock,
                        ssl=self._tls if key.scheme == "https" else None,
                        server_hostname=key.host if key.scheme == "https" else None,
                        ssl_handshake_timeout=deadline if key.scheme == "https" else None,
                    )
                return conn
            except OSError as exc:  # also TimeoutError and ssl.SSLError: try the next address
                sock.close()
                last = exc
        if isinstance(last, TimeoutError | UpstreamConnectionError):
            raise last
        raise _wrapped(last)

    def put_back(self, conn: Connection) -> None:
        """A response is done with its connection: keep it for the next request, or close."""
        if conn not in self._in_use:
            return
        self._in_use.discard(conn)
        if conn.reusable and not self._closed:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.key, []).append(conn)
        else:
            conn.close()
        self._total.release()
        self._per_host[conn.key].release()

    def _drop(self, conn: Connection) -> None:
        conn.close()
        self.put_back(conn)

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._in_use):
            conn.close()
        await asyncio.sleep(0)  # let transports run their connection_lost


def _returning(conn: Connection) -> Callable[[], Connection]:
    """The protocol factory for ``create_connection``: the connection built beforehand."""
    return lambda: conn


def _wrapped(exc: BaseException) -> UpstreamConnectionError:
    wrapped = UpstreamConnectionError(type(exc).__name__)
    wrapped.__cause__ = exc
    return wrapped
