"""The upstream client against real loopback servers: no redirects, no decompression, no
headers of its own, honest errors, deadlines, and no connection to a forbidden address."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs
from yarl import URL

from proxy.core.hostmap import Origin
from proxy.core.rules import RuleTimeouts
from proxy.core.settings import Settings, Timeouts
from proxy.upstream.client import UpstreamClient, iter_body
from proxy.upstream.errors import (
    ForbiddenUpstream,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

VENDOR = "www.acmejournals.test"
SECURE = "secure.vendor.test"
PUBLIC_IP = "93.184.215.14"  # an ordinary public address; see the `internet` fixture
RELAXED = Timeouts(connect=5, first_byte=10, idle_read=10)
FAST = Timeouts(connect=5, first_byte=0.3, idle_read=0.3)
PAGE = b"<html>" + b"x" * 4000 + b"</html>"
BIG = bytes(range(256)) * 8192  # 2 MiB: more than aiohttp buffers before pausing the socket

Server = Callable[..., Awaitable[TestServer]]
MakeClient = Callable[..., UpstreamClient]


# --- fake vendor and an "internal" service -------------------------------------------------


@dataclass
class Seen:
    """What a fake server received."""

    requests: list[tuple[str, str, list[tuple[str, str]], bytes]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)

    def headers(self, index: int = -1) -> list[tuple[str, str]]:
        return self.requests[index][2]


def recording_app(seen: Seen, text: bytes) -> web.Application:
    """A vendor that records every request and has a few misbehaving pages."""

    async def record(request: web.Request) -> None:
        raw = [(k.decode(), v.decode()) for k, v in request.raw_headers]
        seen.requests.append((request.method, request.raw_path, raw, await request.read()))
        seen.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )

    async def page(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(body=text, content_type="text/html")

    async def redirect(request: web.Request) -> web.StreamResponse:
        await record(request)
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def gzipped(request: web.Request) -> web.StreamResponse:
        await record(request)
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/html"}
        return web.Response(body=gzip.compress(PAGE), headers=headers)

    async def slow_headers(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(float(request.query.get("delay", "3")))
        return web.Response(text="late")

    async def stall_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/pdf"})
        response.content_length = 20000
        await response.prepare(request)
        await response.write(b"%PDF" + b"0" * 1000)
        await asyncio.sleep(3)
        return response

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", len(BIG)))
        return web.Response(body=BIG[:size], content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/slow", slow_headers)
    app.router.add_get("/stall", stall_body)
    app.router.add_get("/big", big)
    app.router.add_route("*", "/{tail:.*}", page)
    return app


@pytest.fixture
async def vendor(aiohttp_server: Server) -> tuple[TestServer, Seen]:
    """The fake vendor on 127.0.0.1 (reached through an override)."""
    seen = Seen()
    return await aiohttp_server(recording_app(seen, b"public vendor")), seen


@pytest.fixture
async def internal(aiohttp_server: Server) -> tuple[TestServer, Seen]:
    """An internal service on loopback that an SSRF attempt would like to reach."""
    seen = Seen()
    return await aiohttp_server(recording_app(seen, b"internal secret")), seen


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Real UpstreamClients built from Settings; closed after the test."""
    clients: list[UpstreamClient] = []

    def make(
        overrides: dict[str, str] | None = None, timeouts: Timeouts = RELAXED, **kwargs: Any
    ) -> UpstreamClient:
        settings = Settings(upstream_overrides=overrides or {}, timeouts=timeouts)
        client = UpstreamClient.create(settings, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def port_of(server: TestServer) -> int:
    assert server.port is not None
    return server.port


def to_vendor(server: TestServer) -> dict[str, str]:
    return {VENDOR: f"http://127.0.0.1:{server.port}"}


async def get(client: UpstreamClient, origin: Origin, path: str, **kwargs: Any) -> Any:
    """Send a GET the way the relay does: target_url plus an explicit Host."""
    headers = kwargs.pop("headers", {"Host": client.host_header(origin)})
    return await client.send("GET", client.target_url(origin, path), headers=headers, **kwargs)


ACME = Origin("https", VENDOR, 443)


# --- the hostile DNS server and the "internet" ---------------------------------------------


class StubResolver(AbstractResolver):
    """Plays the (possibly hostile) DNS server: answers in turn, the last one repeated."""

    def __init__(self, *answers: list[str] | OSError) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, OSError):
            raise answer
        return [_result(host, addr, port) for addr in answer]

    async def close(self) -> None:
        pass


def _result(host: str, addr: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return ResolveResult(hostname=host, host=addr, port=port, family=family, proto=0, flags=0)


@dataclass
class Internet:
    """Routes for a few public addresses to loopback servers; records every connect()."""

    routes: dict[str, int] = field(default_factory=dict)
    connects: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture
async def internet(monkeypatch: pytest.MonkeyPatch) -> Internet:
    """Stands in for the routers: a connection to a routed public address lands on loopback.

    aiohttp (via aiohappyeyeballs) connects with ``loop.sock_connect``; no packet leaves the
    machine, and the test can see exactly which address each connection went to.
    """
    net = Internet()
    loop = asyncio.get_running_loop()
    real_connect = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        net.connects.append((address[0], address[1]))
        if address[0] in net.routes:
            return await real_connect(sock, ("127.0.0.1", net.routes[address[0]]))
        if address[0] in ("127.0.0.1", "::1"):
            return await real_connect(sock, address)
        raise OSError(101, "Network is unreachable (test)")

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    return net


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: str
    leaf: tuple[str, str]  # cert, key: issued by the CA for SECURE only
    wrong_host: tuple[str, str]  # issued by the CA for another host
    self_signed: tuple[str, str]  # for SECURE, signed by itself


def _issue(
    name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None, *, ca: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, issuer_name = (issuer[0], issuer[1].subject) if issuer else (key, subject)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
    return key, builder.sign(signer_key, hashes.SHA256())


def _write(directory: Path, stem: str, pair: tuple[Any, x509.Certificate]) -> tuple[str, str]:
    key, cert = pair
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """A test CA, a leaf for SECURE only, a leaf for another host, and a self-signed leaf."""
    directory = tmp_path_factory.mktemp("pki")
    ca = _issue("clamshell test CA", None, ca=True)
    yield Pki(
        ca_file=_write(directory, "ca", ca)[0],
        leaf=_write(directory, "leaf", _issue(SECURE, ca, ca=False)),
        wrong_host=_write(directory, "wrong", _issue("other.vendor.test", ca, ca=False)),
        self_signed=_write(directory, "self", _issue(SECURE, None, ca=False)),
    )


async def tls_vendor(server: Server, chain: tuple[str, str], sni: list[str | None]) -> TestServer:
    """The fake vendor over TLS; records the SNI name each client asked for."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*chain)

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name)

    context.sni_callback = record_sni
    return await server(recording_app(Seen(), b"secure vendor"), ssl=context)


# --- relaying exactly what was asked --------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_returned_not_followed(
    status: int,
    vendor: tuple[TestServer, Seen],
    internal: tuple[TestServer, Seen],
    make_client: MakeClient,
) -> None:
    """A vendor redirect to 127.0.0.1 comes back as the redirect itself; nothing follows it."""
    server, _ = vendor
    target = f"http://127.0.0.1:{port_of(internal[0])}/secret"
    client = make_client(to_vendor(server))
    response = await get(client, ACME, f"/redirect?status={status}&to={target}")
    assert (response.status, response.headers["Location"]) == (status, target)
    response.release()
    assert internal[1].requests == []


async def test_gzip_body_arrives_byte_identical(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """Compressed bodies are not decompressed: same bytes, same Content-Encoding and length."""
    client = make_client(to_vendor(vendor[0]))
    response = await get(client, ACME, "/gzip")
    body = b"".join([chunk async for chunk in iter_body(response)])
    assert body == gzip.compress(PAGE)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(body))


async def test_only_the_given_headers_reach_the_vendor(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """A GET carries exactly the caller's headers: no User-Agent, Accept or Accept-Encoding."""
    server, seen = vendor
    client = make_client(to_vendor(server))
    given = [("Host", VENDOR), ("Accept-Language", "en"), ("X-Rule", "1"), ("X-Rule", "2")]
    (await get(client, ACME, "/", headers=given)).release()
    assert sorted(seen.headers()) == sorted(given)


async def test_bodies_add_only_framing_headers(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """A body adds Content-Length (bytes) or Transfer-Encoding (stream), never a Content-Type."""
    server, seen = vendor
    client = make_client(to_vendor(server))
    url = client.target_url(ACME, "/form")

    async def stream() -> AsyncIterator[bytes]:
        for part in (b"a=1", b"&b=2"):
            yield part

    cases: list[tuple[bytes | AsyncIterator[bytes], tuple[str, str] | None]] = [
        (b"a=1&b=2", ("Content-Length", "7")),
        (stream(), None),
    ]
    for body, framing in cases:
        (await client.send("POST", url, headers={"Host": VENDOR}, body=body)).release()
        extra = framing or ("Transfer-Encoding", "chunked")
        assert sorted(seen.headers()) == sorted([("Host", VENDOR), extra])
        assert seen.requests[-1][3] == b"a=1&b=2"


async def test_vendor_sees_its_own_host_through_an_override(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """An override changes scheme and port of the URL, but the vendor sees Host: its own name."""
    server, seen = vendor
    client = make_client(to_vendor(server))
    url = client.target_url(ACME, "/stable/123?x=1")
    assert str(url) == f"http://{VENDOR}:{server.port}/stable/123?x=1"
    assert client.host_header(ACME) == VENDOR
    (await get(client, ACME, "/stable/123?x=1")).release()
    assert dict(seen.headers())["Host"] == VENDOR


async def test_request_target_is_kept_byte_for_byte(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """Percent-escapes and odd-but-legal characters reach the vendor exactly as given."""
    server, seen = vendor
    client = make_client(to_vendor(server))
    path = "/a%2Fb/%7Euser;v=1/x,y?q=a%20b&r=%2F&s=a+b&t=[1]"
    (await get(client, ACME, path)).release()
    assert seen.requests[-1][1] == path


async def test_target_url_without_override_is_the_vendor_origin(make_client: MakeClient) -> None:
    """Without an override, the URL is the vendor's own scheme, host and port."""
    client = make_client()
    assert str(client.target_url(ACME, "/x")) == f"https://{VENDOR}/x"
    odd = Origin("http", "db.vendor.test", 8080)
    assert str(client.target_url(odd, "/")) == "http://db.vendor.test:8080/"
    assert client.host_header(odd) == "db.vendor.test:8080"
    with pytest.raises(ValueError, match="must start with '/'"):
        client.target_url(ACME, "http://169.254.169.254/")


# --- honest errors and deadlines ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_unreachable(make_client: MakeClient) -> None:
    """A vendor that refuses connections becomes UpstreamUnreachable (502)."""
    client = make_client({VENDOR: f"http://127.0.0.1:{_closed_port()}"})
    with pytest.raises(UpstreamUnreachable) as caught:
        await get(client, ACME, "/")
    assert caught.value.status_hint == 502
    assert "could not be reached" in caught.value.public_message


async def test_dns_failure_is_unreachable(make_client: MakeClient) -> None:
    """A name that does not resolve becomes UpstreamUnreachable (502)."""
    resolver = StubResolver(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    client = make_client(base_resolver=resolver)
    with pytest.raises(UpstreamUnreachable):
        await get(client, Origin("https", "nowhere.vendor.test", 443), "/")


async def test_slow_first_byte_is_a_timeout(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """A vendor that does not start answering within first_byte becomes UpstreamTimeout (504)."""
    client = make_client(to_vendor(vendor[0]), timeouts=FAST)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        await get(client, ACME, "/slow")
    assert caught.value.status_hint == 504
    assert time.monotonic() - started < 2


async def test_rule_timeouts_override_the_global_ones(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """A rule's longer first_byte lets a slow vendor answer; unset values stay global."""
    client = make_client(to_vendor(vendor[0]), timeouts=FAST)
    rule = RuleTimeouts(first_byte=5)
    assert client.timeouts_for(rule) == Timeouts(connect=5, first_byte=5, idle_read=0.3)
    response = await get(client, ACME, "/slow?delay=0.6", timeouts=rule)
    assert await response.read() == b"late"


async def test_idle_read_mid_body_is_a_timeout(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """A vendor that goes silent mid-body makes reading the body raise UpstreamTimeout."""
    client = make_client(to_vendor(vendor[0]), timeouts=FAST)
    response = await get(client, ACME, "/stall")
    assert response.status == 200
    received = b""
    with pytest.raises(UpstreamTimeout):
        async for chunk in iter_body(response):
            received += chunk
    assert received.startswith(b"%PDF")
    response.release()


# --- no open proxy, no SSRF -----------------------------------------------------------------

HOSTILE_ANSWERS = [
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",
    "::1",
    "::ffff:127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1",
    "fd00:ec2::254",
]


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS)
async def test_hostile_resolver_answers_are_refused(
    answer: str, internal: tuple[TestServer, Seen], internet: Internet, make_client: MakeClient
) -> None:
    """A non-overridden host that resolves to an internal address is refused and logged."""
    client = make_client(base_resolver=StubResolver([answer]))
    origin = Origin("http", "evil.example", port_of(internal[0]))
    with capture_logs() as logs, pytest.raises(ForbiddenUpstream) as caught:
        await get(client, origin, "/")
    assert caught.value.status_hint == 502
    assert caught.value.public_message == UpstreamUnreachable.public_message
    refused = [e for e in logs if e["event"] == "upstream_refused"]
    assert refused == [
        {
            "event": "upstream_refused",
            "host": "evil.example",
            "reason": caught.value.reason,
            "component": "upstream",
            "log_level": "warning",
        }
    ]
    assert internet.connects == []
    assert internal[1].requests == []


async def test_only_the_allowed_part_of_a_mixed_answer_is_used(
    vendor: tuple[TestServer, Seen], internet: Internet, make_client: MakeClient
) -> None:
    """From an answer mixing internal and public addresses, only the public ones are tried."""
    internet.routes[PUBLIC_IP] = port_of(vendor[0])
    resolver = StubResolver(["127.0.0.1", "169.254.169.254", PUBLIC_IP, "10.0.0.1"])
    client = make_client(base_resolver=resolver)
    response = await get(client, Origin("http", "mixed.example", 8000), "/")
    assert await response.read() == b"public vendor"
    assert internet.connects == [(PUBLIC_IP, 8000)]


async def test_an_overridden_host_may_be_loopback(
    vendor: tuple[TestServer, Seen], internet: Internet, make_client: MakeClient
) -> None:
    """The admin's override reaches loopback; the same address from DNS is refused."""
    client = make_client(to_vendor(vendor[0]), base_resolver=StubResolver(["127.0.0.1"]))
    response = await get(client, ACME, "/")
    assert await response.read() == b"public vendor"
    with pytest.raises(ForbiddenUpstream):
        await get(client, Origin("http", "not-overridden.test", port_of(vendor[0])), "/")
    assert internet.connects == [("127.0.0.1", port_of(vendor[0]))]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::ffff:127.0.0.1]", "[::1]", "0x7f.1", "127.1", "2130706433", "0xA9FEA9FE"],
)
async def test_ip_literal_and_numeric_hosts_are_refused(
    host: str, internal: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """IP-literal and numeric hosts (which skip or fool DNS) never reach an internal address."""
    client = make_client()  # the real resolver
    url = URL(f"http://{host}:{port_of(internal[0])}/", encoded=True)
    with pytest.raises(UpstreamError) as caught:
        await client.send("GET", url, headers={})
    assert caught.value.status_hint == 502
    assert internal[1].requests == []


async def test_dns_rebinding_cannot_redirect_the_connection(
    vendor: tuple[TestServer, Seen],
    internal: tuple[TestServer, Seen],
    internet: Internet,
    make_client: MakeClient,
) -> None:
    """The connection goes to the address that was checked, never to a later DNS answer."""
    internet.routes[PUBLIC_IP] = port_of(vendor[0])  # PUBLIC_IP is where the vendor "lives"
    resolver = StubResolver([PUBLIC_IP], ["127.0.0.1"])  # then rebinds to loopback
    origin = Origin("http", "rebind.example", port_of(internal[0]))  # aimed at the internal port
    first = make_client(base_resolver=resolver)
    response = await get(first, origin, "/")
    assert await response.read() == b"public vendor"
    assert (resolver.calls, internet.connects) == (1, [(PUBLIC_IP, port_of(internal[0]))])
    second = make_client(base_resolver=resolver)  # a fresh pool: a new lookup, checked again
    with pytest.raises(ForbiddenUpstream):
        await get(second, origin, "/")
    assert (resolver.calls, len(internet.connects)) == (2, 1)
    assert internal[1].requests == []


async def test_review_proxy_must_be_on_loopback() -> None:
    """Review mode's HTTP proxy is refused unless it is an IP literal on loopback."""
    for proxy in ("http://10.0.0.5:8080", "http://localhost:8080", "https://127.0.0.1:8080"):
        with pytest.raises(ValueError, match="loopback"):
            UpstreamClient.create(Settings(), proxy=proxy)


# --- TLS --------------------------------------------------------------------------------------


async def test_self_signed_vendor_is_unreachable(
    aiohttp_server: Server, pki: Pki, make_client: MakeClient
) -> None:
    """A certificate nobody vouches for is a 502, never a silent downgrade."""
    server = await tls_vendor(aiohttp_server, pki.self_signed, [])
    client = make_client({SECURE: f"https://127.0.0.1:{server.port}"})
    with pytest.raises(UpstreamUnreachable):
        await get(client, Origin("https", SECURE, 443), "/")


async def test_trusted_vendor_gets_its_own_name_as_sni(
    aiohttp_server: Server, pki: Pki, make_client: MakeClient
) -> None:
    """With the CA trusted, TLS to an overridden 127.0.0.1 uses the vendor's name for SNI."""
    sni: list[str | None] = []
    server = await tls_vendor(aiohttp_server, pki.leaf, sni)
    client = make_client({SECURE: f"https://127.0.0.1:{server.port}"}, ca_file=pki.ca_file)
    origin = Origin("https", SECURE, 443)
    assert str(client.target_url(origin, "/")) == f"https://{SECURE}:{server.port}/"
    response = await get(client, origin, "/")
    assert await response.read() == b"secure vendor"
    assert sni == [SECURE]


async def test_certificate_for_another_host_is_unreachable(
    aiohttp_server: Server, pki: Pki, make_client: MakeClient
) -> None:
    """A trusted CA's certificate for another name fails: verification is for the vendor host."""
    server = await tls_vendor(aiohttp_server, pki.wrong_host, [])
    client = make_client({SECURE: f"https://127.0.0.1:{server.port}"}, ca_file=pki.ca_file)
    with pytest.raises(UpstreamUnreachable):
        await get(client, Origin("https", SECURE, 443), "/")


async def test_pooled_connection_survives_past_idle_read(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """A connection back in the pool is reused after idle_read without a stale timeout."""
    client = make_client(to_vendor(vendor[0]), timeouts=FAST)
    for _ in range(3):
        response = await get(client, ACME, "/")
        assert await response.read() == b"public vendor"
        await asyncio.sleep(0.5)  # longer than idle_read
    assert len(set(vendor[1].peers)) == 1  # one keep-alive connection served all three


async def test_a_complete_body_can_be_read_later(
    vendor: tuple[TestServer, Seen], make_client: MakeClient
) -> None:
    """The vendor is not blamed for our own slowness: a paused read never times out."""
    client = make_client(to_vendor(vendor[0]), timeouts=FAST)
    for path, body in [("/", b"public vendor"), ("/big?size=100000", BIG[:100000]), ("/big", BIG)]:
        response = await get(client, ACME, path)
        await asyncio.sleep(0.5)  # longer than idle_read: the relay waits for a slow browser
        assert await response.read() == body
