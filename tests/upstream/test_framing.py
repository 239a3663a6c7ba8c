"""R1: the pool frames every request itself, checked against an independent HTTP/1.1 parser.

The vendor here is h11 (a separate, strict HTTP/1.1 implementation) on a real loopback socket:
it counts the requests it parses, records what it received, and answers with responses that
h11 itself frames. Hypothesis drives bodies, lengths, lying framing headers and streamed vs
whole bodies; the vendor must never parse more requests than the pool was asked to send.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.upstream.pool import Address, ConnectionPool, RequestBodyMismatch
from proxy.upstream.wire import PoolKey, UpstreamConnectionError

KEY = PoolKey("http", "vendor.example", 80)
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: vendor.example\r\n\r\n"
FRAMING = {b"content-length", b"transfer-encoding"}
NO_BODY = {204, 304}
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class ResponseSpec:
    status: int
    headers: list[tuple[str, str]]
    chunks: list[bytes]
    sized: bool  # Content-Length (else h11 chunks it)


@dataclass
class H11Vendor:
    """A loopback vendor whose HTTP/1.1 is h11's: records requests, answers in turn."""

    answers: list[ResponseSpec] = field(default_factory=list)
    requests: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]] = field(
        default_factory=list
    )
    bodies: list[bytes] = field(default_factory=list)  # of the requests that were complete
    port: int = 0

    def response(self) -> ResponseSpec:
        if self.answers:
            return self.answers.pop(0)
        return ResponseSpec(200, [], [b"ok"], True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        body = b""
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    self.requests.append((event.method, event.target, list(event.headers), b""))
                    body = b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    method, target, headers, _ = self.requests[-1]
                    self.requests[-1] = (method, target, headers, body)
                    self.bodies.append(body)
                    writer.write(answer(conn, self.response()))
                    await writer.drain()
                    conn.start_next_cycle()
                else:  # ConnectionClosed or PAUSED
                    break
        except (h11.RemoteProtocolError, ConnectionError, asyncio.CancelledError):
            pass  # a request that was cut short, or the test is over
        finally:
            writer.close()


def answer(conn: h11.Connection, spec: ResponseSpec) -> bytes:
    """The response bytes exactly as h11 frames them."""
    headers = list(spec.headers)
    body = b"".join(spec.chunks) if spec.status not in NO_BODY else b""
    if spec.sized and spec.status not in NO_BODY:
        headers.append(("Content-Length", str(len(body))))
    out = conn.send(h11.Response(status_code=spec.status, headers=headers)) or b""
    if spec.status not in NO_BODY:
        for chunk in spec.chunks:
            if chunk:
                out += conn.send(h11.Data(data=chunk)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


async def with_vendor(vendor: H11Vendor) -> tuple[asyncio.Server, ConnectionPool]:
    server = await asyncio.start_server(vendor.handle, "127.0.0.1", 0)
    vendor.port = server.sockets[0].getsockname()[1]

    async def resolve(_host: str, _port: int) -> Sequence[Address]:
        return [(socket.AF_INET, "127.0.0.1", vendor.port)]

    return server, ConnectionPool(resolve, ssl.create_default_context(), limit=4, limit_per_host=2)


async def stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# --- (a) the vendor never sees more requests than were sent --------------------------------


@dataclass
class Attempt:
    method: str
    body: bytes | None
    streamed: bool
    cuts: list[int]
    declared: list[tuple[str, str]]  # framing headers the caller (wrongly) passes along

    def payload(self) -> AsyncIterator[bytes] | bytes | None:
        if self.body is None or not self.streamed:
            return self.body
        edges = sorted({0, len(self.body), *(c % (len(self.body) + 1) for c in self.cuts)})
        return stream([self.body[a:b] for a, b in itertools.pairwise(edges)])


def declared_framing(body_len: int) -> st.SearchStrategy[list[tuple[str, str]]]:
    lengths = st.sampled_from([0, body_len, max(body_len - 7, 0), body_len + 3]) | st.integers(
        0, 10_000
    )
    return st.lists(
        st.one_of(
            lengths.map(lambda n: ("Content-Length", str(n))),
            st.just(("Transfer-Encoding", "chunked")),
            st.just(("Content-Length", "nope")),
        ),
        max_size=2,
    )


@st.composite
def attempts(draw: st.DrawFn) -> Attempt:
    body = draw(
        st.none()
        | st.binary(max_size=300)
        | st.tuples(st.binary(max_size=40), st.binary(max_size=40)).map(
            lambda ab: ab[0] + SMUGGLED + ab[1]
        )
    )
    return Attempt(
        method=draw(st.sampled_from(["GET", "POST", "PUT"])),
        body=body,
        streamed=draw(st.booleans()),
        cuts=draw(st.lists(st.integers(0, 400), max_size=4)),
        declared=draw(declared_framing(len(body or b""))),
    )


async def run_attempts(plan: list[Attempt]) -> tuple[H11Vendor, list[bytes | None]]:
    """Send each attempt on one pool; the bodies of the ones that succeeded (None: failed)."""
    vendor = H11Vendor()
    server, pool = await with_vendor(vendor)
    sent: list[bytes | None] = []
    async with server:
        for attempt in plan:
            headers = [("Host", "vendor.example"), *attempt.declared]
            try:
                response = await pool.request(
                    KEY, attempt.method, "/in", headers, attempt.payload(),
                    connect=2, first_byte=2, idle_read=2,
                )  # fmt: skip
                await response.read()
                sent.append(attempt.body or b"")
            except (RequestBodyMismatch, UpstreamConnectionError):
                sent.append(None)
        await pool.close()
        await asyncio.sleep(0.01)
    return vendor, sent


@EXAMPLES
@given(st.lists(attempts(), min_size=1, max_size=4))
def test_the_vendor_never_parses_more_requests_than_were_sent(plan: list[Attempt]) -> None:
    """R1: whatever framing headers the caller passes, the vendor's parser sees at most the
    requests sent, never a smuggled one, and each accepted body exactly as sent."""
    vendor, sent = asyncio.run(run_attempts(plan))
    assert len(vendor.requests) <= len(plan)
    assert all(target == b"/in" for _, target, _, _ in vendor.requests)
    assert vendor.bodies == [body for body in sent if body is not None]


async def test_a_stream_longer_than_its_length_is_cut_before_the_extra_bytes() -> None:
    """R1: a streamed body that outgrows its declared Content-Length (a decompressed upload)
    fails, the connection closes, and the vendor never parses the rest as a request."""
    vendor = H11Vendor()
    server, pool = await with_vendor(vendor)
    async with server:
        body = b"a=1" + SMUGGLED
        headers = [("Host", "vendor.example"), ("Content-Length", "3")]
        with pytest.raises(RequestBodyMismatch):
            await pool.request(
                KEY, "POST", "/in", headers, stream([body[:2], body[2:]]),
                connect=2, first_byte=2, idle_read=2,
            )  # fmt: skip
        response = await pool.request(
            KEY, "GET", "/in", [("Host", "vendor.example")], None,
            connect=2, first_byte=2, idle_read=2,
        )  # fmt: skip
        await response.read()
        await pool.close()
    assert [target for _, target, _, _ in vendor.requests] == [b"/in", b"/in"]


# --- (b) differential: the pool's framing against h11's ------------------------------------

TOKEN = st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True)
VALUE = st.from_regex(r"[!-~]([ !-~]{0,30}[!-~])?", fullmatch=True)
FIELDS = st.lists(st.tuples(TOKEN, VALUE), max_size=6)


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[Attempt, list[tuple[str, str]], ResponseSpec]:
    body = draw(st.none() | st.binary(max_size=2000))
    request = Attempt(
        method=draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])),
        body=body,
        streamed=draw(st.booleans()),
        cuts=draw(st.lists(st.integers(0, 2000), max_size=5)),
        declared=[],
    )
    status = draw(st.sampled_from([200, 201, 204, 206, 301, 304, 404, 500]))
    chunks = draw(st.lists(st.binary(max_size=500), max_size=5))
    response = ResponseSpec(status, draw(FIELDS), chunks, draw(st.booleans()))
    return request, draw(FIELDS), response


async def run_exchanges(
    plan: list[tuple[Attempt, list[tuple[str, str]], ResponseSpec]],
) -> tuple[H11Vendor, list[tuple[int, list[tuple[str, str]], bytes]]]:
    vendor = H11Vendor(answers=[spec for _, _, spec in plan])
    server, pool = await with_vendor(vendor)
    got = []
    async with server:
        for request, fields, _ in plan:
            headers = [("Host", "vendor.example"), *fields]
            response = await pool.request(
                KEY, request.method, "/t?q=1", headers, request.payload(),
                connect=2, first_byte=2, idle_read=2,
            )  # fmt: skip
            got.append((response.status, response.decoded_headers, await response.read()))
        await pool.close()
    return vendor, got


def without_framing(fields: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in fields if name.lower() not in FRAMING]


@EXAMPLES
@given(st.lists(exchanges(), min_size=1, max_size=3))
def test_requests_and_responses_mean_the_same_to_h11_and_the_pool(
    plan: list[tuple[Attempt, list[tuple[str, str]], ResponseSpec]],
) -> None:
    """R1: h11 (as the vendor) parses exactly the request the pool was given, and the pool
    parses exactly the response h11 framed, on one reused keep-alive connection."""
    vendor, got = asyncio.run(run_exchanges(plan))
    assert len(vendor.requests) == len(plan)
    for (request, fields, spec), seen, (status, headers, body) in zip(
        plan, vendor.requests, got, strict=True
    ):
        method, target, seen_fields, seen_body = seen
        sent = [("Host", "vendor.example"), *fields]
        assert (method, target) == (request.method.encode(), b"/t?q=1")
        assert without_framing(seen_fields) == [(n.lower().encode(), v.encode()) for n, v in sent]
        assert seen_body == (request.body or b"")
        expected_body = b"".join(spec.chunks) if spec.status not in NO_BODY else b""
        assert (status, body) == (spec.status, expected_body)
        parsed = [(n.encode(), v.encode()) for n, v in headers]
        assert without_framing(parsed) == [
            (n.lower().encode(), v.encode()) for n, v in spec.headers
        ]
