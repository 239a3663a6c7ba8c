"""Review mode records what production sends (#14 item 4): one upstream client, one pool.

The same relayed requests go to a loopback vendor that records raw request heads, once
through a direct ``UpstreamClient`` and once through an ``UpstreamClient`` tunnelled through
a real in-process mitmproxy review hop (as ``review`` runs it); the heads must be the same
bytes: request line, header names (case), order, duplicates and values.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from proxy.core.hostmap import Origin
from proxy.core.settings import Settings
from proxy.demo.pages import WWW_HOST
from proxy.review.runner import ReviewHop, ReviewPlan, make_addon
from proxy.rulebook import Rulebook
from proxy.upstream.client import UpstreamClient, read_small
from tests.review.test_review_e2e import REVIEW
from tests.upstream.test_client import _issue, _write
from tests.web.conftest import demo_settings

# What the header policy hands the client for a browser's form post: mixed case, a
# duplicate field, a value that is not UTF-8 (kept byte for byte), the browser's framing.
RELAYED: list[tuple[str, str]] = [
    ("Host", WWW_HOST),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-GB,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("X-Patron-Pseudonym", "p-7f3a"),
    ("X-Dup", "one"),
    ("Cookie", "vendor_sid=abc; pref=1"),
    ("X-Dup", "two"),
    ("X-Raw", "caf\udce9"),
    ("Content-Type", "application/x-www-form-urlencoded"),
    ("Content-Length", "7"),
]
REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/search?q=tides&page=2", None),
    ("POST", "/search", b"q=tides"),
    ("GET", "/article/4", None),  # on the kept-alive connection
]


@dataclass
class RawVendor:
    """A loopback vendor that records each request head exactly as the bytes arrived."""

    heads: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer every request on the connection with a tiny 200 (keep-alive)."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


Started = Callable[..., Awaitable[RawVendor]]


@pytest.fixture
async def raw_vendor() -> AsyncIterator[Started]:
    """Start RawVendors (plain or TLS) on 127.0.0.1; closed after the test."""
    servers: list[asyncio.Server] = []

    async def start(context: ssl.SSLContext | None = None) -> RawVendor:
        vendor = RawVendor()
        server = await asyncio.start_server(vendor.handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        vendor.port = server.sockets[0].getsockname()[1]
        return vendor

    yield start
    for server in servers:
        server.close()


async def send_all(client: UpstreamClient, scheme: str) -> None:
    """The REQUESTS as the relay sends them (target_url, the policy's headers, a body)."""
    origin = Origin("https" if scheme == "https" else "http", WWW_HOST, 443)
    for method, path, body in REQUESTS:
        headers = RELAYED if body else [h for h in RELAYED if h[0] != "Content-Length"]
        response = await client.send(
            method, client.target_url(origin, path), headers=headers, body=body
        )
        assert (response.status, await read_small(response)) == (200, b"ok")


@dataclass
class Hop:
    """A started review hop and the settings it serves."""

    hop: ReviewHop
    settings: Settings


async def start_hop(tmp_path: Path, settings: Settings, upstream_ca: Path | None) -> ReviewHop:
    """The review hop exactly as ``review`` builds it (the demo's acme rule under review)."""
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    plan = ReviewPlan("acme", tmp_path / "out", tmp_path / "certs" / "review", REVIEW)
    hop = ReviewHop(make_addon(settings, book, plan), plan.certs_dir, upstream_ca=upstream_ca)
    await hop.start()
    return hop


def vendor_tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for WWW_HOST issued by a fresh test CA, and that CA's file."""
    ca = _issue("clamshell review test CA", None, ca=True)
    ca_file = _write(tmp_path, "ca", ca)[0]
    leaf = _write(tmp_path, "leaf", _issue(WWW_HOST, ca, ca=False))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*leaf)
    return context, Path(ca_file)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_review_sends_the_same_head_bytes_as_production(
    scheme: str, raw_vendor: Started, tmp_path: Path
) -> None:
    """#14.4: through the review hop the vendor gets the same request heads, byte for byte."""
    context, ca_file = vendor_tls(tmp_path) if scheme == "https" else (None, None)
    direct_vendor, reviewed_vendor = await raw_vendor(context), await raw_vendor(context)
    clients: list[UpstreamClient] = []
    hop: ReviewHop | None = None
    try:
        for vendor in (direct_vendor, reviewed_vendor):
            override = {WWW_HOST: f"{scheme}://127.0.0.1:{vendor.port}"}
            settings = demo_settings(tmp_path, vendor.port, upstream_overrides=override)
            extra: dict[str, Any] = {"ca_file": str(ca_file)} if ca_file else {}
            if vendor is reviewed_vendor:
                hop = await start_hop(tmp_path, settings, ca_file)
                extra = {"ca_file": str(hop.ca_file), "proxy": hop.proxy_url}
            clients.append(UpstreamClient.create(settings, **extra))
            await send_all(clients[-1], scheme)
        assert hop is not None and len(hop.addon.observed) == len(REQUESTS)  # really recorded
    finally:
        for client in clients:
            await client.close()
        if hop is not None:
            await hop.stop()
    assert len(direct_vendor.heads) == len(REQUESTS)
    assert reviewed_vendor.heads == direct_vendor.heads
    assert b"\r\nX-Raw: caf\xe9\r\n" in reviewed_vendor.heads[0]
