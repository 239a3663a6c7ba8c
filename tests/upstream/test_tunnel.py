"""The pool through an HTTP proxy (review mode's hop), against a small scripted loopback proxy:
the CONNECT it sends, a refused tunnel, a proxy that never answers, TLS inside the tunnel,
the vendor guard before the CONNECT, and tunnelled connections pooled apart from direct ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from proxy.core.hostmap import Origin
from proxy.core.settings import Settings, Timeouts
from proxy.upstream.client import UpstreamClient, read_small
from proxy.upstream.errors import ForbiddenUpstream, UpstreamTimeout, UpstreamUnreachable
from proxy.upstream.pool import Address, ConnectionPool
from proxy.upstream.wire import PoolKey
from tests.upstream.test_client import (
    SECURE,
    VENDOR,
    Pki,
    Seen,
    StubResolver,
    pki,  # noqa: F401 — the module-scoped test CA fixture
    port_of,
    recording_app,
    tls_vendor,
)

Server = Callable[..., Awaitable[TestServer]]
OK: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n"
ACME = Origin("https", VENDOR, 443)


@dataclass
class ScriptedProxy:
    """Records each CONNECT head; answers ``answer`` (None: never) and, after a 200, splices
    the tunnel to 127.0.0.1 at the CONNECT's port."""

    answer: bytes | None = OK
    heads: list[bytes] = field(default_factory=list)
    port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: the CONNECT, the scripted answer, then the splice."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        if self.answer is None:
            await reader.read()  # silent until the client gives up
            writer.close()
            return
        writer.write(self.answer)
        if self.answer != OK:
            writer.close()
            return
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[..., Awaitable[ScriptedProxy]]]:
    """Start ScriptedProxies on 127.0.0.1; closed after the test."""
    servers: list[asyncio.Server] = []

    async def start(answer: bytes | None = OK) -> ScriptedProxy:
        scripted = ScriptedProxy(answer)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        scripted.port = server.sockets[0].getsockname()[1]
        return scripted

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[UpstreamClient]]:
    """UpstreamClients to close after the test."""
    made: list[UpstreamClient] = []
    yield made
    for client in made:
        await client.close()


def tunnelled(
    made: list[UpstreamClient],
    overrides: dict[str, str],
    via: str,
    timeouts: Timeouts | None = None,
    **kwargs: object,
) -> UpstreamClient:
    """An UpstreamClient whose connections go through the proxy at ``via``."""
    settings = Settings(upstream_overrides=overrides, timeouts=timeouts or Timeouts())
    client = UpstreamClient.create(settings, proxy=via, **kwargs)  # type: ignore[arg-type]
    made.append(client)
    return client


async def fetch(client: UpstreamClient, origin: Origin = ACME, path: str = "/") -> bytes:
    """A GET the way the relay sends it; the body."""
    target = client.target_url(origin, path)
    response = await client.send("GET", target, headers=[("Host", origin.authority)])
    return await read_small(response)


async def test_connect_names_the_vendor_and_the_request_goes_through(
    aiohttp_server: Server,
    proxy: Callable[..., Awaitable[ScriptedProxy]],
    clients: list[UpstreamClient],
) -> None:
    """#14.4: one CONNECT host:port with Host, then the request as production sends it."""
    seen = Seen()
    vendor = await aiohttp_server(recording_app(seen, b"public vendor"))
    hop = await proxy()
    client = tunnelled(clients, {VENDOR: f"http://127.0.0.1:{vendor.port}"}, hop.url)
    assert await fetch(client) == b"public vendor"
    assert await fetch(client, path="/again") == b"public vendor"  # the tunnel is reused
    authority = f"{VENDOR}:{vendor.port}".encode()
    assert hop.heads == [b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)]
    assert [r[1] for r in seen.requests] == ["/", "/again"]
    assert seen.headers(0) == [("Host", VENDOR)]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 502 Bad Gateway\r\n\r\n",
        b"HTTP/1.1 2000 Odd\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        OK + b"HTTP/1.1 200 OK\r\n\r\n",  # the "vendor" spoke before it was asked
    ],
)
async def test_a_refused_tunnel_is_unreachable(
    answer: bytes, proxy: Callable[..., Awaitable[ScriptedProxy]], clients: list[UpstreamClient]
) -> None:
    """#14.4: any CONNECT answer but a clean 200 is a 502 (UpstreamUnreachable)."""
    hop = await proxy(answer)
    client = tunnelled(clients, {VENDOR: "http://127.0.0.1:9"}, hop.url)
    with pytest.raises(UpstreamUnreachable) as caught:
        await fetch(client)
    assert caught.value.status_hint == 502
    assert len(hop.heads) == 1


async def test_a_silent_proxy_hits_the_connect_deadline(
    proxy: Callable[..., Awaitable[ScriptedProxy]], clients: list[UpstreamClient]
) -> None:
    """#14.4: the connect deadline covers the CONNECT answer: a silent proxy is a 504."""
    hop = await proxy(None)
    fast = Timeouts(connect=0.3, first_byte=5, idle_read=5)
    client = tunnelled(clients, {VENDOR: "http://127.0.0.1:9"}, hop.url, fast)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await fetch(client)
    assert time.monotonic() - started < 2
    assert len(hop.heads) == 1


async def test_tls_inside_the_tunnel_is_the_vendors(
    aiohttp_server: Server,
    pki: Pki,  # noqa: F811
    proxy: Callable[..., Awaitable[ScriptedProxy]],
    clients: list[UpstreamClient],
) -> None:
    """#14.4: through the tunnel TLS names the vendor (SNI) and is verified against the CA."""
    sni: list[str | None] = []
    vendor = await tls_vendor(aiohttp_server, pki.leaf, sni)
    hop = await proxy()
    overrides = {SECURE: f"https://127.0.0.1:{vendor.port}"}
    client = tunnelled(clients, overrides, hop.url, ca_file=pki.ca_file)
    assert await fetch(client, Origin("https", SECURE, 443)) == b"secure vendor"
    assert sni == [SECURE]
    untrusting = tunnelled(clients, overrides, hop.url)  # the test CA not trusted: a 502
    with pytest.raises(UpstreamUnreachable):
        await fetch(untrusting, Origin("https", SECURE, 443))


async def test_a_forbidden_vendor_is_refused_before_the_connect(
    proxy: Callable[..., Awaitable[ScriptedProxy]], clients: list[UpstreamClient]
) -> None:
    """#14.4: the vendor host passes the production guard first; the proxy sees nothing."""
    hop = await proxy()
    resolver = StubResolver(["10.1.2.3"])
    client = tunnelled(clients, {}, hop.url, base_resolver=resolver)
    with pytest.raises(ForbiddenUpstream):
        await fetch(client, Origin("http", "intranet.example", 80))
    with pytest.raises(ForbiddenUpstream):
        await client.send("GET", URL("http://169.254.169.254/"), headers=[])
    assert hop.heads == []


async def test_tunnelled_connections_are_pooled_apart_from_direct_ones(
    aiohttp_server: Server, proxy: Callable[..., Awaitable[ScriptedProxy]]
) -> None:
    """#14.4: one pool, the same vendor: a direct and a tunnelled key never share a connection."""
    seen = Seen()
    vendor = await aiohttp_server(recording_app(seen, b"public vendor"))
    hop = await proxy()

    async def resolve(host: str, port: int) -> list[Address]:
        return [(socket.AF_INET, "127.0.0.1", port)]

    pool = ConnectionPool(resolve, ssl.create_default_context())
    direct = PoolKey("http", VENDOR, port_of(vendor))
    via = PoolKey("http", VENDOR, port_of(vendor), ("127.0.0.1", hop.port))
    try:
        for key in (direct, via, direct, via):
            response = await pool.request(
                key, "GET", "/", [("Host", VENDOR)], None, connect=5, first_byte=5, idle_read=5
            )
            assert await response.read() == b"public vendor"
            response.release()
    finally:
        await pool.close()
    assert len(hop.heads) == 1  # one tunnel, reused
    assert len(set(seen.peers)) == 2  # the direct connection and the proxy's, each reused
