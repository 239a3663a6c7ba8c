"""R3: the pool's slots always come back — a queue deadline, and a deadline on unread responses.

Real loopback vendors (tests/upstream/test_pool.py's scripted servers); the callers here
hold responses without reading them, read a little and stop, or abandon them.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from proxy.core.hostmap import Origin
from proxy.core.settings import Settings, Upstream
from proxy.upstream.client import UpstreamClient
from proxy.upstream.errors import UpstreamBusy
from proxy.upstream.pool import Address, ConnectionPool
from proxy.upstream.wire import HIGH_WATER, PoolKey, ResponseAbandoned
from tests.upstream.test_pool import Scripted, respond, serve

KEY = PoolKey("http", "vendor.example", 80)
HEADERS = [("Host", "vendor.example")]
BIG = 16 * HIGH_WATER
ENDLESS = respond(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"x" * BIG)
OK = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

MakePool = Callable[..., ConnectionPool]


@pytest.fixture
async def pools() -> AsyncIterator[MakePool]:
    made: list[ConnectionPool] = []

    def make(port: int, **limits: float) -> ConnectionPool:
        async def resolve(_host: str, _port: int) -> Sequence[Address]:
            return [(socket.AF_INET, "127.0.0.1", port)]

        pool = ConnectionPool(resolve, ssl.create_default_context(), **limits)  # type: ignore[arg-type]
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.close()


async def get(pool: ConnectionPool) -> bytes:
    response = await pool.request(
        KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2
    )
    return await response.read()


async def test_waiting_for_a_slot_has_a_deadline(pools: MakePool) -> None:
    """R3: with every slot held, a request fails after queue_timeout with a 503 error."""
    script = Scripted(OK)
    async with await serve(script):
        pool = pools(script.port, limit_per_host=1, limit=4, queue_timeout=0.2)
        held = await pool.request(
            KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2
        )
        async with asyncio.timeout(3):
            with pytest.raises(UpstreamBusy) as caught:
                await get(pool)
        assert caught.value.status_hint == 503
        held.release()
        assert await get(pool) == b"ok"


async def test_a_caller_that_stops_reading_gives_its_slot_back(pools: MakePool) -> None:
    """R3: a response whose reader stops (a browser that never reads) is closed after
    unread_timeout, its slot goes to the next patron, and a late read is an error."""
    script = Scripted(ENDLESS)
    async with await serve(script):
        pool = pools(script.port, limit_per_host=1, limit=4, unread_timeout=0.3)
        stuck = await pool.request(
            KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2
        )
        body = stuck.chunks()
        await anext(body)  # one chunk, then the caller stops reading (and never releases)
        async with asyncio.timeout(3):
            assert len(await get(pool)) == BIG
        with pytest.raises(ResponseAbandoned):
            await anext(body)


async def test_an_abandoned_response_gives_its_slot_back(pools: MakePool) -> None:
    """R3: a response dropped without a read or a release still frees its slot."""
    script = Scripted(OK)
    async with await serve(script):
        pool = pools(script.port, limit_per_host=1, limit=4, unread_timeout=0.2)
        await pool.request(KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2)
        gc.collect()
        async with asyncio.timeout(3):
            assert await get(pool) == b"ok"


async def test_a_slow_but_steady_reader_is_not_cut(pools: MakePool) -> None:
    """R3: the unread deadline counts from the last read, not from the response's start."""
    script = Scripted(ENDLESS)
    async with await serve(script):
        pool = pools(script.port, unread_timeout=0.25)
        response = await pool.request(
            KEY, "GET", "/", HEADERS, None, connect=2, first_byte=2, idle_read=2
        )
        size = 0
        async for chunk in response.chunks():
            size += len(chunk)
            await asyncio.sleep(0.05 if size < 4 * HIGH_WATER else 0)
        assert size == BIG


async def test_the_upstream_settings_set_the_client_pool_limits() -> None:
    """R3: ``upstream.max_per_host`` and ``upstream.queue_timeout`` reach the client's pool:
    a second request to a vendor whose one slot is held gets the 503 error."""
    script = Scripted(OK)
    async with await serve(script):
        settings = Settings(
            upstream_overrides={"vendor.example": f"http://127.0.0.1:{script.port}"},
            upstream=Upstream(max_per_host=1, queue_timeout=0.2),
        )
        client = UpstreamClient.create(settings)
        origin = Origin("https", "vendor.example", 443)
        url = client.target_url(origin, "/")
        try:
            held = await client.send("GET", url, headers={"Host": "vendor.example"})
            with pytest.raises(UpstreamBusy):
                await client.send("GET", url, headers={"Host": "vendor.example"})
            held.release()
        finally:
            await client.close()


def test_max_per_host_may_not_exceed_max_total() -> None:
    """R3: a per-host limit above the total limit is a configuration error."""
    with pytest.raises(ValueError, match="max_per_host"):
        Upstream(max_per_host=10, max_total=5)
