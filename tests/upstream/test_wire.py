"""R5, R22, R1: what a hostile or odd vendor response does to one pooled connection.

Scripted loopback vendors send endless heads, endless trailers, control bytes in the reason
phrase, UTF-8 and invalid header bytes, and a second response glued to the first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.core.hostmap import Origin
from proxy.core.settings import Settings
from proxy.upstream.client import UpstreamClient
from proxy.upstream.errors import UpstreamUnreachable
from proxy.upstream.pool import ConnectionPool
from proxy.upstream.wire import (
    MAX_FIELDS,
    MAX_HEAD,
    Connection,
    PoolKey,
    UpstreamConnectionError,
    UpstreamProtocolError,
)
from tests.upstream.test_pool import HEADERS, KEY, Scripted, get, pools, respond, serve

__all__ = ["pools"]  # the fixture, imported for use here

MakePool = Callable[..., ConnectionPool]
FLOOD_LINE = b"X-Flood: " + b"a" * 8000 + b"\r\n"


def flood(first: bytes, line: bytes) -> Callable[[bytes, asyncio.StreamWriter], object]:
    """A vendor that sends ``first`` then ``line`` over and over (at most ~32 MB)."""

    async def answer(_head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(first)
        for _ in range(32 * 1024 * 1024 // len(line)):
            writer.write(line)
            await writer.drain()
        return False

    return answer


@pytest.mark.parametrize(
    "first, line",
    [
        (b"HTTP/1.1 200 OK\r\n", FLOOD_LINE),  # endless header lines
        (b"HTTP/1.1 200 OK\r\nX-Flood: ", b"a" * 8192),  # one endless value
    ],
)
async def test_an_endless_head_fails_fast_as_a_bad_response(
    first: bytes, line: bytes, pools: MakePool
) -> None:
    """R5: endless header lines or one endless value end the request quickly with a
    502-class connection error, well before the first-byte deadline."""
    script = Scripted(flood(first, line))  # type: ignore[arg-type]
    async with await serve(script):
        started = time.monotonic()
        with pytest.raises(UpstreamProtocolError):
            await pools(script.port).request(
                KEY, "GET", "/", HEADERS, None, connect=2, first_byte=10, idle_read=2
            )
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("line", [FLOOD_LINE, b"a" * 8192])
async def test_an_endless_head_buffers_a_bounded_amount(line: bytes) -> None:
    """R5: the parser is fed at most MAX_HEAD bytes of head and keeps at most MAX_FIELDS."""
    script = Scripted(flood(b"HTTP/1.1 200 OK\r\n" + (b"" if line is FLOOD_LINE else b"X: "), line))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    async with await serve(script):
        conn = Connection(loop, PoolKey("http", "vendor.example", script.port))
        await loop.create_connection(lambda: conn, "127.0.0.1", script.port)
        assert conn.transport is not None
        conn.transport.write(b"GET / HTTP/1.1\r\nHost: vendor.example\r\n\r\n")
        kept_max = 0
        with pytest.raises(UpstreamConnectionError):
            async with asyncio.timeout(5):
                while not conn.head.done():
                    kept_max = max(kept_max, sum(len(n) + len(v) for n, v in conn.raw_headers))
                    await asyncio.sleep(0)
                await conn.head
        conn.close()
    assert conn.head_size <= MAX_HEAD
    assert kept_max <= MAX_HEAD and len(conn.raw_headers) <= MAX_FIELDS


async def test_endless_trailers_are_a_bad_response(pools: MakePool) -> None:
    """R5: trailers after a chunked body are bounded too (no body bytes, no end)."""
    first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
    script = Scripted(flood(first, b"X-T: " + b"b" * 100 + b"\r\n"))  # type: ignore[arg-type]
    async with await serve(script):
        response = await pools(script.port).request(
            KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=5
        )
        with pytest.raises(UpstreamProtocolError):
            async with asyncio.timeout(3):
                await response.read()


async def test_a_control_byte_in_the_reason_phrase_is_a_bad_response(pools: MakePool) -> None:
    """R22: a control byte in the status line's reason is a clean 502-class error."""
    script = Scripted(respond(b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok"))
    async with await serve(script):
        with pytest.raises(UpstreamProtocolError):
            await get(pools(script.port))


async def test_a_second_response_in_the_same_packet_is_not_taken_for_the_body(
    pools: MakePool,
) -> None:
    """R1: bytes after a response's end are neither its body nor the next answer: the
    response ends where its framing says, and the connection is not used again."""
    glued = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    glued += b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    script = Scripted(respond(glued))
    async with await serve(script):
        pool = pools(script.port)
        assert await get(pool) == b"200 ok"
        assert await get(pool) == b"200 ok"
        assert script.connections == 2


# --- R22: header bytes pass through unchanged, both ways ------------------------------------

VENDOR = "vendor.example"


def echoing_vendor() -> Scripted:
    """Answers with UTF-8 and invalid-UTF-8 header values; records the request heads."""
    return Scripted(
        respond(
            b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9 \xe2\x82\xac\r\nX-Bad: caf\xe9\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )
    )


def relay_app(client: UpstreamClient) -> web.Application:
    """The smallest relay: forwards X-Name and X-Latin, answers with the vendor's fields."""

    async def handler(request: web.Request) -> web.Response:
        headers = [("Host", VENDOR)]
        headers += [(n, v) for n, v in request.headers.items() if n in ("X-Name", "X-Latin")]
        url = client.target_url(Origin("https", VENDOR, 443), "/")
        upstream = await client.send("GET", url, headers=headers)
        body = await upstream.read()
        kept = [(n, v) for n, v in upstream.decoded_headers if n.startswith("X-")]
        return web.Response(body=body, headers=kept)

    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def raw_exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return head


@pytest.fixture
async def relay_client() -> AsyncIterator[tuple[UpstreamClient, Scripted]]:
    script = echoing_vendor()
    async with await serve(script):
        settings = Settings(upstream_overrides={VENDOR: f"http://127.0.0.1:{script.port}"})
        client = UpstreamClient.create(settings)
        yield client, script
        await client.close()


async def test_header_bytes_pass_through_unchanged_both_ways(
    relay_client: tuple[UpstreamClient, Scripted],
) -> None:
    """R22: a browser's UTF-8 and latin-1 header bytes reach the vendor unchanged, and the
    vendor's UTF-8 header bytes reach the browser unchanged (not double-encoded); a vendor
    header that is not UTF-8 is dropped."""
    client, script = relay_client
    server = TestServer(relay_app(client), host="127.0.0.1")
    await server.start_server()
    try:
        assert server.port is not None
        head = await raw_exchange(
            server.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\nX-Latin: caf\xe9\r\n"
            b"Connection: close\r\n\r\n",
        )
    finally:
        await server.close()
    assert b"X-Name: caf\xc3\xa9\r\n" in script.heads[0]
    assert b"X-Latin: caf\xe9\r\n" in script.heads[0]
    assert b"\r\nX-Name: caf\xc3\xa9 \xe2\x82\xac\r\n" in head
    assert b"X-Bad" not in head


async def test_a_control_byte_in_the_reason_is_a_502_through_the_client() -> None:
    """R22: through the client, a control byte in the reason phrase is UpstreamUnreachable."""
    script = Scripted(respond(b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok"))
    async with await serve(script):
        settings = Settings(upstream_overrides={VENDOR: f"http://127.0.0.1:{script.port}"})
        client = UpstreamClient.create(settings)
        try:
            with pytest.raises(UpstreamUnreachable) as caught:
                url = client.target_url(Origin("https", VENDOR, 443), "/")
                await client.send("GET", url, headers={"Host": VENDOR})
            assert caught.value.status_hint == 502
        finally:
            await client.close()
