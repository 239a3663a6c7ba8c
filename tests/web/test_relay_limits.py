"""What one patron may hold (R3) and limits that a new login does not reset (R10).

Real loopback servers: the proxy, a vendor of our own with slow and large answers (or the
demo vendor), raw sockets for a browser that never reads, SQLite on a temp data dir.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientPayloadError, web

from proxy.demo.patrons import demo_cards, seed
from proxy.demo.pdf import pdf_bytes
from proxy.rulebook import Rulebook
from proxy.tasks import TaskOwner
from proxy.web.app import build_app
from proxy.web.bodies import MAX_HELD
from proxy.web.keys import REGISTRY
from tests.web.conftest import Clock, Stack, StackFactory, demo_settings
from tests.web.helpers import post_login, session_of

WWW = "www-acmejournals-test.proxy.localhost:8080"
CDN = "cdn-acmejournals-test.proxy.localhost:8080"
CHUNK = 64 * 1024
MEDIA = "video/mp4"  # passed through untouched, and not a document download
PAGE_LINE = b'<a href="https://www.acmejournals.test/article/1">An article</a><br>\n'


@dataclass
class Vendor:
    """A vendor whose answers can hang, be huge, and report when they end."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    hanging: int = 0
    big_started: asyncio.Event = field(default_factory=asyncio.Event)
    big_ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def quick(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hang(self, request: web.Request) -> web.Response:
        self.hanging += 1
        await self.gate.wait()
        return web.Response(text="late")

    async def page(self, request: web.Request) -> web.StreamResponse:
        """An HTML page of ``kb`` KB (query) full of vendor links, written 64 KB at a time
        (``pause``: seconds between writes, so that the proxy reads it in several parts);
        ``short``: it ends that many bytes before its declared length; ``type``: another
        media type than HTML."""
        body = PAGE_LINE * (int(request.query["kb"]) * 1024 // len(PAGE_LINE))
        pause = float(request.query.get("pause", "0"))
        media = request.query.get("type", "text/html; charset=utf-8")
        response = web.StreamResponse(headers={"Content-Type": media})
        if request.query.get("gzip"):
            body = gzip.compress(body, mtime=0)
            response.headers["Content-Encoding"] = "gzip"
        response.content_length = len(body)
        await response.prepare(request)
        sent = body[: len(body) - int(request.query.get("short", "0"))]
        for i in range(0, len(sent), CHUNK):
            await response.write(sent[i : i + CHUNK])
            await asyncio.sleep(pause)
        if len(sent) < len(body):
            assert request.transport is not None
            request.transport.close()
        return response

    async def big(self, request: web.Request) -> web.StreamResponse:
        """``size`` megabytes (query), with Content-Length; notes when its handler ends."""
        size = int(request.query.get("mb", "64")) * 2**20
        response = web.StreamResponse(headers={"Content-Type": MEDIA})
        response.content_length = size
        await response.prepare(request)
        self.big_started.set()
        try:
            for _ in range(size // CHUNK):
                await response.write(b"x" * CHUNK)
        finally:
            self.big_ended.set()
        return response


@pytest.fixture
async def make_relay(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[Any]:
    """A proxy whose acme hosts go to a ``Vendor`` on loopback; kwargs override settings."""
    runners: list[web.AppRunner] = []

    async def factory(**extra: Any) -> tuple[Stack, Vendor]:
        vendor = Vendor()
        app = web.Application()
        app.router.add_get("/quick", vendor.quick)
        app.router.add_get("/hang", vendor.hang)
        app.router.add_get("/big", vendor.big)
        app.router.add_get("/page", vendor.page)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        settings = demo_settings(tmp_path, port, **extra)
        clock = Clock()
        book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
        proxy = await build_app(settings, book, clock=clock)
        seed(proxy[REGISTRY], settings, clock.now.date())
        cards = {c.note: c for c in demo_cards(settings, clock.now.date())}
        client = await aiohttp_client(proxy)
        return Stack(client, None, clock, settings, cards, proxy), vendor  # type: ignore[arg-type]

    yield factory
    for runner in runners:
        await runner.cleanup()


async def login(stack: Stack, note: str = "adult card") -> dict[str, str]:
    """A new session for a demo card; the Cookie header for proxy hosts."""
    card = stack.card(note)
    return session_of(await post_login(stack.client, card.barcode, card.secret))


async def get(stack: Stack, path: str, auth: dict[str, str], host: str = WWW) -> int:
    """GET through the proxy and read the body; the status."""
    resp = await stack.client.get(path, headers={"Host": host, **auth}, allow_redirects=False)
    await resp.read()
    return resp.status


async def never_reading_client(stack: Stack, path: str, auth: dict[str, str]) -> socket.socket:
    """A raw browser socket that sends one request and then reads nothing at all."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    server = stack.client.server
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    head = f"GET {path} HTTP/1.1\r\nHost: {WWW}\r\nCookie: {auth['Cookie']}\r\n\r\n"
    await asyncio.get_running_loop().sock_sendall(sock, head.encode())
    return sock


# --- R3: one patron cannot hold every vendor connection ------------------------------------


async def test_a_browser_that_never_reads_releases_its_vendor_connection(make_relay: Any) -> None:
    """R3: a client that never reads a large response is cut after the write deadline, its
    vendor connection is released, and another patron is served meanwhile."""
    stack, vendor = await make_relay(relay={"client_write_seconds": 0.5})
    slow, other = await login(stack), await login(stack)
    sock = await never_reading_client(stack, "/big?mb=64", slow)
    try:
        await asyncio.wait_for(vendor.big_started.wait(), 5)
        await asyncio.wait_for(vendor.big_ended.wait(), 5)  # main: held until the client goes
        assert await get(stack, "/quick", other) == 200
    finally:
        sock.close()


async def test_too_many_requests_in_flight_from_one_session_are_refused(make_relay: Any) -> None:
    """R3: past the per-session cap a session's next request gets 429, another session's
    passes, and the held requests complete once the vendor answers."""
    extra = {"relay": {"concurrent_per_session": 2, "concurrent_per_address": 50}}
    stack, vendor = await make_relay(**extra)
    greedy, other = await login(stack), await login(stack)
    tasks = TaskOwner()
    held = [tasks.spawn(get(stack, "/hang", greedy), name="held") for _ in range(2)]
    while vendor.hanging < 2:
        await asyncio.sleep(0.01)
    resp = await stack.client.get("/quick", headers={"Host": WWW, **greedy})
    assert resp.status == 429
    assert "Please wait a moment" in await resp.text()
    assert await get(stack, "/quick", other) == 200
    vendor.gate.set()
    assert await asyncio.gather(*held) == [200, 200]
    assert await get(stack, "/quick", greedy) == 200  # the counters came back down


async def test_too_many_requests_in_flight_from_one_address_are_refused(make_relay: Any) -> None:
    """R3: past the per-address cap, a further session from the same address gets 429."""
    extra = {"relay": {"concurrent_per_session": 10, "concurrent_per_address": 2}}
    stack, vendor = await make_relay(**extra)
    first, second, third = await login(stack), await login(stack), await login(stack)
    tasks = TaskOwner()
    held = [tasks.spawn(get(stack, "/hang", auth), name="held") for auth in (first, second)]
    while vendor.hanging < 2:
        await asyncio.sleep(0.01)
    assert await get(stack, "/quick", third) == 429
    vendor.gate.set()
    assert await asyncio.gather(*held) == [200, 200]


async def test_bytes_limit_cuts_the_response_short(make_relay: Any) -> None:
    """R3: crossing the bytes limit stops the response mid-body (not served in full) and
    suspends the card."""
    stack, _ = await make_relay(limits={"megabytes": 1})
    auth = await login(stack)
    resp = await stack.client.get("/big?mb=4", headers={"Host": WWW, **auth})
    assert resp.status == 200
    received = 0
    with pytest.raises(ClientPayloadError):
        async for chunk in resp.content.iter_chunked(CHUNK):
            received += len(chunk)
    assert received <= 2**20 + CHUNK
    assert await get(stack, "/quick", auth) == 403
    assert await get(stack, "/quick", await login(stack)) == 403  # the card, not the session


# --- R10: limits and suspensions follow the card, are checked first, and persist -----------


async def test_logging_in_again_does_not_reset_the_downloads_limit(
    make_stack: StackFactory,
) -> None:
    """R10: with downloads: 3, four logins of one card get at most 3 PDFs in all."""
    stack: Stack = await make_stack(limits={"downloads": 3})
    full = len(pdf_bytes(2))
    served = 0
    for _ in range(4):
        auth = await login(stack)
        for _ in range(5):
            resp = await stack.client.get("/pdf/article-2.pdf", headers={"Host": CDN, **auth})
            body = await resp.read()
            if resp.status != 200:
                break
            served += len(body) == full
    assert served == 3


async def test_a_suspension_survives_a_restart_and_a_new_login(make_stack: StackFactory) -> None:
    """R10: a suspended card stays suspended after logging in again and after the app
    restarts on the same data_dir."""
    stack: Stack = await make_stack(limits={"requests": 2})
    auth = await login(stack)
    assert [await get(stack, "/", auth) for _ in range(3)] == [200, 200, 403]
    assert await get(stack, "/", await login(stack)) == 403
    await stack.client.close()  # runs on_cleanup: every store is closed
    again: Stack = await make_stack(limits={"requests": 2})
    assert await get(again, "/", await login(again)) == 403
    assert await get(again, "/", await login(again, "student card")) == 200  # another card


async def test_card_sharing_in_block_mode_refuses_the_crossing_request(
    make_relay: Any,
) -> None:
    """R10: a card seen on one network too many (block mode) is refused on that request,
    not served first, and stays refused from its first network too."""
    extra = {
        "limits": {"card_networks": 1, "card_networks_action": "block"},
        "trusted_proxies": ["127.0.0.1/32"],
    }
    stack, _ = await make_relay(**extra)
    auth = await login(stack)

    async def from_network(net: str) -> int:
        headers = {"Host": WWW, "X-Forwarded-For": f"{net}.7", **auth}
        resp = await stack.client.get("/quick", headers=headers)
        await resp.read()
        return resp.status

    assert await from_network("192.0.2") == 200
    assert await from_network("198.51.100") == 403
    assert await from_network("192.0.2") == 403


# --- #19: a page read whole gets its length; a longer one streams ---------------------------


async def test_rewritten_pages_are_framed_by_length_or_streamed(make_relay: Any) -> None:
    """A page declared at most 256 KiB long is read and rewritten whole, and sent with its
    own (new) Content-Length, even when it arrives in several reads; a longer page (1 MiB)
    streams chunked. Both are rewritten completely, whatever the framing."""
    stack, _ = await make_relay()
    auth = await login(stack)
    headers = {"Host": WWW, **auth, "Accept-Encoding": "identity"}
    for query, framed in (("kb=4", True), ("kb=200&pause=0.02", True), ("kb=1024", False)):
        resp = await stack.client.get(f"/page?{query}", headers=headers)
        body = await resp.read()
        kb = int(query.partition("&")[0].removeprefix("kb="))
        lines = kb * 1024 // len(PAGE_LINE)
        assert resp.status == 200
        assert ("Content-Length" in resp.headers) is framed, query
        if framed:
            assert int(resp.headers["Content-Length"]) == len(body)
        assert b"https://www.acmejournals.test" not in body
        assert body.count(b"//www-acmejournals-test.") == lines


@pytest.mark.parametrize("media", ["", "&type=image/png"])
async def test_a_body_read_whole_that_ends_early_gets_an_error_page(
    make_relay: Any, media: str
) -> None:
    """A vendor that declares 200 KB (at most 256 KiB: read whole, rewritten or passed
    through) and closes after less fails before any header went out, so the patron gets the
    friendly error page, not a truncated body that looks whole."""
    stack, _ = await make_relay()
    auth = await login(stack)
    headers = {"Host": WWW, **auth, "Accept-Encoding": "identity"}
    resp = await stack.client.get(f"/page?kb=200&pause=0.02&short=1000{media}", headers=headers)
    body = await resp.text()
    assert resp.status == 502
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<html" in body.lower() and "Traceback" not in body


async def test_a_small_body_that_decodes_to_much_more_streams_past_the_held_limit(
    make_relay: Any,
) -> None:
    """A gzip page of a few KB that decodes to 4 MiB, for a browser that takes no coding:
    read whole (its declared length is small), but only ``MAX_HELD`` of output is held
    before the headers; the rest streams (chunked), complete and rewritten. A 200 KB page
    gzip-encoded the same way is held whole and framed by length."""
    stack, _ = await make_relay()
    auth = await login(stack)
    headers = {"Host": WWW, **auth, "Accept-Encoding": "identity"}
    for kb, framed in ((200, True), (4096, False)):
        resp = await stack.client.get(f"/page?kb={kb}&gzip=1", headers=headers)
        body = await resp.read()
        assert resp.status == 200
        assert ("Content-Length" in resp.headers) is framed, kb
        assert len(body) > (MAX_HELD if not framed else 0)
        assert b"https://www.acmejournals.test" not in body
        assert body.count(b"//www-acmejournals-test.") == kb * 1024 // len(PAGE_LINE)
