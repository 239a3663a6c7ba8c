"""Asking a library's ILS about a card over SIP2: a small asyncio client with a connection pool.

Why our own client (PyPI checked 2026-12): ``sip2`` (Sip2 1.1, 2021) uses blocking sockets, reads
an answer with one ``recv(4096)`` (no framing), logs every request and answer — card, PIN, name —
at its default DEBUG level to a ``sip2.log`` file in the working directory, falls back to plain
text when TLS fails, and its checksum check accepts any checksum. ``pysip2`` (0.1.0) implements
only the ACS (server) side, adds msgspec and anyio, and its typed models keep the personal fields
we must drop. No maintained async SIP2 client exists and a card check needs four messages, so the
protocol is ours: pure and table-tested in proxy/core/sip2.py. No new dependency.

Contract:
- ``Sip2Client(settings, credentials).check(card, pin)`` → ``Sip2Verdict`` (see proxy/core/sip2.py:
  only the decision, nothing personal). It raises ``Sip2Unavailable`` (status_hint 503, "we can't
  check your card right now") when the ILS is unreachable, too slow, refuses our SIP2 login or
  answers with something unusable, and ``Sip2InputRejected`` (400) when the card or PIN cannot
  travel in a SIP2 field at all (e.g. contains ``|``). Neither message holds the card or PIN.
- Per connection: 93 Login first when ``login_user`` is set, then 63 (or 23) per check. At most
  ``pool_size`` connections are open or being opened; idle ones are reused (LIFO) for at most
  ``idle_seconds``. A reused connection the ILS closed meanwhile is replaced once, transparently
  (ILSs that close after every answer work). Any failure or cancellation mid-exchange aborts that
  connection, so a late answer can never be read as the answer to another patron's request.
- Every wait has a deadline: connect (TLS included) and each answer within ``timeout``, a free
  connection within ``QUEUE_WAIT_FACTOR`` × ``timeout``.
- Logs ``sip2_unavailable`` (ILS host, port, error type) and ``sip2_resend_requested``; never a
  card, PIN or any text of an answer.
Not here: the SIP2 wire format (proxy/core/sip2.py), reading the secret files and choosing the
back-end per library (the login flow), rendering errors (web/errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from proxy.core.sip2 import (
    LOGIN_RESPONSE,
    PATRON_INFORMATION,
    PATRON_INFORMATION_RESPONSE,
    PATRON_STATUS_RESPONSE,
    REQUEST_ACS_RESEND,
    TERMINATOR,
    Frame,
    Sip2FrameError,
    Sip2Settings,
    Sip2Verdict,
    UnsendableField,
    build_login,
    build_patron_request,
    judge,
    login_accepted,
    next_sequence,
    parse_frame,
    parse_patron_answer,
    react,
    seal,
)
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger

log = get_logger("sip2")

UNAVAILABLE_MESSAGE: Final = (
    "We can't check your card right now. Please try again in a few minutes."
)
MAX_RESENDS: Final = 3  # 96/97 rounds per request: a link that keeps corrupting is an outage
MAX_FRAME_BYTES: Final = 65536  # a 64 without item lists is well under 1 KiB; bounds a babbling ILS
QUEUE_WAIT_FACTOR: Final = 3  # a check waits at most 3 × timeout for a free pooled connection
CLOSE_WAIT: Final = 1.0  # seconds to wait for a clean close before giving up on it
# "97AZFEF5": a 97 carries a checksum but no sequence number (as Evergreen's SIPServer expects it).
ASK_RESEND: Final = seal(REQUEST_ACS_RESEND.encode("ascii"), sequence=None, with_checksum=True)


class Sip2Unavailable(ClamshellError):
    """The ILS could not answer a card check; the patron is asked to try again later."""

    status_hint = 503
    public_message = UNAVAILABLE_MESSAGE


class Sip2Unreachable(Sip2Unavailable):
    """Connection refused, reset or closed mid-answer, or a TLS failure."""


class Sip2Timeout(Sip2Unavailable):
    """No connection, no free pooled connection, or no answer within the deadline."""


class Sip2ProtocolError(Sip2Unavailable):
    """The ILS answered with something that is not a usable SIP2 answer."""


class Sip2LoginRejected(Sip2Unavailable):
    """The ILS refused our 93 Login (wrong SIP2 user or password in the configuration)."""


class Sip2InputRejected(ClamshellError):
    """The card or PIN holds characters SIP2 cannot carry; the login simply fails."""

    status_hint = 400
    public_message = "That card number or PIN can't be checked. Please check what you typed."


@dataclass(frozen=True, slots=True)
class Sip2Credentials:
    """The secrets read by the caller from ``login_password_file``/``terminal_password_file``."""

    login_password: str | None = field(default=None, repr=False)
    terminal_password: str = field(default="", repr=False)


class _Stale(Exception):
    """A reused connection turned out to be closed before it answered: open a fresh one."""


class _Connection:
    """One SIP2 connection: sends a request and reads its answer, with resends."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: Sip2Settings
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._settings = settings
        self._sequence = 9  # the first request carries AY0
        self.reused = False
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        """Still open, not told EOF by the ILS, and not idle too long."""
        fresh = now - self.idle_since < self._settings.idle_seconds
        return fresh and not self._reader.at_eof() and not self._writer.is_closing()

    def abort(self) -> None:
        """Drop the connection at once (its stream may be out of step)."""
        self._writer.transport.abort()

    async def close(self) -> None:
        """Close politely, within ``CLOSE_WAIT``."""
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await self._writer.wait_closed()

    async def exchange(self, body: bytes, expected: str) -> Frame:
        """Send ``body``, return the answer ``expected``; handles 96 and bad checksums."""
        mode = self._settings.checksum
        sequence = None
        if mode != "off":
            sequence = self._sequence = next_sequence(self._sequence)
        wire = seal(body, sequence=sequence, with_checksum=mode != "off")
        frame = await self._first_answer(wire)
        for attempt in range(MAX_RESENDS + 1):
            reaction = react(frame, expected=expected, sequence=sequence, mode=mode)
            if reaction == "accept":
                return frame
            if attempt == MAX_RESENDS:
                break
            by = "ils" if reaction == "resend_ours" else "client"
            log.info("sip2_resend_requested", host=self._settings.host, by=by)
            await self._send(wire if by == "ils" else ASK_RESEND)
            frame = await self._read()
        raise Sip2FrameError("no usable answer after resends")

    async def _first_answer(self, wire: bytes) -> Frame:
        try:
            await self._send(wire)
            return await self._read()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            partial = exc.partial if isinstance(exc, asyncio.IncompleteReadError) else b""
            if self.reused and not partial:
                raise _Stale from None
            raise

    async def _send(self, wire: bytes) -> None:
        async with asyncio.timeout(self._settings.timeout):
            self._writer.write(wire)
            await self._writer.drain()

    async def _read(self) -> Frame:
        try:
            async with asyncio.timeout(self._settings.timeout):
                raw = await self._reader.readuntil(TERMINATOR)
        except asyncio.LimitOverrunError:
            raise Sip2FrameError("answer too long") from None
        verify = self._settings.checksum != "off"
        return parse_frame(raw, encoding=self._settings.encoding, verify=verify)


class Sip2Client:
    """Card checks against one ILS, over a small pool of SIP2 connections."""

    def __init__(
        self,
        settings: Sip2Settings,
        credentials: Sip2Credentials | None = None,
        *,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        credentials = credentials or Sip2Credentials()
        if settings.login_user is not None and credentials.login_password is None:
            raise ValueError("login_user is set but no login password was given")
        self._settings = settings
        self._credentials = credentials
        self._clock = clock  # local time: SIP2 dates are in the ILS's local time
        self._ssl = _tls_context(settings) if settings.tls else None
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[_Connection] = []
        self.connections_opened = 0

    async def check(self, card: str, pin: str) -> Sip2Verdict:
        """Ask the ILS about ``card`` with ``pin`` and judge the answer."""
        body = self._patron_request(card, pin)
        expected = (
            PATRON_INFORMATION_RESPONSE
            if self._settings.request_command == PATRON_INFORMATION
            else PATRON_STATUS_RESPONSE
        )
        try:
            answer = parse_patron_answer(await self._ask(body, expected))
        except Sip2Unavailable as exc:
            self._log_unavailable(exc, exc)
            raise
        except (OSError, EOFError, Sip2FrameError) as exc:
            error = _unavailable(exc)
            self._log_unavailable(error, exc)
            raise error from exc
        return judge(answer, self._settings, today=self._clock().date())

    async def close(self) -> None:
        """Close every idle connection (call on shutdown)."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.close() for conn in idle))

    def _patron_request(self, card: str, pin: str) -> bytes:
        try:
            return build_patron_request(
                self._settings.request_command,
                institution=self._settings.institution_id,
                card=card,
                pin=pin,
                terminal_password=self._credentials.terminal_password,
                now=self._clock(),
                encoding=self._settings.encoding,
            )
        except UnsendableField as exc:
            raise Sip2InputRejected(str(exc)) from None

    async def _ask(self, body: bytes, expected: str) -> Frame:
        async with self._slot():
            conn = self._take_idle()
            if conn is not None:
                with contextlib.suppress(_Stale):
                    return await self._use(conn, body, expected)
            return await self._use(await self._open(), body, expected)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._settings.timeout * QUEUE_WAIT_FACTOR):
                await self._slots.acquire()
        except TimeoutError:
            raise Sip2Timeout("no free SIP2 connection in time") from None
        try:
            yield
        finally:
            self._slots.release()

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn
            conn.abort()
        return None

    async def _use(self, conn: _Connection, body: bytes, expected: str) -> Frame:
        try:
            frame = await conn.exchange(body, expected)
        except BaseException:
            conn.abort()  # failed or cancelled mid-exchange: a late answer must never be reused
            raise
        conn.reused = True
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        return frame

    async def _open(self) -> _Connection:
        settings = self._settings
        async with asyncio.timeout(settings.timeout):
            reader, writer = await asyncio.open_connection(
                settings.host, settings.port, ssl=self._ssl, limit=MAX_FRAME_BYTES
            )
        self.connections_opened += 1
        conn = _Connection(reader, writer, settings)
        if settings.login_user is not None:
            await self._login(conn, settings.login_user)
        return conn

    async def _login(self, conn: _Connection, user: str) -> None:
        password = self._credentials.login_password or ""
        try:
            body = build_login(
                user, password, self._settings.location_code, encoding=self._settings.encoding
            )
            frame = await conn.exchange(body, LOGIN_RESPONSE)
        except BaseException:
            conn.abort()
            raise
        if not login_accepted(frame):
            conn.abort()
            raise Sip2LoginRejected("the ILS refused the SIP2 login")

    def _log_unavailable(self, error: Exception, cause: BaseException) -> None:
        log.warning(
            "sip2_unavailable",
            host=self._settings.host,
            port=self._settings.port,
            error=type(error).__name__,
            cause=type(cause).__name__,
        )


def _unavailable(exc: BaseException) -> Sip2Unavailable:
    """The patron-facing error for a low-level failure (messages hold no values)."""
    if isinstance(exc, TimeoutError):
        return Sip2Timeout("the ILS did not answer in time")
    if isinstance(exc, Sip2FrameError):
        return Sip2ProtocolError(f"unusable SIP2 answer: {exc}")
    return Sip2Unreachable(f"ILS connection failed: {type(exc).__name__}")


def _tls_context(settings: Sip2Settings) -> ssl.SSLContext:
    """A verifying context: the system CAs, or only ``ca_file`` when given (a private ILS CA)."""
    cafile = str(settings.ca_file) if settings.ca_file is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
