"""ConnectionPool against scripted loopback servers: every HTTP/1.1 edge the relay meets.

The servers are real sockets (asyncio.start_server on 127.0.0.1) that answer with exact bytes,
so framing (HEAD, 204, interim 1xx, chunked, close-delimited), keep-alive reuse, a vendor that
closed an idle connection, back-pressure and malformed answers are all exercised for real.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from proxy.upstream.pool import Address, ConnectionPool
from proxy.upstream.wire import HIGH_WATER, PoolKey, UpstreamConnectionError

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # head → keep the connection?


@dataclass
class Scripted:
    """A loopback server answering each request head with ``answer``; counts connections."""

    answer: Answer
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


async def serve(script: Scripted) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                script.heads.append(head)
                script.bodies.append(await read_body(reader, head))
                if not await script.answer(head, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    return server


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        return await reader.readexactly(length)
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while (size := int((await reader.readuntil(b"\r\n")).strip(), 16)) > 0:
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
        return body
    return b""


def respond(raw: bytes, *, keep: bool = True) -> Answer:
    async def answer(_head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return keep

    return answer


@pytest.fixture
async def pools() -> AsyncIterator[Callable[..., ConnectionPool]]:
    made: list[ConnectionPool] = []

    def make(port: int, *, limit_per_host: int = 10) -> ConnectionPool:
        async def resolve(_host: str, _port: int) -> Sequence[Address]:
            return [(socket.AF_INET, "127.0.0.1", port)]

        pool = ConnectionPool(
            resolve, ssl.create_default_context(), limit=20, limit_per_host=limit_per_host
        )
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.close()


KEY = PoolKey("http", "vendor.example", 80)
HEADERS = [("Host", "vendor.example")]


async def get(pool: ConnectionPool, method: str = "GET", body: bytes | None = None) -> bytes:
    response = await pool.request(
        KEY, method, "/", HEADERS, body, connect=2, first_byte=2, idle_read=2
    )
    try:
        return b"%d " % response.status + await response.read()
    finally:
        response.release()


async def test_keep_alive_reuses_one_connection(pools: Callable[..., ConnectionPool]) -> None:
    script = Scripted(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    async with await serve(script):
        pool = pools(script.port)
        assert [await get(pool) for _ in range(3)] == [b"200 ok"] * 3
        assert script.connections == 1
        assert script.heads[0] == b"GET / HTTP/1.1\r\nHost: vendor.example\r\n\r\n"


async def test_head_response_has_no_body_and_its_connection_is_not_reused(
    pools: Callable[..., ConnectionPool],
) -> None:
    script = Scripted(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"))
    async with await serve(script):
        pool = pools(script.port)
        assert await get(pool, "HEAD") == b"200 "
        assert await get(pool, "HEAD") == b"200 "
        assert script.connections == 2


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_end_at_the_head(
    status: int, pools: Callable[..., ConnectionPool]
) -> None:
    script = Scripted(respond(b'HTTP/1.1 %d Nothing\r\nETag: "x"\r\n\r\n' % status))
    async with await serve(script):
        pool = pools(script.port)
        assert await get(pool) == b"%d " % status
        assert await get(pool) == b"%d " % status
        assert script.connections == 1


async def test_interim_responses_are_skipped(pools: Callable[..., ConnectionPool]) -> None:
    script = Scripted(
        respond(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nfinal"
        )
    )
    async with await serve(script):
        pool = pools(script.port)
        response = await pool.request(
            KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2
        )
        assert response.status == 200
        assert response.headers.getall("X-Final") == ["yes"] and "Link" not in response.headers
        assert await response.read() == b"final"


async def test_chunked_and_close_delimited_bodies(pools: Callable[..., ConnectionPool]) -> None:
    chunked = Scripted(
        respond(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
    )
    until_close = Scripted(respond(b"HTTP/1.0 200 OK\r\n\r\nall of it", keep=False))
    async with await serve(chunked), await serve(until_close):
        assert await get(pools(chunked.port)) == b"200 abcde"
        assert await get(pools(until_close.port)) == b"200 all of it"


def first_request_only(raw: bytes) -> Answer:
    """Answers the first request on each connection and drops the connection on the second:
    the race where a vendor closes an idle connection just as the next request is sent."""
    served: set[int] = set()

    async def answer(_head: bytes, writer: asyncio.StreamWriter) -> bool:
        if id(writer) in served:
            return False  # closed without a word
        served.add(id(writer))
        writer.write(raw)
        return True

    return answer


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_an_idempotent_request_on_a_dropped_connection_is_sent_again(
    pools: Callable[..., ConnectionPool],
) -> None:
    script = Scripted(first_request_only(OK))
    async with await serve(script):
        pool = pools(script.port)
        assert await get(pool) == b"200 ok"
        assert await get(pool, "PUT", b"a=1") == b"200 ok"
        assert script.connections == 2 and script.bodies[-2:] == [b"a=1", b"a=1"]


async def test_a_post_is_never_sent_again_by_the_proxy(
    pools: Callable[..., ConnectionPool],
) -> None:
    """RFC 9110 §9.2.2: a proxy must not retry a non-idempotent request by itself."""
    script = Scripted(first_request_only(OK))
    async with await serve(script):
        pool = pools(script.port)
        assert await get(pool) == b"200 ok"
        with pytest.raises(UpstreamConnectionError):
            await get(pool, "POST", b"a=1")
        assert script.connections == 1


async def test_a_connection_closed_while_idle_is_not_used(
    pools: Callable[..., ConnectionPool],
) -> None:
    """A vendor's close that has arrived takes the connection out of the pool at once."""
    script = Scripted(respond(OK, keep=False))
    async with await serve(script):
        pool = pools(script.port)
        assert await get(pool) == b"200 ok"
        await asyncio.sleep(0.05)
        assert await get(pool, "POST", b"a=1") == b"200 ok"
        assert script.connections == 2


async def test_an_unread_body_closes_its_connection(pools: Callable[..., ConnectionPool]) -> None:
    script = Scripted(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"))
    async with await serve(script):
        pool = pools(script.port)
        response = await pool.request(
            KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2
        )
        response.release()  # nothing read: the connection cannot be trusted for another request
        assert await get(pool) == b"200 0123456789"
        assert script.connections == 2


async def test_malformed_response_is_a_connection_error(
    pools: Callable[..., ConnectionPool],
) -> None:
    script = Scripted(respond(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", keep=False))
    async with await serve(script):
        with pytest.raises(UpstreamConnectionError):
            await get(pools(script.port))


@pytest.mark.parametrize(
    "headers", [[("X-A", "1\r\nX-Injected: yes")], [("X-A\r\nX-B", "1")], [("X-A", "a\x00b")]]
)
async def test_header_injection_is_refused_before_anything_is_sent(
    headers: list[tuple[str, str]], pools: Callable[..., ConnectionPool]
) -> None:
    script = Scripted(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    async with await serve(script):
        with pytest.raises(ValueError, match="unsafe"):
            await pools(script.port).request(
                KEY, "GET", "/", headers, None, connect=2, first_byte=2, idle_read=2
            )
        await asyncio.sleep(0.05)
        assert script.heads == []


async def test_streamed_request_body_is_chunked(pools: Callable[..., ConnectionPool]) -> None:
    script = Scripted(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one,", b"", b"two"):
            yield part

    async with await serve(script):
        pool = pools(script.port)
        response = await pool.request(
            KEY, "POST", "/up", HEADERS, parts(), connect=2, first_byte=2, idle_read=2
        )
        await response.read()
        assert b"Transfer-Encoding: chunked" in script.heads[0]
        assert script.bodies == [b"one,two"]


async def test_a_slow_reader_pauses_the_socket(pools: Callable[..., ConnectionPool]) -> None:
    """Back-pressure: a reader that does not ask for more leaves at most ~HIGH_WATER buffered."""
    size = 8 * HIGH_WATER
    script = Scripted(
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
    )
    async with await serve(script):
        pool = pools(script.port)
        response = await pool.request(
            KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2
        )
        await asyncio.sleep(0.3)  # the vendor writes as fast as it can meanwhile
        # pausing takes effect after the read in progress: asyncio reads up to 256 KiB at once
        assert response._conn.buffered <= HIGH_WATER + 256 * 1024
        assert len(await response.read()) == size


async def test_first_byte_deadline(pools: Callable[..., ConnectionPool]) -> None:
    async def silent(_head: bytes, _writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    script = Scripted(silent)
    async with await serve(script):
        pool = pools(script.port)
        with pytest.raises(TimeoutError):
            await pool.request(
                KEY, "GET", "/", HEADERS, None, connect=2, first_byte=0.2, idle_read=2
            )


async def test_per_host_limit_queues_requests(pools: Callable[..., ConnectionPool]) -> None:
    script = Scripted(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    async with await serve(script):
        pool = pools(script.port, limit_per_host=1)
        results = await asyncio.gather(*(get(pool) for _ in range(5)))
        assert results == [b"200 ok"] * 5
        assert script.connections == 1  # one at a time, each reusing the one connection
