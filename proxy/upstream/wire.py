"""One HTTP/1.1 connection to a vendor: writing a request head, parsing the response.

Contract: ``Connection`` is the ``asyncio.Protocol`` of one keep-alive connection; it feeds
what arrives to httptools (llhttp) and keeps the current response's head, body chunks and
completeness, with back-pressure (a full buffer pauses the socket) and an ``idle_read``
deadline while a reader waits. A response head is bounded (MAX_HEAD bytes, MAX_FIELDS
fields of at most MAX_FIELD_SIZE, MAX_INTERIM 1xx answers, a reason phrase without control
bytes) and so is the non-body data after it (trailers, chunk extensions): past a limit the
connection is closed with ``UpstreamProtocolError``. A byte after the end of a response
(a second response in the same packet, or anything on an idle connection) marks the
connection ``dirty``: it is closed and never reused. ``PooledResponse`` is the caller's view
of one response; if the caller leaves it unread for ``unread_timeout`` seconds (never asks
for the next chunk, or abandons it) its connection is closed and its pool slot freed.
``decode_fields`` turns header bytes into text that aiohttp writes back as the same bytes
(UTF-8; a field that is not valid UTF-8 is dropped). ``encode_head`` builds a request head
and refuses CR, LF and NUL anywhere in it; values keep their bytes (surrogateescape).
Not here: choosing, opening, limiting and reusing connections, request body framing
(pool.py).
"""

from __future__ import annotations

import asyncio
import http
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.logconfig import get_logger

log = get_logger("upstream")

HIGH_WATER: Final = 256 * 1024  # buffered body bytes at which the socket is paused
LOW_WATER: Final = 64 * 1024  # ...and resumed
NO_BODY_STATUSES: Final = frozenset({204, 304})  # RFC 9110 §6.4.1: never a body
# Response head limits (R5: an endless head grew memory without bound), after aiohttp's own
# parser defaults (max_field_size 8190, ~100 fields); past them the answer is a 502.
MAX_FIELD_SIZE: Final = 8190  # one field's name + value, in bytes
MAX_FIELDS: Final = 100  # fields in one response (trailers included)
MAX_HEAD: Final = 64 * 1024  # status lines and fields of one response, 1xx heads included
MAX_STALL: Final = 64 * 1024  # bytes after the head with no body byte (trailers, chunk ext.)
MAX_INTERIM: Final = 16  # 1xx responses before the final one (RFC 9110 §15.2)
# RFC 9112 §4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); any other control byte
# would reach the browser's status line (R22).
_BAD_REASON: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A CR, LF or NUL in a request line or header would start a new header or request
# (request splitting, RFC 9112 §2.2): refused before anything is written.
_UNSAFE: Final = re.compile(r"[\r\n\x00]")


class UpstreamConnectionError(ConnectionError):
    """The connection failed, was reset, or the vendor sent a malformed response."""


class UpstreamProtocolError(UpstreamConnectionError):
    """The vendor's response broke HTTP/1.1 or the head limits (MAX_HEAD, MAX_FIELDS…)."""


class ResponseAbandoned(TimeoutError):
    """The caller left a response unread longer than its ``unread_timeout``."""


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Where a connection goes: scheme, the host name (SNI, certificate) and the port; ``via``
    is the (loopback IP, port) of the HTTP proxy it is tunnelled through (review mode), so
    such connections never mix with direct ones."""

    scheme: str
    host: str
    port: int
    via: tuple[str, int] | None = None

    @property
    def authority(self) -> str:
        """``host:port`` as a CONNECT request names it (RFC 9110 §9.3.6), IPv6 bracketed."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Connection(asyncio.Protocol):
    """One keep-alive connection and the response currently arriving on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: PoolKey) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.dirty = False  # bytes arrived after a response's end: never reused
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
        self.request_sent = False  # set by the pool once the whole request is written
        self.head_size = 0  # bytes fed to the parser before the final head ended (≤ MAX_HEAD)
        self._in_head = True
        self._fields = 0
        self._interims = 0
        self._stall = 0
        self._progress = 0  # body bytes parsed so far
        self._violation: UpstreamProtocolError | None = None
        self._interim = False
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport has the Transport methods
        # without subclassing asyncio.Transport (measured as an optional loop, issue 19).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.complete:  # bytes after a response's end, or unasked-for: never reused
            self._stray()
            return
        try:
            if self._in_head:
                data = self._feed_head(data)
            if data:
                self._feed_after_head(data)
        except UpstreamProtocolError as exc:  # a limit checked outside the parser
            self._fail(exc)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the vendor switched protocols"))
        except httptools.HttpParserError as exc:
            if self.complete:  # a callback saw bytes past the end (_stray already ran)
                return
            self._fail(self._violation or UpstreamProtocolError(f"malformed response: {exc}"))

    def _feed_head(self, data: bytes) -> bytes:
        """Feed the parser no more than MAX_HEAD bytes before the final head ends; return
        the bytes after the budget (body bytes) that are still to be fed."""
        room = MAX_HEAD - self.head_size
        if len(data) <= room:
            self.head_size += len(data)
            self._parser.feed_data(data)
            return b""
        self.head_size = MAX_HEAD
        self._parser.feed_data(data[:room])
        if self._in_head:
            self._violate("response head over MAX_HEAD bytes")
        return data[room:]

    def _feed_after_head(self, data: bytes) -> None:
        """Feed body bytes; non-body bytes (trailers, chunk extensions) are bounded too."""
        if self.complete:
            self._stray()
            return
        before = self._progress
        self._parser.feed_data(data)
        if self._progress != before or self.complete:
            self._stall = 0
            return
        self._stall += len(data)
        if self._stall > MAX_STALL:
            self._violate("over MAX_STALL bytes after the head without a body byte")

    def _violate(self, why: str) -> None:
        """A limit or a rule was broken: raise, so the parser stops (data_received fails)."""
        self._violation = UpstreamProtocolError(why)
        raise self._violation

    def _stray(self) -> None:
        """Bytes after a response's end: the connection cannot be trusted again (R1)."""
        self.dirty = True
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()

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

    def on_message_begin(self) -> None:
        if self.complete:  # a second response in the same packet as the first one
            self._stray()
            raise UpstreamProtocolError("bytes after the end of a response")

    def on_status(self, status: bytes) -> None:
        if _BAD_REASON.search(status):
            self._violate("control byte in the reason phrase")
        self.reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_FIELDS or len(name) + len(value) > MAX_FIELD_SIZE:
            self._violate("response header fields over the limits")
        if self._in_head:
            self.raw_headers.append((name, value))
        # else a trailer (RFC 9112 §7.1.2): counted, not kept; nothing forwards trailers

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): wait for the final
            self._interim = True
            self._interims += 1
            if self._interims > MAX_INTERIM:
                self._violate("too many interim responses")
            return
        self._in_head = False
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
        if self.complete:  # bytes after a HEAD response's head
            self._stray()
            raise UpstreamProtocolError("bytes after the end of a response")
        self._progress += len(body)
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
            self._fields = 0
            return
        self.complete = True
        self._wake()

    # used by the pool and the response -------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.raw_headers = []  # what a failed head held is of no use to anyone
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
    def waiting(self) -> bool:
        """A reader is waiting in ``next_chunk`` for the vendor."""
        return self._waiter is not None

    @property
    def reusable(self) -> bool:
        """Back to the pool only at a message boundary: the whole request written, the whole
        response read, nothing after it, keep-alive, still open (R1)."""
        return (
            self.complete
            and self.request_sent
            and self.keep_alive
            and not self.dirty
            and not self.lost
            and not self.chunks
        )

    def close(self) -> None:
        """Close the socket (an unread or failed response, or shutdown)."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class UnreadSweeper:
    """R3's unread deadline for every live response of a pool, with one timer for them all.

    A response the caller has not read from (nor released) for ``timeout`` seconds is cut
    (``PooledResponse.check_unread``), between ``timeout`` and ``timeout × (1 + 1/STEPS)``
    after its last read. Why not a timer per response, as before: arming and cancelling a
    TimerHandle on every relayed request was ~2% of the proxy's instructions per request
    (valgrind, bench/relay.py's 2 KB page); this is a set add and discard.
    """

    STEPS: Final = 4

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._live: set[PooledResponse] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, response: PooledResponse) -> None:
        self._live.add(response)
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_later(self.timeout / self.STEPS, self._sweep)

    def discard(self, response: PooledResponse) -> None:
        self._live.discard(response)

    def close(self) -> None:
        """Stop sweeping (the pool is closing)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._handle, now = None, loop.time()
        for response in list(self._live):
            if response.check_unread(now):
                self._live.discard(response)
        if self._live:
            self._handle = loop.call_later(self.timeout / self.STEPS, self._sweep)


class PooledResponse:
    """A vendor's response head, and its body as it arrives.

    ``unread``: if the caller does not ask for the next chunk (or release) within its
    ``timeout`` seconds, the connection is closed and its pool slot freed (R3: a browser
    that never reads must not hold a vendor connection forever); a later read raises
    ``ResponseAbandoned``. Time spent waiting for the vendor is the idle_read deadline's.
    """

    __slots__ = (
        "_conn",
        "_decoded",
        "_expired",
        "_give_back",
        "_headers",
        "_last_read",
        "_released",
        "_unread",
        "idle_read",
        "status",
        "unread_timeout",
    )

    def __init__(
        self,
        conn: Connection,
        give_back: Callable[[Connection], None],
        idle_read: float,
        unread: UnreadSweeper | None = None,
    ) -> None:
        self._conn = conn
        self._give_back = give_back
        self._released = False
        self._expired = False
        self._headers: CIMultiDictProxy[str] | None = None
        self._decoded: list[tuple[str, str]] | None = None
        self.idle_read = idle_read
        self.status = conn.status
        self.unread_timeout = None if unread is None else unread.timeout
        self._last_read = conn.loop.time()
        self._unread = unread
        if unread is not None:
            unread.add(self)

    @property
    def reason(self) -> str:
        """The reason phrase as text aiohttp writes back as the same bytes (UTF-8); the
        standard phrase when the vendor's is not UTF-8."""
        try:
            return self._conn.reason.decode("utf-8")
        except UnicodeDecodeError:
            return _standard_phrase(self.status)

    @property
    def host(self) -> str:
        return self._conn.key.host

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(self._conn.raw_headers)

    @property
    def decoded_headers(self) -> list[tuple[str, str]]:
        """The header fields as text, in order, duplicates kept (see ``decode_fields``)."""
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
        conn = self._conn
        while True:
            if self._expired:
                raise ResponseAbandoned("the response was left unread")
            self._last_read = conn.loop.time()
            chunk = await conn.next_chunk(self.idle_read)
            if chunk is None:
                break
            yield chunk
        self.release()

    async def read(self) -> bytes:
        """The whole body."""
        conn = self._conn
        if conn.complete and not conn.error and not self._expired:  # small bodies: all here
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
            if self._unread is not None:
                self._unread.discard(self)
            self._give_back(self._conn)

    def check_unread(self, now: float) -> bool:
        """The unread deadline (``UnreadSweeper``): cut the response if it is past; True
        once it needs no more checks (released or cut)."""
        conn, timeout = self._conn, self.unread_timeout
        if self._released or timeout is None:
            return True
        if conn.waiting:  # the caller is waiting for the vendor: idle_read's business
            self._last_read = now
        if now - self._last_read < timeout:
            return False
        log.warning("upstream_response_abandoned", host=conn.key.host)
        self._expired = True
        conn.chunks.clear()
        conn.buffered = 0
        conn.close()
        self.release()
        return True


def _standard_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def decode_fields(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Header fields as text, in order, duplicates kept.

    Values are decoded as UTF-8 so that aiohttp, which writes header text as UTF-8, sends
    the browser the vendor's exact bytes (R22: latin-1 here double-encoded them). A value
    that is not valid UTF-8 cannot be written back byte for byte: that field is dropped
    (logged with its name only). Names are tokens (llhttp refuses anything else).
    """
    fields: list[tuple[str, str]] = []
    for name, value in raw:
        try:
            fields.append((name.decode("latin-1"), value.decode("utf-8")))
        except UnicodeDecodeError:
            log.warning("upstream_header_dropped", header=name.decode("latin-1")[:64])
    return fields


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
