"""Request framing through the relay: the vendor never sees more requests than the browser sent.

A raw loopback vendor parses HTTP/1.1 itself (Content-Length or chunked, keep-alive) and
counts every request head, so a body the relay frames wrongly shows up as an extra request.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.conftest import PORTAL, Stack, StackFactory
from tests.web.helpers import post_login, session_of

WWW = f"www-acmejournals-test.{PORTAL}"
SMUGGLED = (
    b"GET /echo/SMUGGLED HTTP/1.1\r\nHost: www.acmejournals.test\r\n"
    b"X-Forwarded-For: 6.6.6.6\r\nCookie: attacker=1\r\n\r\n"
)
CODERS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda b: b,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}


@dataclass
class CountingVendor:
    """A keep-alive HTTP/1.1 server on loopback that records each request head and body."""

    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until it closes."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                self.bodies.append(await read_body(reader, head))
                answer = b"#%d" % len(self.heads)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
                writer.write(b"Content-Length: %d\r\n\r\n%b" % (len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The body framed as the head says (Content-Length, chunked, or none)."""
    fields = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
    }
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
        return body
    return await reader.readexactly(int(fields.get(b"content-length", b"0")))


@pytest.fixture
async def counting() -> AsyncIterator[tuple[CountingVendor, int]]:
    """A running counting vendor and its port."""
    vendor = CountingVendor()
    server = await asyncio.start_server(vendor.serve, "127.0.0.1", 0)
    yield vendor, server.sockets[0].getsockname()[1]
    server.close()


async def stack_on(make_stack: StackFactory, port: int) -> Stack:
    """A proxy whose www.acmejournals.test is the counting vendor."""
    stack: Stack = await make_stack(
        upstream_overrides={"www.acmejournals.test": f"http://127.0.0.1:{port}"}
    )
    return stack


async def signed_in(stack: Stack, note: str = "adult card") -> dict[str, str]:
    """The Cookie header of a fresh session for the demo card ``note``."""
    card = stack.card(note)
    return session_of(await post_login(stack.client, card.barcode, card.secret))


def smuggling_body(coding: str) -> bytes:
    """The pentest's body: coded, it is exactly as long as the padding before the smuggled
    request in its decoded form (so a relay that keeps the browser's Content-Length beside
    the decoded bytes ends the first request right where the second one starts)."""
    code = CODERS[coding]
    pad = next(n for n in range(1, 5000) if len(code(b"A" * n + SMUGGLED)) == n)
    return code(b"A" * pad + SMUGGLED)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_coded_body_cannot_smuggle_a_request(
    make_stack: StackFactory, counting: tuple[CountingVendor, int], coding: str
) -> None:
    """R1: the reproduction (a coded body padded to its own Content-Length) is refused with 415;
    the vendor sees no extra request and the next patron gets their own answer."""
    vendor, port = counting
    stack = await stack_on(make_stack, port)
    alice, bob = await signed_in(stack), await signed_in(stack, "student card")
    body = smuggling_body(coding)
    resp = await stack.client.post(
        "/form",
        data=body,
        headers={
            "Host": WWW,
            **alice,
            "Content-Encoding": coding,
            "Content-Length": str(len(body)),
        },
    )
    other = await stack.client.get("/next", headers={"Host": WWW, **bob})
    assert await other.text() == f"#{len(vendor.heads)}"  # bob's own answer, not a smuggled one
    assert len(vendor.heads) <= 2  # two browser requests, at most two upstream
    assert not any(b"SMUGGLED" in head for head in vendor.heads)
    assert resp.status == 415
    assert resp.headers["Accept-Encoding"] == "identity"


async def test_identity_body_is_framed_by_what_is_sent(
    make_stack: StackFactory, counting: tuple[CountingVendor, int]
) -> None:
    """R1: a plain body whose bytes hold a request line is relayed as one request, byte for
    byte, with the proxy's own Content-Length and no Content-Encoding."""
    vendor, port = counting
    stack = await stack_on(make_stack, port)
    auth = await signed_in(stack)
    body = b"A" * 50 + SMUGGLED
    resp = await stack.client.post(
        "/form", data=body, headers={"Host": WWW, **auth, "Content-Encoding": "identity"}
    )
    assert resp.status == 200
    (head,) = vendor.heads
    assert vendor.bodies == [body]
    assert f"content-length: {len(body)}\r\n".encode() in head.lower()
    assert b"content-encoding" not in head.lower()


@pytest.fixture
async def through(
    make_stack: StackFactory, counting: tuple[CountingVendor, int]
) -> tuple[Stack, CountingVendor, dict[str, str]]:
    """One proxy in front of the counting vendor, and a signed-in patron's cookie."""
    vendor, port = counting
    stack = await stack_on(make_stack, port)
    return stack, vendor, await signed_in(stack)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.binary(max_size=4000) | st.builds(lambda n: b"A" * n + SMUGGLED, st.integers(0, 300)),
    coding=st.sampled_from(sorted(CODERS)),
    chunked=st.booleans(),
)
async def test_relay_never_multiplies_requests(
    through: tuple[Stack, CountingVendor, dict[str, str]], body: bytes, coding: str, chunked: bool
) -> None:
    """R1 (property): over random bodies, codings and framings (Content-Length or chunked),
    the vendor receives at most one request per browser request, and identity bodies intact."""
    stack, vendor, auth = through
    before = len(vendor.heads)
    coded = CODERS[coding](body)
    data: Any = one_chunk(coded) if chunked else coded
    extra = {} if coding == "identity" else {"Content-Encoding": coding}
    resp = await stack.client.post("/form", data=data, headers={"Host": WWW, **auth, **extra})
    await resp.read()
    sent = len(vendor.heads) - before
    assert sent <= 1
    if coding == "identity":
        assert resp.status == 200
        assert vendor.bodies[-1] == body
    else:
        assert resp.status == 415
        assert sent == 0


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """A streamed (chunked) request body."""
    yield data
