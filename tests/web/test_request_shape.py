"""Request-shape guards on a real listening socket: absolute-form, odd Host, slow clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from proxy.server import start_site
from tests.web.conftest import Stack, StackFactory
from tests.web.helpers import raw_exchange

RUNNERS: list[web.AppRunner] = []


@pytest.fixture(autouse=True)
async def cleanup_runners() -> AsyncIterator[None]:
    """Stop the listeners a test started."""
    yield
    while RUNNERS:
        await RUNNERS.pop().cleanup()


async def listening(stack: Stack, port: int, *, client_idle: float = 15.0) -> None:
    """Serve the stack's app on a real port, as `serve` does."""
    RUNNERS.append(await start_site(stack.app, "127.0.0.1", port, client_idle=client_idle))


def status_of(answer: bytes) -> bytes:
    """The status code of a raw HTTP answer."""
    return answer.split(b"\r\n", 1)[0].split(b" ")[1]


async def test_absolute_form_request_line_is_400(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """GET http://169.254.169.254/ (absolute form) is refused; nothing reaches a vendor."""
    stack: Stack = await make_stack()
    await listening(stack, unused_tcp_port)
    answer = await raw_exchange(
        unused_tcp_port,
        b"GET http://169.254.169.254/latest HTTP/1.1\r\n"
        b"Host: proxy.localhost:8080\r\nConnection: close\r\n\r\n",
    )
    assert status_of(answer) == b"400"
    assert stack.vendor.records == []


async def test_duplicate_host_headers_are_400(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """Two Host headers are ambiguous and refused."""
    stack: Stack = await make_stack()
    await listening(stack, unused_tcp_port)
    answer = await raw_exchange(
        unused_tcp_port,
        b"GET / HTTP/1.1\r\nHost: proxy.localhost:8080"
        b"\r\nHost: www-acmejournals-test.proxy.localhost:8080\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status_of(answer) == b"400"


async def test_slow_headers_are_cut_off(
    make_stack: StackFactory, unused_tcp_port: int, tmp_path: Path
) -> None:
    """A client that never finishes its headers is disconnected after client_idle seconds."""
    stack: Stack = await make_stack()
    await listening(stack, unused_tcp_port, client_idle=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await raw_exchange(unused_tcp_port, b"GET / HTTP/1.1\r\nHost: proxy.local", wait=10.0)
    assert answer == b""  # closed without an answer
    assert loop.time() - started < 9.0  # cut by the server, not by our own wait


async def signed_in_cookie(stack: Stack) -> bytes:
    """A Cookie header line for a fresh session of the adult demo card."""
    from tests.web.helpers import post_login, session_of

    card = stack.card("adult card")
    cookie = session_of(await post_login(stack.client, card.barcode, card.secret))["Cookie"]
    return f"Cookie: {cookie}\r\n".encode()


MAPPED = b"Host: www-acmejournals-test.proxy.localhost:8080\r\n"


async def test_expect_continue_for_a_huge_body_is_413_without_100(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """R22: Expect: 100-continue with a 2 GiB Content-Length gets 413, never a 100 Continue."""
    stack: Stack = await make_stack()
    await listening(stack, unused_tcp_port)
    cookie = await signed_in_cookie(stack)
    reader, writer = await asyncio.open_connection("127.0.0.1", unused_tcp_port)
    writer.write(
        b"POST /form HTTP/1.1\r\n" + MAPPED + cookie + b"Expect: 100-continue\r\n"
        b"Content-Length: 2147483648\r\nConnection: close\r\n\r\n"
    )
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert status_of(head) == b"413"
    assert stack.vendor.records == []


async def test_expect_continue_is_answered_once_the_relay_reads(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """R22: an acceptable upload still gets its 100 Continue, then the vendor's answer."""
    stack: Stack = await make_stack()
    await listening(stack, unused_tcp_port)
    cookie = await signed_in_cookie(stack)
    reader, writer = await asyncio.open_connection("127.0.0.1", unused_tcp_port)
    writer.write(
        b"POST /form HTTP/1.1\r\n" + MAPPED + cookie + b"Expect: 100-continue\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 11\r\nConnection: close\r\n\r\n"
    )
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"topic=tide")
        writer.write(b"s")
        answer = await reader.read()
    writer.close()
    assert status_of(answer) == b"200"
    assert [r.body for r in stack.vendor.records] == [b"topic=tides"]


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT"])  # TRACK: llhttp answers 400 itself
async def test_trace_like_methods_are_405_with_allow(
    make_stack: StackFactory, unused_tcp_port: int, method: bytes
) -> None:
    """R22: TRACE and CONNECT on a mapped host get 405 with Allow; nothing is relayed."""
    stack: Stack = await make_stack()
    await listening(stack, unused_tcp_port)
    cookie = await signed_in_cookie(stack)
    answer = await raw_exchange(
        unused_tcp_port,
        method + b" /echo HTTP/1.1\r\n" + MAPPED + cookie + b"Connection: close\r\n\r\n",
    )
    assert status_of(answer) == b"405"
    assert b"\r\nAllow: GET, HEAD, POST" in answer
    assert stack.vendor.records == []


async def test_trickled_body_is_cut_by_the_total_deadline(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """R9: a body trickled one byte per second (never idle long enough for client_body) gets
    408 once its size-aware total deadline has passed."""
    stack: Stack = await make_stack(
        timeouts={"client_body": 5, "client_body_total": 1, "client_body_min_rate": 1000}
    )
    await listening(stack, unused_tcp_port)
    cookie = await signed_in_cookie(stack)
    reader, writer = await asyncio.open_connection("127.0.0.1", unused_tcp_port)
    writer.write(
        b"POST /form HTTP/1.1\r\n" + MAPPED + cookie + b"Content-Length: 100\r\n"
        b"Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    )
    started = asyncio.get_running_loop().time()
    answer = b""
    with contextlib.suppress(ConnectionError):
        for _ in range(8):  # 8 s at most: far less than the body would take
            writer.write(b"x")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    answer += await reader.read(65536)
            if answer:
                break
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert asyncio.get_running_loop().time() - started < 5
