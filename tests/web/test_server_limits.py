"""Connection caps at accept time (R9): one host's flood must not starve the others."""

from __future__ import annotations

import asyncio
import ipaddress
import resource
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from proxy.connlimit import RESERVED_DESCRIPTORS, ConnectionCounter, total_cap
from proxy.core.settings import ServerLimits
from proxy.server import start_site
from tests.web.conftest import StackFactory

RUNNERS: list[web.AppRunner] = []
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: proxy.localhost:8080\r\nConnection: close\r\n\r\n"
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(autouse=True)
async def cleanup_runners() -> AsyncIterator[None]:
    """Stop the listeners a test started."""
    yield
    while RUNNERS:
        await RUNNERS.pop().cleanup()


async def serve(make_stack: StackFactory, port: int, counter: ConnectionCounter) -> None:
    """The stack's app on a real port behind ``counter``."""
    stack = await make_stack()
    RUNNERS.append(await start_site(stack.app, "127.0.0.1", port, counter=counter))


async def was_closed(conn: Conn) -> bool:
    """True if the server closed (or reset) this idle connection within half a second."""
    try:
        return await asyncio.wait_for(conn[0].read(1), 0.5) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def healthz(port: int, source: str = "127.0.0.1") -> bytes:
    """The status line of /healthz asked from ``source`` (b'' if the server closed at once)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writer.write(HEALTHZ)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    except ConnectionResetError:
        return b""
    return answer.split(b"\r\n", 1)[0]


async def test_per_address_cap_closes_the_extra_connections(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """R9: cap+10 idle connections from one address: 10 are closed, others still served."""
    cap = 20
    await serve(make_stack, unused_tcp_port, ConnectionCounter(cap, 1000))
    conns = [await asyncio.open_connection("127.0.0.1", unused_tcp_port) for _ in range(cap + 10)]
    closed = await asyncio.gather(*(was_closed(c) for c in conns))
    assert sum(closed) == 10 and not any(closed[:cap])
    assert await healthz(unused_tcp_port) == b""  # this address is still at its cap
    assert await healthz(unused_tcp_port, "127.0.0.2") == b"HTTP/1.1 200 OK"
    for _, writer in conns:
        writer.close()
    for _ in range(50):  # the server sees the closes shortly
        await asyncio.sleep(0.05)
        if await healthz(unused_tcp_port) == b"HTTP/1.1 200 OK":
            return
    pytest.fail("the address stayed refused after its connections closed")


async def test_total_cap_refuses_every_address(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """R9: past the global cap a new connection is closed whatever its address."""
    await serve(make_stack, unused_tcp_port, ConnectionCounter(100, 5))
    conns = [await asyncio.open_connection("127.0.0.1", unused_tcp_port) for _ in range(5)]
    assert not any(await asyncio.gather(*(was_closed(c) for c in conns)))
    assert await healthz(unused_tcp_port, "127.0.0.2") == b""
    for _, writer in conns:
        writer.close()


def test_total_cap_stays_below_the_descriptor_limit() -> None:
    """R9: the global cap leaves descriptors for upstream connections and files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert total_cap(10**9) <= max(64, (soft - RESERVED_DESCRIPTORS) // 2)
    assert total_cap(10) == 10


def test_trusted_proxies_have_no_per_address_cap() -> None:
    """R9: a load balancer named in trusted_proxies is only under the global cap."""
    limits = ServerLimits(max_connections_per_address=1, max_connections=100)
    counter = ConnectionCounter.from_settings(limits, [ipaddress.ip_network("10.0.0.0/8")])
    assert counter.admit("10.1.2.3") and counter.admit("10.1.2.3")
    assert counter.admit("192.0.2.1") and not counter.admit("192.0.2.1")
    counter.release("192.0.2.1")
    assert counter.admit("192.0.2.1")
