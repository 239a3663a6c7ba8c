"""The demo vendors over HTTPS: one certificate, every demo host by SNI, SNI required."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy import certs
from proxy.demo.pages import API_HOST, AUTH_HOST, BIGDB_HOST, CDN_HOST, TRACKER_HOST, WWW_HOST
from proxy.demo.tls import DEMO_TLS_HOSTS, start_vendor_tls
from proxy.demo.vendor import RequestRecorder
from proxy.tlsconfig import client_context

# The server aborts the handshake; asyncio closes the socket before the alert is flushed, so the
# client sees an EOF (SSLError) or a reset, never a session.
REFUSED = (ssl.SSLError, ConnectionResetError)
# A path each demo host answers without a 4xx/5xx.
PATHS = {
    WWW_HOST: "/",
    CDN_HOST: "/js/app.js",
    AUTH_HOST: "/login",
    API_HOST: "/v1/search?q=tls",
    BIGDB_HOST: "/",
    TRACKER_HOST: "/t.js",
}


@pytest.fixture
async def vendor(tmp_path: Path) -> AsyncIterator[tuple[int, Path, RequestRecorder]]:
    """The demo vendors over TLS with a test CA: (port, CA file, recorder)."""
    ca, cert, key = certs.test_ca(tmp_path / "tls", list(DEMO_TLS_HOSTS))
    recorder = RequestRecorder()
    runner, port = await start_vendor_tls(recorder, cert=cert, key=key)
    try:
        yield port, ca, recorder
    finally:
        await runner.cleanup()


async def https_get(
    port: int, context: ssl.SSLContext, sni: str | None, host: str, path: str = "/"
) -> bytes:
    """GET `path` over TLS to 127.0.0.1 with this SNI and Host header; the raw response."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=sni
    )
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return await reader.read()
    finally:
        writer.close()


def unverified_context(ca: Path) -> ssl.SSLContext:
    """Trusts the test CA but skips the host-name check, to see what the *server* refuses."""
    context = client_context(ca)
    context.check_hostname = False
    return context


def test_every_demo_host_has_a_path() -> None:
    """The table of paths covers every host the TLS vendor serves."""
    assert set(PATHS) == set(DEMO_TLS_HOSTS)


@pytest.mark.parametrize("host", DEMO_TLS_HOSTS)
async def test_each_demo_host_answers_over_verified_tls(
    vendor: tuple[int, Path, RequestRecorder], host: str
) -> None:
    """With SNI = the vendor host and the test CA trusted, each demo host answers its page."""
    port, ca, recorder = vendor
    response = await https_get(port, client_context(ca), host, host, PATHS[host])
    status = int(response.split(b" ", 2)[1])
    assert 200 <= status < 400, response[:200]
    assert b"unknown demo host" not in response
    assert [(r.host, r.path) for r in recorder.records] == [(host, PATHS[host].split("?")[0])]


async def test_handshake_without_sni_is_refused(vendor: tuple[int, Path, RequestRecorder]) -> None:
    """A client that sends no SNI (e.g. one that dialled the IP) gets no TLS session at all."""
    port, ca, recorder = vendor
    with pytest.raises(REFUSED):
        await https_get(port, unverified_context(ca), None, WWW_HOST)
    assert recorder.records == []


async def test_handshake_for_another_name_is_refused(
    vendor: tuple[int, Path, RequestRecorder],
) -> None:
    """SNI naming a host that is not a demo vendor is refused by the server."""
    port, ca, _ = vendor
    with pytest.raises(REFUSED):
        await https_get(port, unverified_context(ca), "other.example", WWW_HOST)


async def test_client_without_the_test_ca_refuses_the_vendor(
    vendor: tuple[int, Path, RequestRecorder],
) -> None:
    """Without upstream_ca the system trust store refuses the test vendor: TLS is real."""
    port, _, recorder = vendor
    with pytest.raises(ssl.SSLCertVerificationError):
        await https_get(port, client_context(None), WWW_HOST, WWW_HOST)
    assert recorder.records == []
