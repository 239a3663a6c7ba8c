"""The demo's ILS: a small SIP2 server (the "ACS" side) on loopback for one member library.

Contract: ``start_demo_ils(cards, host, port)`` serves SIP2 2.00 for the given demo cards
until its ``asyncio.Server`` is closed: 93 Login (any user is accepted: it is a demo), 63
Patron Information and 23 Patron Status, answering 64/24 with the patron status flags, BL/CQ,
BV and PA, plus a fake name and e-mail (so the demo shows that the proxy drops them).
Error detection (AY/AZ) is switched on by the client's first checksum, as Evergreen does.
Why our own: ``pysip2`` has an ACS server but adds msgspec and anyio for a demo; this is
~100 lines over the stdlib. Not a real ILS: no items, no persistence, loopback only.
Not here: the client (proxy/ilsauth/sip2_client.py), the demo's settings (demo/settings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from proxy.core.sip2 import checksum, sip_datetime
from proxy.demo.patrons import DemoCard

# demo card status -> the 14-character SIP2 patron status (position 5: card reported lost,
# 1: charge privileges denied), as an ILS would send it
STATUS_FLAGS: Final = {
    "ok": " " * 14,
    "lost": "    Y" + " " * 9,
    "blocked": "Y" + " " * 13,
}
MAX_REQUEST: Final = 4096


def _fields(body: bytes, fixed: int) -> dict[str, str]:
    pieces = body[fixed:].split(b"|")
    return {p[:2].decode("ascii", "replace"): p[2:].decode("utf-8", "replace") for p in pieces}


class DemoIls:
    """The demo ILS's patrons and its answers (no I/O here)."""

    def __init__(self, cards: Iterable[DemoCard]) -> None:
        self._cards = {card.barcode: card for card in cards}

    def answer(self, message: bytes, *, checksums: bool) -> bytes:
        """The framed answer to one request (without its terminator)."""
        body, sequence = message, None
        if b"AZ" in message[-6:]:
            body = message[: message.rindex(b"AZ")]
            if body[-3:-1] == b"AY":
                sequence, body = body[-1:].decode(), body[:-3]
        command = body[:2]
        if command == b"93":
            text = "941"
        elif command in (b"63", b"23"):
            text = self._patron(body)
        else:
            text = "96"
        raw = text.encode("utf-8")
        if checksums:
            raw += (f"AY{sequence}".encode() if sequence else b"") + b"AZ"
            raw += checksum(raw).encode("ascii")
        return raw + b"\r"

    def _patron(self, body: bytes) -> str:
        information = body[:2] == b"63"
        fields = _fields(body, 33 if information else 23)
        card = self._cards.get(fields.get("AA", ""))
        now = sip_datetime(datetime.now())
        counts = "0000" * 6 if information else ""
        reply = "64" if information else "24"
        if card is None:
            return f"{reply}YYYY{' ' * 10}000{now}{counts}AO{fields.get('AO', '')}|BLN|CQN|"
        status = STATUS_FLAGS.get(card.status, STATUS_FLAGS["ok"])
        pin_ok = "Y" if fields.get("AD") == card.secret else "N"
        expiry = card.expires.strftime("%Y%m%d")
        return (
            f"{reply}{status}000{now}{counts}AO{fields.get('AO', '')}|AA{card.barcode}|"
            f"AEDemo Patron {card.barcode[-3:]}|BEdemo.patron@example.invalid|"
            f"BLY|CQ{pin_ok}|BV0.00|PA{expiry}|"
        )


async def start_demo_ils(
    cards: Iterable[DemoCard], host: str = "127.0.0.1", port: int = 0
) -> tuple[asyncio.Server, int]:
    """Listen for SIP2 on ``host:port`` (0: any free port); returns the server and its port."""
    ils = DemoIls(cards)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        checksums = False
        try:
            while True:
                message = (await reader.readuntil(b"\r"))[:-1].lstrip(b"\n")
                checksums = checksums or b"AZ" in message[-6:]
                writer.write(ils.answer(message, checksums=checksums))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, host, port, limit=MAX_REQUEST)
    return server, server.sockets[0].getsockname()[1]
