"""Mapped vendor hosts: decide, then relay with nothing identifying leaving.

Contract: ``relay_handler(request, host)`` answers every request for a host one label under
the proxy host. It decodes the host, finds the rule (unknown → 404), the session (none → 302
to ``/login?qurl=<vendor URL>``), checks the licence (→ 403), then forwards through the one
``UpstreamClient`` with headers built by ``core.headers`` and the session's server-side
vendor cookie jar, and streams the response back with its headers mapped. Bodies pass through
byte-identical (Content-Encoding and Content-Length kept); body rewriting plugs in later.
Not here: header policy (core/headers.py), cookie semantics (core/cookiejar.py), SSRF
checks and timeouts (upstream.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiohttp import ClientResponse, web

from proxy.core import pseudonym
from proxy.core.headers import Header, OutgoingPolicy, incoming_headers, outgoing_headers
from proxy.core.hostmap import HostMapError, Origin
from proxy.core.rules import VendorRule
from proxy.core.urlmap import UrlMapper
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.stores.sessions import Session
from proxy.upstream import UpstreamError, iter_body
from proxy.web.keys import CLOCK, EPOCHS, HOSTMAP, JARS, RULEBOOK, SETTINGS, UPSTREAM
from proxy.web.login import login_url_for
from proxy.web.responses import found
from proxy.web.session_cookie import current_session

log = get_logger("relay")
CHUNK: Final = 64 * 1024
MAX_REQUEST_BODY: Final = 100 * 2**20  # aiohttp's client_max_size does not cover streams


class UnknownDatabase(ClamshellError):
    """The address is not one of the consortium's licensed databases."""

    status_hint = 404
    public_message = "This address is not one of our licensed databases."


class NotLicensed(ClamshellError):
    """The patron's library does not license this vendor."""

    status_hint = 403

    def __init__(self, title: str) -> None:
        super().__init__(title)
        self.public_message = f"Your library does not license {title}."


class RequestTooLarge(ClamshellError):
    """The request body is larger than the proxy relays."""

    status_hint = 413
    public_message = "This upload is too large to send through the library's proxy."


@dataclass(frozen=True, slots=True)
class Resolved:
    """The vendor side of a request: the rule and the upstream origin."""

    rule: VendorRule
    origin: Origin


def resolve_vendor(request: web.Request, host: str) -> Resolved:
    """Host → origin → rule; the origin must be the rule's own (scheme and port too)."""
    try:
        origin = request.app[HOSTMAP].origin_for(host)
    except HostMapError:
        raise UnknownDatabase() from None
    index = request.app[RULEBOOK].current.index
    rule = index.rule_for(origin.host)
    if rule is None or index.origin_for(origin.host) != origin:
        raise UnknownDatabase()
    return Resolved(rule, origin)


async def relay_handler(request: web.Request, host: str) -> web.StreamResponse:
    """Decide (vendor, session, licence), then forward."""
    vendor = resolve_vendor(request, host)
    session = await current_session(request)
    if session is None:
        target = vendor.origin.url_prefix() + request.raw_path
        return found(login_url_for(request.app[SETTINGS].public_url, target))
    if not vendor.rule.licensed_to(session.library, session.ptype):
        raise NotLicensed(vendor.rule.title)
    return await forward(request, vendor, session)


def mapper_for(request: web.Request) -> UrlMapper:
    """The URL mapper for the current rule set."""
    app = request.app
    return UrlMapper(app[HOSTMAP], app[RULEBOOK].current.index, app[SETTINGS].public_scheme)


def pseudonym_header(
    request: web.Request, rule: VendorRule, session: Session, now: datetime
) -> Header | None:
    """The rule's pseudonym header, or None when the rule asks for none (DESIGN P2)."""
    spec = rule.pseudonym
    if spec is None:
        return None
    if spec.rotate == "session" or session.patron_key is None:
        return (spec.header, pseudonym.derive(session.pseudonym_key, rule.id, session.key))
    key = request.app[EPOCHS].key_for(pseudonym.epoch_id(spec.rotate, now))
    return (spec.header, pseudonym.derive(key, rule.id, session.patron_key))


async def forward(request: web.Request, vendor: Resolved, session: Session) -> web.StreamResponse:
    """Send upstream and stream the answer back."""
    app, rule, origin = request.app, vendor.rule, vendor.origin
    now = app[CLOCK]()
    mapper = mapper_for(request)
    jar = app[JARS].jar(session.key, rule.id)
    secure = origin.scheme == "https"
    headers = outgoing_headers(
        list(request.headers.items()),
        policy=OutgoingPolicy(
            frozenset(rule.headers.allow), rule.headers.set, rule.headers.user_agent
        ),
        mapper=mapper,
        host=app[UPSTREAM].host_header(origin),
        cookie=jar.header_for(host=origin.host, path=request.path, secure_scheme=secure, now=now),
        pseudonym=pseudonym_header(request, rule, session, now),
    )
    body = bounded_body(request) if request.body_exists else None
    upstream = await app[UPSTREAM].send(
        request.method,
        app[UPSTREAM].target_url(origin, request.raw_path),
        headers=headers,
        body=body,
        timeouts=rule.timeouts,
    )
    try:
        mapped = incoming_headers(
            decoded_headers(upstream.raw_headers), mapper=mapper, body_rewritten=False
        )
        jar.store(
            mapped.set_cookies,
            request_host=origin.host,
            request_path=request.path,
            secure_scheme=secure,
            now=now,
        )
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in mapped.headers:
            response.headers.add(name, value)
        await response.prepare(request)
        await stream_body(request, response, upstream, rule.id)
        return response
    finally:
        upstream.release()


async def stream_body(
    request: web.Request, response: web.StreamResponse, upstream: ClientResponse, vendor: str
) -> None:
    """Copy the body; a failure after the headers went out can only cut the connection."""
    try:
        async for chunk in iter_body(upstream):
            await response.write(chunk)
        await response.write_eof()
    except UpstreamError as exc:
        log.warning("upstream_body_failed", vendor=vendor, error=type(exc).__name__)
        if request.transport is not None:
            request.transport.close()  # the browser sees a truncated response, not a lie
        return
    log.info("request_relayed", vendor=vendor, status=upstream.status)


def decoded_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[Header]:
    """Raw header pairs as text, duplicates kept (RFC 9110 §5.5: field values are latin-1)."""
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]


async def bounded_body(request: web.Request) -> AsyncIterator[bytes]:
    """Stream the request body upstream, refusing more than MAX_REQUEST_BODY bytes."""
    seen = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        seen += len(chunk)
        if seen > MAX_REQUEST_BODY:
            raise RequestTooLarge()
        yield chunk
