"""HTTP/1.1 to vendors: a keep-alive connection pool over asyncio, responses parsed by httptools.

Contract: ``ConnectionPool.request(...)`` sends one request on an idle pooled connection or
a new one, and returns a ``PooledResponse`` once the response head is in; its body is read
with ``chunks()`` or ``read()``, and ``release()`` hands the connection back — only when the
response was read to its end and both sides allow keep-alive; otherwise it is closed. New
connections go to an address the caller's ``resolve`` returned (the guarded resolver), by
``loop.sock_connect`` to exactly that address, with TLS verified against the vendor's name
(SNI too). A key with ``via`` (review mode) is a tunnel instead: the vendor's host is still
resolved and checked first, then the connection goes to the ``via`` proxy (a loopback literal
the client validated), ``open_tunnel`` sends ``CONNECT host:port`` and needs a 200, and TLS
(or plain HTTP) to the vendor runs inside it — the same bytes as a direct connection. Such
connections are pooled and limited under their own key. Deadlines: ``connect`` (TCP, the
CONNECT answer and TLS), ``first_byte`` (from the end of the request
to the response head), ``idle_read`` (silence while the caller waits for the next body
chunk; time the caller spends elsewhere is not counted, and a full buffer pauses the socket).
A reused connection that the vendor had already closed is retried once on a fresh one when
the request can be replayed (an idempotent method, no streamed body). Failures raise
``TimeoutError`` or ``UpstreamConnectionError``; the caller turns them into patron-safe
errors.
Framing (R1): the pool frames every request body itself from what it actually sends — the
caller's Content-Length and Transfer-Encoding are never copied. Bytes get their own
Content-Length; a stream is chunked, or, when the caller declared one valid Content-Length,
sent with that length *enforced*: a stream that runs longer or shorter fails with
``RequestBodyMismatch`` and the connection is closed (no byte past the declared length is
ever written). A connection is reused only at a message boundary (``Connection.reusable``).
Limits (R3): ``limit`` connections in all and ``limit_per_host`` per vendor; a request that
waits longer than ``queue_timeout`` for a slot fails with ``UpstreamBusy`` (503); a response
left unread for ``unread_timeout`` seconds gives its slot back (``UnreadSweeper``).

Why not aiohttp's client, which the project used before: profiled in bench/relay.py at ~190
µs per relayed request, most of it generic machinery the relay switches off anyway (request
and response objects, tracing, cookie, redirect, auth and proxy plumbing, URL normalisation).
This is one socket write per request and a C parser (httptools, llhttp) — see
docs/benchmarks.md. Review mode uses this pool too (through the tunnel), so no aiohttp
client is left in the proxy.
Not here: one connection's parsing and flow control (wire.py), which addresses
are allowed (guard.py), which headers leave (core/headers.py), turning failures
into pages (upstream/client.py, web/errors.py).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Final

from proxy.upstream.errors import UpstreamBusy
from proxy.upstream.wire import (
    Connection,
    PooledResponse,
    PoolKey,
    UnreadSweeper,
    UpstreamConnectionError,
    UpstreamProtocolError,
    encode_head,
)

POOL_LIMIT: Final = 256  # open upstream connections in all (default of upstream.max_total)
POOL_LIMIT_PER_HOST: Final = 100  # per vendor (host, port, TLS) (upstream.max_per_host)
QUEUE_TIMEOUT: Final = 10.0  # seconds a request may wait for a slot (upstream.queue_timeout)
UNREAD_TIMEOUT: Final = 60.0  # seconds a response may sit unread (upstream.unread_timeout)
# RFC 9112 §6: the message's framing; the pool sets them from the body it sends (R1).
FRAMING_FIELDS: Final = frozenset({"content-length", "transfer-encoding"})
# The proxy's answer to CONNECT is a status line and a few fields (mitmproxy: one line).
MAX_CONNECT_ANSWER: Final = 8192
IDLE_KEEP: Final = 30.0  # seconds an idle pooled connection may wait for its next request
# Only these may be sent again on a fresh connection (RFC 9110 §9.2.2: "a proxy MUST NOT
# automatically retry non-idempotent requests").
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

Address = tuple[int, str, int]  # (family, ip, port): one checked answer of the resolver
Resolve = Callable[[str, int], Awaitable[Sequence[Address]]]
Body = AsyncIterable[bytes] | bytes | None


async def _within(head: asyncio.Future[None], seconds: float) -> None:
    """Wait for the response head; TimeoutError after ``seconds``. A bare timer that fails
    the head future, not ``asyncio.timeout()``: this runs on every relayed request, and the
    timer only has to fail this one future (profiled: ~14 µs → ~5 µs per request)."""
    if head.done():
        return head.result()
    timer = head.get_loop().call_later(seconds, _first_byte_missed, head)
    try:
        await head
    finally:
        timer.cancel()


def _first_byte_missed(head: asyncio.Future[None]) -> None:
    if not head.done():
        head.set_exception(TimeoutError("no response head within first_byte"))


class RequestBodyMismatch(UpstreamConnectionError):
    """A streamed body was longer or shorter than its declared Content-Length."""


class _HostSlots:
    """One vendor's connection limit, and how many requests hold or wait for it."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class ConnectionPool:
    """Keep-alive connections per (scheme, host, port), bounded per host and in all."""

    def __init__(
        self,
        resolve: Resolve,
        tls: ssl.SSLContext,
        *,
        limit: int = POOL_LIMIT,
        limit_per_host: int = POOL_LIMIT_PER_HOST,
        queue_timeout: float = QUEUE_TIMEOUT,
        unread_timeout: float | None = UNREAD_TIMEOUT,
    ) -> None:
        self._resolve = resolve
        self._tls = tls
        self._idle: dict[PoolKey, list[Connection]] = {}
        self._idle_count = 0  # idle connections hold no slot: bounded by ``limit`` apart
        self._limit = limit
        self._in_use: set[Connection] = set()
        self._total = asyncio.Semaphore(limit)
        self._per_host: dict[PoolKey, _HostSlots] = {}
        self._limit_per_host = limit_per_host
        self._queue_timeout = queue_timeout
        self._unread = None if unread_timeout is None else UnreadSweeper(unread_timeout)
        self._closed = False

    async def request(
        self,
        key: PoolKey,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: Body,
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
                await _within(conn.head, first_byte)
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
            return PooledResponse(conn, self.put_back, idle_read, self._unread)

    async def _send(
        self,
        conn: Connection,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: Body,
    ) -> None:
        """Write the request, framed by the pool itself (R1); mark it sent when all is out."""
        conn.reset(head_only=method == "HEAD")
        transport = conn.transport
        if transport is None or conn.lost:
            raise UpstreamConnectionError("connection lost")
        kept = [h for h in headers if h[0].lower() not in FRAMING_FIELDS]
        if body is None:
            framing = ("Content-Length", "0") if len(kept) != len(headers) else None
            transport.write(encode_head(method, target, kept, framing))
        elif isinstance(body, bytes):
            length = ("Content-Length", str(len(body)))
            transport.write(encode_head(method, target, kept, length) + body)
        else:
            declared = declared_length(headers)
            framing = (
                ("Transfer-Encoding", "chunked")
                if declared is None
                else ("Content-Length", str(declared))
            )
            head = encode_head(method, target, kept, framing)
            if declared == 0:  # the head alone completes the request: only after the stream
                await _write_stream(conn, body, 0)
                transport.write(head)
            else:
                transport.write(head)
                await _write_stream(conn, body, declared)
        conn.request_sent = True

    async def _acquire(self, key: PoolKey, connect: float) -> tuple[Connection, bool]:
        slots = self._per_host.get(key)
        if slots is None:
            slots = self._per_host[key] = _HostSlots(self._limit_per_host)
        slots.users += 1
        try:
            await self._wait_for_slot(slots.semaphore)
        except BaseException:
            self._leave(key, slots)
            raise
        try:
            conn = self._idle_connection(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, connect)
        except BaseException:
            self._total.release()
            slots.semaphore.release()
            self._leave(key, slots)
            raise
        self._in_use.add(conn)
        return conn, reused

    async def _wait_for_slot(self, host_limit: asyncio.Semaphore) -> None:
        """Take a per-host and a global slot within ``queue_timeout``, or UpstreamBusy (R3)."""
        if not host_limit.locked() and not self._total.locked():
            # Free slots are taken without waiting: no deadline timer to arm and cancel on
            # every request (profiled at ~10 µs a request, the common case by far).
            await host_limit.acquire()
            await self._total.acquire()
            return
        try:
            async with asyncio.timeout(self._queue_timeout):
                await host_limit.acquire()
                try:
                    await self._total.acquire()
                except BaseException:
                    host_limit.release()
                    raise
        except TimeoutError:
            raise UpstreamBusy() from None

    def _leave(self, key: PoolKey, slots: _HostSlots) -> None:
        """One request is done with a vendor's slots; forget them when nobody uses them
        (random subdomains must not grow the table without bound)."""
        slots.users -= 1
        if slots.users == 0 and not self._idle.get(key) and self._per_host.get(key) is slots:
            del self._per_host[key]

    def _idle_connection(self, key: PoolKey) -> Connection | None:
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            if not conn.lost and not conn.dirty and now - conn.idle_since < IDLE_KEEP:
                return conn
            conn.close()
        if idle is not None and not idle:
            del self._idle[key]
        return None

    async def _connect(self, key: PoolKey, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(deadline):  # a slow DNS answer counts against connect
            addresses = await self._resolve(key.host, key.port)  # checked, tunnelled or not
        if key.via is not None:  # review mode: the proxy's loopback literal, not the answers
            addresses = [(_family(key.via[0]), *key.via)]
        last: BaseException = UpstreamConnectionError("no address")
        for family, ip, port in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(loop, key)
            try:
                async with asyncio.timeout(deadline):  # TCP, the CONNECT answer and TLS
                    await loop.sock_connect(sock, (ip, port))
                    if key.via is not None:
                        await open_tunnel(loop, sock, key.authority)
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
        if conn.reusable and not self._closed and self._idle_count < self._limit:
            self._idle_count += 1
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.key, []).append(conn)
        else:
            conn.close()
        self._total.release()
        slots = self._per_host[conn.key]
        slots.semaphore.release()
        self._leave(conn.key, slots)

    def _drop(self, conn: Connection) -> None:
        conn.close()
        self.put_back(conn)

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        self._closed = True
        if self._unread is not None:
            self._unread.close()
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        self._idle_count = 0
        for conn in list(self._in_use):
            conn.close()
        await asyncio.sleep(0)  # let transports run their connection_lost


def declared_length(headers: Sequence[tuple[str, str]]) -> int | None:
    """The caller's Content-Length, when it is one unambiguous decimal number and no
    Transfer-Encoding is given (RFC 9112 §6.3); None otherwise (the pool then chunks)."""
    values = set()
    for name, value in headers:
        lower = name.lower()
        if lower == "transfer-encoding":
            return None
        if lower == "content-length":
            values.add(value.strip())
    if len(values) != 1:
        return None
    value = values.pop()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


async def _write_stream(conn: Connection, body: AsyncIterable[bytes], length: int | None) -> None:
    """Chunked when ``length`` is None; else exactly ``length`` bytes, or RequestBodyMismatch
    before a byte too many is written (the caller then closes the connection). The chunk that
    completes the length is held back until the stream has ended: a longer stream must not
    leave the vendor a complete, truncated request to act on."""
    transport = conn.transport
    assert transport is not None
    sent = 0
    held = b""
    async for chunk in body:
        if not chunk:
            continue
        sent += len(chunk)
        if length is None:
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        elif sent >= length:
            if held or sent > length:
                raise RequestBodyMismatch("the body is longer than its Content-Length")
            held = chunk
            continue
        else:
            transport.write(chunk)
        await conn.drain()
    if length is None:
        transport.write(b"0\r\n\r\n")
    elif sent != length:
        raise RequestBodyMismatch("the body is shorter than its Content-Length")
    elif held:
        transport.write(held)


async def open_tunnel(loop: asyncio.AbstractEventLoop, sock: socket.socket, authority: str) -> None:
    """Ask the HTTP proxy ``sock`` is connected to for a tunnel to ``authority`` (RFC 9110
    §9.3.6); return once it answered 200, or raise UpstreamConnectionError. Nothing may
    follow the answer's head: the vendor speaks only after the request (or TLS hello)."""
    await loop.sock_sendall(sock, encode_head("CONNECT", authority, [("Host", authority)], None))
    answer = b""
    while b"\r\n\r\n" not in answer:
        if len(answer) > MAX_CONNECT_ANSWER:
            raise UpstreamProtocolError("the proxy's CONNECT answer is too long")
        data = await loop.sock_recv(sock, MAX_CONNECT_ANSWER)
        if not data:
            raise UpstreamConnectionError("the proxy closed the connection")
        answer += data
    head, rest = answer.split(b"\r\n\r\n", 1)
    version, _, status = head.split(b"\r\n", 1)[0].partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or status.split(b" ", 1)[0] != b"200" or rest:
        raise UpstreamConnectionError("the proxy refused the tunnel")


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _returning(conn: Connection) -> Callable[[], Connection]:
    """The protocol factory for ``create_connection``: the connection built beforehand."""
    return lambda: conn


def _wrapped(exc: BaseException) -> UpstreamConnectionError:
    wrapped = UpstreamConnectionError(type(exc).__name__)
    wrapped.__cause__ = exc
    return wrapped
