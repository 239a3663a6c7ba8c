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
Not here: which addresses are allowed (upstream.py's GuardedResolver), which headers leave
(core/headers.py), turning failures into pages (upstream.py, web/errors.py).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

POOL_LIMIT: Final = 256  # open upstream connections in all
POOL_LIMIT_PER_HOST: Final = 100  # per vendor (host, port, TLS): caps what one vendor can hog
HIGH_WATER: Final = 256 * 1024  # buffered body bytes at which the socket is paused
LOW_WATER: Final = 64 * 1024  # ...and resumed
IDLE_KEEP: Final = 30.0  # seconds an idle pooled connection may wait for its next request
NO_BODY_STATUSES: Final = frozenset({204, 304})  # RFC 9110 §6.4.1: never a body
# Only these may be sent again on a fresh connection (RFC 9110 §9.2.2: "a proxy MUST NOT
# automatically retry non-idempotent requests").
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# A CR, LF or NUL in a request line or header would start a new header or request
# (request splitting, RFC 9112 §2.2): refused before anything is written.
_UNSAFE: Final = re.compile(r"[\r\n\x00]")

Address = tuple[int, str, int]  # (family, ip, port): one checked answer of the resolver
Resolve = Callable[[str, int], Awaitable[Sequence[Address]]]


class UpstreamConnectionError(ConnectionError):
    """The connection failed, was reset, or the vendor sent a malformed response."""


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Where a connection goes: scheme, the host name (SNI, certificate) and the port."""

    scheme: str
    host: str
    port: int


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the response currently arriving on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: PoolKey) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._write_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self.reset(head_only=False)

    def reset(self, *, head_only: bool) -> None:
        """Prepare for the next response (``head_only``: a HEAD request, no body follows)."""
        self.head: asyncio.Future[None] = self.loop.create_future()
        self.head_only = head_only
        self.status = 0
        self.reason = b""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self.error: BaseException | None = None
        self.received = False
        self._interim = False
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.complete:  # bytes after a HEAD response's head, or unasked-for: never reused
            self.keep_alive = False
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamConnectionError("the vendor switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamConnectionError(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.head.done() and self.until_close and not self.complete and exc is None:
            self.complete = True  # a body delimited by the end of the connection (RFC 9112 §6.3)
        elif not self.complete:
            self._fail(UpstreamConnectionError("the vendor closed the connection"))
        self._wake()
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_exception(UpstreamConnectionError("connection lost"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    # httptools callbacks ---------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): wait for the final
            self._interim = True
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        names = {name.lower() for name, _ in self.raw_headers}
        bodiless = self.head_only or status in NO_BODY_STATUSES
        self.until_close = not bodiless and not names & {b"content-length", b"transfer-encoding"}
        if self.head_only:
            self.complete = True  # llhttp would wait for Content-Length bytes that never come
            self.keep_alive = False
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self.raw_headers = []
            return
        self.complete = True
        self._wake()

    # used by the pool and the response -------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: an unawaited head must not warn
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def drain(self) -> None:
        """Wait while the socket's write buffer is full (streamed request bodies)."""
        if self._write_paused and not self.lost:
            self._write_waiter = self.loop.create_future()
            try:
                await self._write_waiter
            finally:
                self._write_waiter = None
        if self.lost:
            raise UpstreamConnectionError("connection lost while sending")

    async def next_chunk(self, idle_read: float) -> bytes | None:
        """The next piece of the body; None at its end."""
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self._reading_paused and self.buffered < LOW_WATER and self.transport:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            waiter = self._waiter = self.loop.create_future()
            # A bare timer, not asyncio.timeout(): this runs for every chunk of a big body, and
            # the timer only has to fail this one future (profiled: 3× cheaper per chunk).
            timer = self.loop.call_later(idle_read, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None

    @property
    def reusable(self) -> bool:
        """Back to the pool only after a whole response, with keep-alive, still open."""
        return self.complete and self.keep_alive and not self.lost and not self.chunks

    def close(self) -> None:
        """Close the socket (an unread or failed response, or shutdown)."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class PooledResponse:
    """A vendor's response head, and its body as it arrives."""

    __slots__ = ("_conn", "_decoded", "_headers", "_pool", "_released", "idle_read", "status")

    def __init__(self, conn: _Connection, pool: ConnectionPool, idle_read: float) -> None:
        self._conn = conn
        self._pool = pool
        self._released = False
        self._headers: CIMultiDictProxy[str] | None = None
        self._decoded: list[tuple[str, str]] | None = None
        self.idle_read = idle_read
        self.status = conn.status

    @property
    def reason(self) -> str:
        return self._conn.reason.decode("latin-1")

    @property
    def host(self) -> str:
        return self._conn.key.host

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(self._conn.raw_headers)

    @property
    def decoded_headers(self) -> list[tuple[str, str]]:
        """The header fields as text, in order, duplicates kept (RFC 9110 §5.5: latin-1)."""
        if self._decoded is None:
            self._decoded = [
                (n.decode("latin-1"), v.decode("latin-1")) for n, v in self._conn.raw_headers
            ]
        return self._decoded

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            self._headers = CIMultiDictProxy(CIMultiDict(self.decoded_headers))
        return self._headers

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_type(self) -> str:
        """The media type, lowercased, without parameters (as aiohttp reports it)."""
        value = self.headers.get("Content-Type")
        if not value:
            return "application/octet-stream"
        return value.split(";", 1)[0].strip().lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, still encoded, as it arrives; at its end the connection goes back."""
        while (chunk := await self._conn.next_chunk(self.idle_read)) is not None:
            yield chunk
        self.release()

    async def read(self) -> bytes:
        """The whole body."""
        conn = self._conn
        if conn.complete and not conn.error:  # all of it is here already (small bodies)
            body = b"".join(conn.chunks)
            conn.chunks.clear()
            conn.buffered = 0
            self.release()
            return body
        return b"".join([chunk async for chunk in self.chunks()])

    def release(self) -> None:
        """Give the connection back (or close it, when the body was not read to its end)."""
        if not self._released:
            self._released = True
            self._pool.put_back(self._conn)


def _encode_head(
    method: str, target: str, headers: Sequence[tuple[str, str]], framing: tuple[str, str] | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        if _UNSAFE.search(name) or _UNSAFE.search(value):
            raise ValueError(f"unsafe character in header {name!r}")
        lines.append(f"{name}: {value}")
    if framing is not None:
        lines.append(f"{framing[0]}: {framing[1]}")
    if _UNSAFE.search(method) or _UNSAFE.search(target) or " " in target:
        raise ValueError("unsafe request line")
    # surrogateescape: header bytes the server decoded that way go out as they came in
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


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
        self._idle: dict[PoolKey, list[_Connection]] = {}
        self._in_use: set[_Connection] = set()
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
            return PooledResponse(conn, self, idle_read)

    async def _send(
        self,
        conn: _Connection,
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
            transport.write(_encode_head(method, target, headers, None))
            return
        if isinstance(body, bytes):
            kept = [h for h in headers if h[0].lower() != "content-length"]
            length = ("Content-Length", str(len(body)))
            transport.write(_encode_head(method, target, kept, length) + body)
            return
        chunked = "content-length" not in given
        framing = ("Transfer-Encoding", "chunked") if chunked else None
        transport.write(_encode_head(method, target, headers, framing))
        async for chunk in body:
            if chunk:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await conn.drain()
        if chunked:
            transport.write(b"0\r\n\r\n")

    async def _acquire(self, key: PoolKey, connect: float) -> tuple[_Connection, bool]:
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

    def _idle_connection(self, key: PoolKey) -> _Connection | None:
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.lost and now - conn.idle_since < IDLE_KEEP:
                return conn
            conn.close()
        return None

    async def _connect(self, key: PoolKey, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        addresses = await self._resolve(key.host, key.port)
        last: BaseException = UpstreamConnectionError("no address")
        for family, ip, port in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(loop, key)
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

    def put_back(self, conn: _Connection) -> None:
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

    def _drop(self, conn: _Connection) -> None:
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


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no data from the vendor within idle_read"))


def _returning(conn: _Connection) -> Callable[[], _Connection]:
    """The protocol factory for ``create_connection``: the connection built beforehand."""
    return lambda: conn


def _wrapped(exc: BaseException) -> UpstreamConnectionError:
    wrapped = UpstreamConnectionError(type(exc).__name__)
    wrapped.__cause__ = exc
    return wrapped
