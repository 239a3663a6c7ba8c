"""The edge: framing refused on a real socket (R22), headers on what leaves (R21), redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from proxy.server import redirect_app, start_site
from proxy.web.edge_headers import PORTAL_SECURITY_HEADERS, with_frame_ancestors
from tests.web.conftest import PORTAL, Stack, StackFactory, demo_settings
from tests.web.helpers import post_login, raw_exchange, session_of

RUNNERS: list[web.AppRunner] = []


@pytest.fixture(autouse=True)
async def cleanup_runners() -> AsyncIterator[None]:
    """Stop the listeners a test started."""
    yield
    while RUNNERS:
        await RUNNERS.pop().cleanup()


async def serve(make_stack: StackFactory, port: int) -> Stack:
    """A stack whose app listens on a real port, as `serve` does."""
    stack: Stack = await make_stack()
    RUNNERS.append(await start_site(stack.app, "127.0.0.1", port))
    return stack


def status_of(answer: bytes) -> bytes:
    """The status code of a raw HTTP answer."""
    return answer.split(b"\r\n", 1)[0].split(b" ")[1]


HOST_LINE = b"Host: proxy.localhost:8080\r\n"


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9"])
async def test_other_http_versions_are_505(
    make_stack: StackFactory, unused_tcp_port: int, version: bytes
) -> None:
    """R22: a request line naming HTTP/2.0 or 0.9 on the HTTP/1 listener is 505, then closed."""
    await serve(make_stack, unused_tcp_port)
    answer = await raw_exchange(
        unused_tcp_port, b"GET /healthz " + version + b"\r\n" + HOST_LINE + b"\r\n"
    )
    assert status_of(answer) == b"505"


@pytest.mark.parametrize(
    ("version", "coding"),
    [
        (b"1.1", b"identity, chunked"),
        (b"1.1", b"gzip, chunked"),
        (b"1.1", b"chunked, chunked"),
        (b"1.0", b"chunked"),
    ],
)
async def test_transfer_encoding_other_than_chunked_is_400_and_closes(
    make_stack: StackFactory, unused_tcp_port: int, version: bytes, coding: bytes
) -> None:
    """R22: only a lone ``chunked`` on HTTP/1.1 is accepted; the smuggled request never runs."""
    await serve(make_stack, unused_tcp_port)
    smuggled = b"GET /healthz HTTP/1.1\r\n" + HOST_LINE + b"\r\n"
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    answer = await raw_exchange(
        unused_tcp_port,
        b"POST /healthz HTTP/" + version + b"\r\n" + HOST_LINE
        + b"Transfer-Encoding: " + coding + b"\r\n\r\n" + body,
    )  # fmt: skip
    assert status_of(answer) == b"400"
    assert answer.count(b"HTTP/1.") == 1  # one answer, then the connection was closed


async def test_lone_chunked_is_still_accepted(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """R22: ``Transfer-Encoding: chunked`` alone (any case) on HTTP/1.1 is served."""
    await serve(make_stack, unused_tcp_port)
    answer = await raw_exchange(
        unused_tcp_port,
        b"GET /healthz HTTP/1.1\r\n" + HOST_LINE
        + b"Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    )  # fmt: skip
    assert status_of(answer) == b"200"


async def test_parser_errors_name_no_server_version(
    make_stack: StackFactory, unused_tcp_port: int
) -> None:
    """R21: aiohttp's own 400 for an unparsable request says ``Server: clamshell``, no version."""
    await serve(make_stack, unused_tcp_port)
    answer = await raw_exchange(unused_tcp_port, b"GET / HTTP/1.2\r\n" + HOST_LINE + b"\r\n")
    assert status_of(answer) == b"400"
    assert b"\r\nServer: clamshell\r\n" in answer
    assert b"aiohttp" not in answer.split(b"\r\n\r\n", 1)[0]


def assert_portal_headers(headers: Any) -> None:
    """The protections the proxy puts on its own pages."""
    for name, value in PORTAL_SECURITY_HEADERS.items():
        assert headers[name] == value, name
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Server"] == "clamshell"


@pytest.mark.parametrize("path", ["/", "/login", "/healthz", "/nope", "/static/portal.css"])
async def test_portal_responses_carry_security_headers(stack: Stack, path: str) -> None:
    """R21: portal pages, JSON, static files and errors forbid framing and sniffing."""
    resp = await stack.client.get(path, headers={"Host": PORTAL})
    assert_portal_headers(resp.headers)
    assert "Strict-Transport-Security" not in resp.headers  # plain HTTP here


async def test_error_pages_on_mapped_hosts_carry_security_headers(stack: Stack) -> None:
    """R21: our own error page on a mapped host is protected like a portal page."""
    resp = await stack.client.get("/", headers={"Host": "www-jstor-org.proxy.localhost:8080"})
    assert resp.status == 404
    assert_portal_headers(resp.headers)


async def test_relayed_responses_keep_the_vendor_policy_but_not_its_server(stack: Stack) -> None:
    """R21: a relayed vendor page gets no portal headers, and its Server says clamshell."""
    card = stack.card("adult card")
    cookie = session_of(await post_login(stack.client, card.barcode, card.secret))
    host = "www-acmejournals-test.proxy.localhost:8080"
    resp = await stack.client.get("/", headers={"Host": host, **cookie}, allow_redirects=False)
    assert resp.status == 200
    assert resp.headers["Server"] == "clamshell"
    assert "X-Frame-Options" not in resp.headers
    assert "frame-ancestors 'none'" not in resp.headers.get("Content-Security-Policy", "")


def test_frame_ancestors_merges_into_an_existing_policy() -> None:
    """R21: an existing CSP keeps its directives; frame-ancestors becomes 'none'."""
    merged = with_frame_ancestors("default-src 'self'; frame-ancestors *")
    assert merged == "default-src 'self'; frame-ancestors 'none'"
    assert with_frame_ancestors(None) == "frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("host", "status", "location"),
    [
        ("proxy.localhost", 301, "https://proxy.localhost:8080/a?b"),
        ("www-acmejournals-test.proxy.localhost:80", 301, None),
        ("evil.example/x?", 400, None),
        ("evil.example", 400, None),
        ("proxy.localhost.evil.example", 400, None),
        ("xproxy.localhost", 400, None),
    ],
)
async def test_redirect_listener_only_redirects_proxy_hosts(
    aiohttp_client: Any, tmp_path: Any, host: str, status: int, location: str | None
) -> None:
    """R21: the HTTP→HTTPS listener never builds a Location for a foreign Host."""
    settings = demo_settings(tmp_path, 9, public_url="https://proxy.localhost:8080")
    client = await aiohttp_client(redirect_app(settings))
    resp = await client.get("/a?b", headers={"Host": host}, allow_redirects=False)
    assert resp.status == status
    if status == 301:
        want = location or f"https://{host.split(':')[0]}:8080/a?b"
        assert resp.headers["Location"] == want
    assert resp.headers["Server"] == "clamshell"
