"""A real SIP2 server (the ILS side, "ACS") on 127.0.0.1 for tests, behaving like real ILSs do.

Shaped after what Evergreen's SIPServer and Koha's C4::SIP send (read, not copied): a 64 answer
is the 14-character patron status, language, date and six item counts, then AO, AA (the card
echoed), AE (the name), limits, currency, BV fee, BD/BE/BF address/e-mail/phone, BL, CQ, PA expiry,
PB birth date, AF/AG; an unknown card gets "YYYY" + 10 spaces, zero counts, AE empty and BL N.
Error detection is switched on by the client's first AY/AZ (``checksums="echo"``, as Evergreen),
and a 97 repeats the last answer. Framing and checksums are written here independently of
proxy/core/sip2.py on purpose, so the tests do not check the codec against itself.

``PeerMode`` selects the behaviours: field order, optional fields missing, checksums on/off, slow
answers, close after every answer, malformed answers, a demanded 93 login, a 96 first, corrupted
checksums, another encoding, ``\\r\\n`` endings, a close just as a reused connection's request
arrives. The peer counts connections (and the peak of
simultaneously open ones) and records every message it received.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass
class PeerPatron:
    """A patron record in the peer's catalogue (values are test canaries)."""

    pin: str
    name: str = "Ada Lovelace"
    address: str = "12 Analytical Row"
    email: str = "ada@example.org"
    phone: str = "555-0100"
    birth_date: str = "18151210"
    status: str = " " * 14
    fee: str | None = "0.00"
    expiry: str | None = None
    screen_message: str | None = None


@dataclass
class PeerMode:
    """How the peer behaves; mutable so a test can change it between checks."""

    checksums: Literal["echo", "always", "never"] = "echo"
    shuffle_seed: int | None = None
    minimal: bool = False
    delay: float = 0.0
    close_after_answer: bool = False
    close_on_reuse: bool = False  # drop a connection when its second request arrives, unanswered
    malformed: bytes | None = None
    login: tuple[str, str] | None = None
    resend_first: bool = False
    bad_checksums: int = 0
    encoding: str = "utf-8"
    line_ending: bytes = b"\r"


def sip_checksum(data: bytes) -> bytes:
    """Two's complement of the 16-bit byte sum, as four upper-case hex digits."""
    total = 0
    for byte in data:
        total = (total + byte) & 0xFFFF
    return b"%04X" % ((0x10000 - total) & 0xFFFF)


def split_request(message: bytes) -> tuple[bytes, int | None, bool | None]:
    """(body, sequence, checksum ok) of one request without its terminator."""
    at = message.rfind(b"AZ")
    if at < 0 or len(message) - at != 6:
        return message, None, None
    ok = sip_checksum(message[: at + 2]) == message[at + 2 :].upper()
    body = message[:at]
    sequence = None
    if len(body) >= 3 and body[-3:-1] == b"AY" and body[-1:].isdigit():
        sequence, body = int(body[-1:]), body[:-3]
    return body, sequence, ok


def request_fields(body: bytes, fixed: int) -> dict[str, str]:
    """The variable fields of a request after ``fixed`` bytes (the peer's own little parser)."""
    fields: dict[str, str] = {}
    for piece in body[fixed:].split(b"|"):
        if len(piece) >= 2:
            fields[piece[:2].decode()] = piece[2:].decode("utf-8", errors="replace")
    return fields


@dataclass
class Sip2Peer:
    """The server: ``await start()`` then ``port``; ``await stop()`` at the end."""

    patrons: dict[str, PeerPatron]
    mode: PeerMode = field(default_factory=PeerMode)
    tls: ssl.SSLContext | None = None
    port: int = 0
    connections: int = 0
    open_now: int = 0
    max_open: int = 0
    received: list[bytes] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> Sip2Peer:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    def commands(self) -> list[str]:
        """The command ids received, in order."""
        return [m[:2].decode(errors="replace") for m in self.received]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            self.open_now -= 1
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state = _Session(logged_in=self.mode.login is None, first=True, error_detection=False)
        while True:
            message = (await reader.readuntil(b"\r"))[:-1].lstrip(b"\n")
            self.received.append(message)
            answer = self._answer(message, state)
            if answer is None:
                return  # like Koha: a client that did not log in is dropped
            if self.mode.delay:
                await asyncio.sleep(self.mode.delay)
            writer.write(answer)
            await writer.drain()
            if self.mode.close_after_answer:
                return

    def _answer(self, message: bytes, state: _Session) -> bytes | None:
        body, sequence, ok = split_request(message)
        state.error_detection = state.error_detection or ok is not None
        if ok is False:
            return self._frame(b"96", None, state)
        command = body[:2]
        if command == b"97":
            return self._frame(state.last_text, state.last_sequence, state)
        if self.mode.resend_first and state.first:
            state.first = False
            return self._frame(b"96", None, state)
        if command == b"93":
            fields = request_fields(body, 4)
            state.logged_in = (fields.get("CN"), fields.get("CO")) == self.mode.login
            return self._frame(b"941" if state.logged_in else b"940", sequence, state)
        if not state.logged_in or command not in (b"63", b"23"):
            return None
        if self.mode.close_on_reuse and state.answered:
            return None  # an ILS whose idle timeout struck just as the request arrived
        state.answered = True
        if self.mode.malformed is not None:
            return self.mode.malformed
        return self._frame(self._patron_answer(body), sequence, state)

    def _frame(self, text: bytes, sequence: int | None, state: _Session) -> bytes:
        state.last_text, state.last_sequence = text, sequence
        detect = self.mode.checksums == "always" or (
            self.mode.checksums == "echo" and state.error_detection
        )
        if detect:
            text += (b"AY%d" % sequence if sequence is not None else b"") + b"AZ"
            good = text + sip_checksum(text) + self.mode.line_ending
            if self.mode.bad_checksums > 0:
                self.mode.bad_checksums -= 1
                return text + b"0000" + self.mode.line_ending  # wrong unless the sum is 0
            return good
        return text + self.mode.line_ending

    def _patron_answer(self, body: bytes) -> bytes:
        command = body[:2]
        fields = request_fields(body, 33 if command == b"63" else 23)
        patron = self.patrons.get(fields.get("AA", ""))
        now = datetime.now().strftime("%Y%m%d    %H%M%S")
        if patron is None:
            head = "YYYY" + " " * 10 + "000" + now + ("0000" * 6 if command == b"63" else "")
            pairs = [("AO", fields.get("AO", "")), ("AA", fields.get("AA", "")), ("AE", "")]
            pairs.append(("BL", "N"))
        else:
            head = patron.status + "000" + now + ("0002" + "0000" * 5 if command == b"63" else "")
            pairs = self._patron_fields(patron, fields)
        if self.mode.shuffle_seed is not None:
            random.Random(self.mode.shuffle_seed).shuffle(pairs)
        reply = ("64" if command == b"63" else "24") + head
        reply += "".join(f"{fid}{value}|" for fid, value in pairs)
        return reply.encode(self.mode.encoding)

    def _patron_fields(self, patron: PeerPatron, fields: dict[str, str]) -> list[tuple[str, str]]:
        pin_ok = "Y" if fields.get("AD") == patron.pin else "N"
        pairs = [("AO", fields.get("AO", "")), ("AA", fields.get("AA", "")), ("AE", patron.name)]
        pairs += [("BL", "Y"), ("CQ", pin_ok)]
        if self.mode.minimal:
            return pairs
        pairs += [("BZ", "0010"), ("CA", "0005"), ("BH", "USD")]
        pairs += [("BD", patron.address), ("BE", patron.email), ("BF", patron.phone)]
        pairs += [("PB", patron.birth_date), ("PC", "ADULT"), ("AQ", "MAIN")]
        if patron.fee is not None:
            pairs.append(("BV", patron.fee))
        if patron.expiry is not None:
            pairs.append(("PA", patron.expiry))
        if patron.screen_message is not None:
            pairs.append(("AF", patron.screen_message))
        return pairs


@dataclass
class _Session:
    """One connection's state on the peer."""

    logged_in: bool
    first: bool
    error_detection: bool
    last_text: bytes = b"96"  # a 97 before any answer gets a 96 (SIP2 2.00 p.16)
    last_sequence: int | None = None
    answered: bool = False
