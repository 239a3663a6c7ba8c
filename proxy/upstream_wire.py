"""One HTTP/1.1 connection to a vendor: writing a request head, parsing the response.

Contract: ``Connection`` is the ``asyncio.Protocol`` of one keep-alive connection; it feeds
what arrives to httptools (llhttp) and keeps the current response's head, body chunks and
completeness, with back-pressure (a full buffer pauses the socket) and an ``idle_read``
deadline while a reader waits. ``PooledResponse`` is the caller's view of one response;
``encode_head`` builds a request head and refuses CR, LF and NUL anywhere in it.
Not here: choosing, opening, limiting and reusing connections (upstream_pool.py).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

HIGH_WATER: Final = 256 * 1024  # buffered body bytes at which the socket is paused
LOW_WATER: Final = 64 * 1024  # ...and resumed
NO_BODY_STATUSES: Final = frozenset({204, 304})  # RFC 9110 §6.4.1: never a body
# A CR, LF or NUL in a request line or header would start a new header or request
# (request splitting, RFC 9112 §2.2): refused before anything is written.
_UNSAFE: Final = re.compile(r"[\r\n\x00]")


class UpstreamConnectionError(ConnectionError):
    """The connection failed, was reset, or the vendor sent a malformed response."""


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Where a connection goes: scheme, the host name (SNI, certificate) and the port."""

    scheme: str
    host: str
    port: int


class Connection(asyncio.Protocol):
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

    __slots__ = ("_conn", "_decoded", "_give_back", "_headers", "_released", "idle_read", "status")

    def __init__(
        self, conn: Connection, give_back: Callable[[Connection], None], idle_read: float
    ) -> None:
        self._conn = conn
        self._give_back = give_back
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
            self._decoded = decode_fields(self._conn.raw_headers)
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
            self._give_back(self._conn)


def decode_fields(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Header fields as text, in order, duplicates kept (RFC 9110 §5.5: latin-1 at most)."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


def encode_head(
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


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no data from the vendor within idle_read"))
