"""The upstream request of a relayed request: what leaves the proxy, built by policy.

Contract: ``send_upstream(request, vendor, session, now)`` sends the browser's request to the
vendor through the one ``UpstreamClient``: headers from ``core.headers`` (allow-list,
Referer/Origin turned back, the session's vendor cookies or the browser's own in ``pass``
mode, the rule's pseudonym header), the target with ``request_params`` turned back, and the
body streamed with a size cap and a slow-upload guard. ``tools_for`` hands out the rule set's
compiled values.
Not here: deciding whether to relay (relay.py), the response (relay_response.py), header
policy itself (core/headers.py), SSRF checks and timeouts (upstream.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiohttp import web

from proxy.core import pseudonym
from proxy.core.headers import Header, outgoing_headers
from proxy.core.hostmap import Origin
from proxy.core.rules import VendorRule
from proxy.core.urlmap import UrlMapper, translate_params
from proxy.errors import ClamshellError
from proxy.stores.sessions import Session
from proxy.upstream import UpstreamResponse
from proxy.web.compiled import RuleSetTools
from proxy.web.keys import (
    EPOCHS,
    JARS,
    PSEUDONYMS,
    RULEBOOK,
    SETTINGS,
    TOOLS,
    UPSTREAM,
)
from proxy.web.login import CSRF_COOKIE
from proxy.web.session_cookie import SESSION_COOKIE

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
    return await app[UPSTREAM].send(
        request.method,
        app[UPSTREAM].target_url(origin, upstream_target(request, names)),
        headers=headers,
        body=body,
        timeouts=rule.timeouts,
    )


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
    if not request.body_exists:
        return None
    small = (request.content_length or MAX_TRANSLATED_FORM + 1) <= MAX_TRANSLATED_FORM
    if names and small and request.content_type == "application/x-www-form-urlencoded":
        form = (await request.read()).decode("latin-1")
        return translate_params(form, names, mapper_for(request)).encode("latin-1")
    return bounded_body(request)


def browser_cookies(request: web.Request) -> str | None:
    """For ``cookies: pass``: the browser's cookies minus the proxy's own."""
    kept = [
        f"{name}={value}" for name, value in request.cookies.items() if name not in RESERVED_COOKIES
    ]
    return "; ".join(kept) or None


async def bounded_body(request: web.Request) -> AsyncIterator[bytes]:
    """Stream the request body upstream: at most MAX_REQUEST_BODY bytes, and no silence
    longer than ``timeouts.client_body`` (a slow uploader cannot hold a connection open)."""
    seen = 0
    idle = request.app[SETTINGS].timeouts.client_body
    chunks = request.content.iter_chunked(CHUNK)
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ClientTooSlow() from None
        seen += len(chunk)
        if seen > MAX_REQUEST_BODY:
            raise RequestTooLarge()
        yield chunk
