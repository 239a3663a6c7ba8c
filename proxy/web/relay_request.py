"""The upstream request of a relayed request: what leaves the proxy, built by policy.

Contract: ``send_upstream(request, vendor, session, now)`` sends the browser's request to the
vendor through the one ``UpstreamClient``: headers from ``core.headers`` (allow-list,
Referer/Origin turned back, the session's vendor cookies or the browser's own in ``pass``
mode, the rule's pseudonym header), the target with ``request_params`` turned back, and the
body streamed with a size cap and a slow-upload guard (an idle gap and a size-aware total
deadline). Before the body is read, ``check_request`` refuses TRACE-like methods (405),
coded request bodies (415: aiohttp decodes them, R1) and declared sizes over the cap (413),
and only then answers ``Expect: 100-continue`` (``expect_handler`` keeps aiohttp from
answering it for mapped hosts before the relay has decided). The body's framing is the
proxy's own: the browser's Content-Length goes upstream only with the very bytes it counted.
``tools_for`` hands out the rule set's compiled values.
Not here: deciding whether to relay (relay.py), the response (relay_response.py), header
policy itself (core/headers.py), SSRF checks and timeouts (upstream/client.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import ClassVar, Final

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from proxy.core import pseudonym
from proxy.core.cookieheader import vendor_cookie_header
from proxy.core.headers import (
    REFUSED_METHODS,
    RELAYED_METHODS,
    RELAYED_REQUEST_CODINGS,
    Header,
    outgoing_headers,
)
from proxy.core.hostmap import Origin
from proxy.core.rules import VendorRule
from proxy.core.settings import Timeouts
from proxy.core.urlmap import UrlMapper, translate_params
from proxy.errors import ClamshellError
from proxy.stores.sessions import Session
from proxy.upstream.client import UpstreamResponse
from proxy.web.compiled import RuleSetTools
from proxy.web.keys import (
    EPOCHS,
    HOSTMAP,
    JARS,
    PSEUDONYMS,
    RULEBOOK,
    SETTINGS,
    TOOLS,
    UPSTREAM,
)
from proxy.web.login import CSRF_COOKIE
from proxy.web.session_cookie import SESSION_COOKIE, cookie_pairs

CHUNK: Final = 64 * 1024  # request and small-response body unit
MAX_TRANSLATED_FORM: Final = 2**20  # forms larger than this stream through untranslated
RESERVED_COOKIES: Final = frozenset({SESSION_COOKIE, CSRF_COOKIE})  # never a vendor's
MAX_REQUEST_BODY: Final = 100 * 2**20  # aiohttp's client_max_size does not cover streams


class ClientTooSlow(ClamshellError):
    """The browser stopped sending its request body."""

    status_hint = 408
    public_message = "Your upload stopped arriving. Please try again."


class RequestTooLarge(ClamshellError):
    """The request body is larger than the proxy relays."""

    status_hint = 413
    public_message = "This upload is too large to send through the library's proxy."


class BodyLengthMismatch(ClamshellError):
    """The body the browser sent is not as long as its Content-Length said."""

    status_hint = 400
    public_message = "This upload arrived incomplete. Please try again."


class MethodNotRelayed(ClamshellError):
    """A method the proxy never relays (TRACE, TRACK, CONNECT)."""

    status_hint = 405
    public_message = "This kind of request is not sent through the library's proxy."
    # RFC 9110 §15.5.6: a 405 lists the methods that are allowed
    response_headers: ClassVar = MappingProxyType({"Allow": RELAYED_METHODS})


class CodedRequestBody(ClamshellError):
    """A request body with a Content-Encoding (R1: aiohttp would hand over decoded bytes)."""

    status_hint = 415
    public_message = "This upload is compressed in a way the library's proxy does not relay."
    response_headers: ClassVar = MappingProxyType({"Accept-Encoding": "identity"})  # RFC 7694 §3


@dataclass(frozen=True, slots=True)
class Resolved:
    """The vendor side of a request: the rule and the upstream origin."""

    rule: VendorRule
    origin: Origin


def tools_for(request: web.Request) -> RuleSetTools:
    """The mapper, rewriter and per-rule values of the current rule set, built once per set."""
    return request.app[TOOLS].tools(request.app[RULEBOOK].current)


def mapper_for(request: web.Request) -> UrlMapper:
    """The URL mapper for the current rule set."""
    return tools_for(request).mapper


def pseudonym_header(
    request: web.Request, rule: VendorRule, session: Session, now: datetime
) -> Header | None:
    """The rule's pseudonym header, or None when the rule asks for none (DESIGN P2)."""
    spec = rule.pseudonym
    if spec is None:
        return None
    if spec.rotate == "session" or session.patron_key is None:
        value = request.app[PSEUDONYMS].get(session.key, rule.id, session.pseudonym_key)
        return (spec.header, value)
    key = request.app[EPOCHS].key_for(pseudonym.epoch_id(spec.rotate, now))
    return (spec.header, pseudonym.derive(key, rule.id, session.patron_key))


async def send_upstream(
    request: web.Request, vendor: Resolved, session: Session, now: datetime
) -> UpstreamResponse:
    """The upstream request: policy-built headers, the session's vendor cookies, the body."""
    app, rule, origin = request.app, vendor.rule, vendor.origin
    secure = origin.scheme == "https"
    if rule.cookies == "server_side":
        cookie = (
            app[JARS]
            .jar(session.key, rule.id)
            .header_for(host=origin.host, path=request.path, secure_scheme=secure, now=now)
        )
    else:
        cookie = browser_cookies(request)
    tools = tools_for(request)
    per_rule = tools.per_rule[rule.id]
    headers = outgoing_headers(
        list(request.headers.items()),
        policy=per_rule.policy,
        mapper=tools.mapper,
        host=app[UPSTREAM].host_header(origin),
        cookie=cookie,
        pseudonym=pseudonym_header(request, rule, session, now),
    )
    names = per_rule.request_params
    body = await request_body(request, names)
    if not isinstance(body, bytes) and request.content_length is not None:
        headers.append(("Content-Length", str(request.content_length)))  # counted by the stream
    return await app[UPSTREAM].send(
        request.method,
        app[UPSTREAM].target_url(origin, upstream_target(request, names)),
        headers=headers,
        body=body,
        timeouts=rule.timeouts,
    )


def check_request(request: web.Request) -> None:
    """Refuse, before any body byte is read, what is never relayed (R1, R22)."""
    if request.method in REFUSED_METHODS:
        raise MethodNotRelayed()
    for value in request.headers.getall(hdrs.CONTENT_ENCODING, ()):
        if any(c.strip().lower() not in RELAYED_REQUEST_CODINGS for c in value.split(",")):
            raise CodedRequestBody()
    if (request.content_length or 0) > MAX_REQUEST_BODY:
        raise RequestTooLarge()


async def expect_handler(request: web.Request) -> None:
    """Every route's Expect handler (aiohttp calls it before any middleware): the portal
    answers ``100 Continue`` at once, as aiohttp does; a mapped host's answer waits for the
    relay's checks (``continue_body``), so a refused upload is never invited."""
    if request.version != HttpVersion11:
        return
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        raise web.HTTPExpectationFailed()
    if request.app[HOSTMAP].is_portal(request.headers.get(hdrs.HOST, "").lower()):
        await continue_body(request)


def install_expect_handler(app: web.Application) -> None:
    """Put ``expect_handler`` on every route registered so far (call after the last one).

    aiohttp has no application-wide Expect hook and mapped hosts share the portal's routes.
    """
    for route in app.router.routes():
        route._expect_handler = expect_handler  # aiohttp reads it in handle_expect_header


async def continue_body(request: web.Request) -> None:
    """Send ``100 Continue`` if the browser waits for it (RFC 9110 §10.1.1)."""
    if request.version == HttpVersion11 and hdrs.EXPECT in request.headers:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # as aiohttp does: the response has not started


def upstream_target(request: web.Request, names: frozenset[str]) -> str:
    """The request target, with proxy URLs in the rule's request_params turned back."""
    if not names:
        return request.raw_path
    path, sep, query = request.raw_path.partition("?")
    return path + sep + translate_params(query, names, mapper_for(request)) if sep else path


async def request_body(
    request: web.Request, names: frozenset[str]
) -> AsyncIterator[bytes] | bytes | None:
    """Streamed as is; a small urlencoded form is read whole when request_params apply."""
    check_request(request)
    if not request.body_exists:
        return None
    await continue_body(request)
    small = (request.content_length or MAX_TRANSLATED_FORM + 1) <= MAX_TRANSLATED_FORM
    if names and small and request.content_type == "application/x-www-form-urlencoded":
        form = (await request.read()).decode("latin-1")
        return translate_params(form, names, mapper_for(request)).encode("latin-1")
    return bounded_body(request)


def browser_cookies(request: web.Request) -> str | None:
    """For ``cookies: pass``: the browser's cookies minus any that name the proxy's own (R2:
    the same parse that found the session token, so a token hidden in a value is dropped)."""
    return vendor_cookie_header(cookie_pairs(request), RESERVED_COOKIES)


async def bounded_body(request: web.Request) -> AsyncIterator[bytes]:
    """Stream the request body upstream: at most MAX_REQUEST_BODY bytes, exactly the declared
    Content-Length if any, no silence longer than ``timeouts.client_body``, and all of it within
    ``body_deadline`` (a trickle of one byte per idle gap cannot hold a connection open, R9)."""
    declared = request.content_length
    timeouts = request.app[SETTINGS].timeouts
    loop = asyncio.get_running_loop()
    started, seen = loop.time(), 0
    chunks = request.content.iter_chunked(CHUNK)
    while True:
        left = started + body_deadline(timeouts, max(declared or 0, seen)) - loop.time()
        try:
            async with asyncio.timeout(min(timeouts.client_body, left)):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ClientTooSlow() from None
        seen += len(chunk)
        if seen > MAX_REQUEST_BODY:
            raise RequestTooLarge()
        if declared is not None and seen > declared:
            raise BodyLengthMismatch()
        yield chunk
    if declared is not None and seen != declared:
        raise BodyLengthMismatch()


def body_deadline(timeouts: Timeouts, size: int) -> float:
    """Seconds a body of ``size`` bytes may take: a base, plus the size at the minimum rate."""
    return timeouts.client_body_total + size / timeouts.client_body_min_rate
