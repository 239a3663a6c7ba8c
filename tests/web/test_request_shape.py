"""Request-shape guards on a real listening socket: absolute-form, odd Host, slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from proxy.server import start_site
from tests.web.conftest import Stack, StackFactory


async def raw_exchange(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send raw bytes to the listener and read until it closes (or ``wait`` passes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(wait):
            return await reader.read()
    finally:
        writer.close()


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
