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

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aiohttp import ClientResponse, web
from multidict import CIMultiDict

from proxy.accesslog import VENDOR_KEY
from proxy.core import pseudonym
from proxy.core.abuse import action_for
from proxy.core.cookiejar import rescope_set_cookie
from proxy.core.headers import Header, incoming_headers, outgoing_headers
from proxy.core.hostmap import HostMapError, Origin
from proxy.core.rewrite import HostRewriter
from proxy.core.rules import VendorRule
from proxy.core.targets import NotOurDatabase
from proxy.core.urlmap import UrlMapper, translate_params
from proxy.core.usage import is_download
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.rules_loader import is_public_suffix
from proxy.stores.sessions import Session
from proxy.upstream import UpstreamError, iter_body, read_small
from proxy.web.bodies import (
    BodyPlan,
    plan_body,
    prime,
    stream_rewritten,
)
from proxy.web.compiled import RuleSetTools
from proxy.web.keys import (
    ABUSE,
    CLOCK,
    EPOCHS,
    HOSTMAP,
    JARS,
    PSEUDONYMS,
    RULEBOOK,
    SETTINGS,
    SUSPENSIONS,
    TOOLS,
    UPSTREAM,
    USAGE,
)
from proxy.web.login import CSRF_COOKIE, client_network, login_url_for
from proxy.web.responses import found
from proxy.web.session_cookie import SESSION_COOKIE, current_session

log = get_logger("relay")
CHUNK: Final = 64 * 1024
MAX_TRANSLATED_FORM: Final = 2**20  # forms larger than this stream through untranslated
RESERVED_COOKIES: Final = frozenset({SESSION_COOKIE, CSRF_COOKIE})  # never a vendor's
MAX_REQUEST_BODY: Final = 100 * 2**20  # aiohttp's client_max_size does not cover streams


class NotLicensed(ClamshellError):
    """The patron's library does not license this vendor."""

    status_hint = 403

    def __init__(self, title: str) -> None:
        super().__init__(title)
        self.public_message = f"Your library does not license {title}."


class Suspended(ClamshellError):
    """The session crossed an abuse limit (EZproxy UsageLimit)."""

    status_hint = 403
    public_message = (
        "Your access has been paused because of unusually heavy use. Please contact your library."
    )


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


class LegacyHost(Exception):
    """An EZproxy dotted proxy-by-hostname request; carries where it moved to."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def legacy_location(request: web.Request, host: str) -> str | None:
    """``www.jstor.org.<proxy host>`` (EZproxy's dotted form) → our mapped URL, if covered."""
    bare = host.rsplit(":", 1)[0] if ":" in host else host
    suffix = "." + request.app[HOSTMAP].proxy_host
    vendor_host = bare[: -len(suffix)] if bare.endswith(suffix) else ""
    if "." not in vendor_host:
        return None
    mapper = mapper_for(request)
    origin = mapper.vendor_origin(vendor_host)
    return None if origin is None else mapper.mapped_origin(origin) + request.raw_path


def resolve_vendor(request: web.Request, host: str) -> Resolved:
    """Host → origin → rule; the origin must be the rule's own (scheme and port too)."""
    try:
        origin = request.app[HOSTMAP].origin_for(host)
    except HostMapError:
        location = legacy_location(request, host)
        if location is not None:
            raise LegacyHost(location) from None
        raise NotOurDatabase("not a mapped host") from None
    index = request.app[RULEBOOK].current.index
    rule = index.rule_for(origin.host)
    if rule is None or index.origin_for(origin.host) != origin:
        raise NotOurDatabase("no rule covers the host")
    return Resolved(rule, origin)


async def relay_handler(request: web.Request, host: str) -> web.StreamResponse:
    """Decide (vendor, session, licence), then forward."""
    try:
        vendor = resolve_vendor(request, host)
    except LegacyHost as moved:  # old EZproxy links and bookmarks keep working
        return web.Response(status=301, headers={"Location": moved.location})
    session = await current_session(request)
    if session is None:
        target = vendor.origin.url_prefix() + request.raw_path
        return found(login_url_for(request.app[SETTINGS].public_url, target))
    request[VENDOR_KEY] = vendor.rule.id
    if not vendor.rule.licensed_to(session.library, session.ptype):
        raise NotLicensed(vendor.rule.title)
    if request.app[SUSPENSIONS].is_suspended(session.key):
        raise Suspended()
    return await forward(request, vendor, session)


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


async def forward(request: web.Request, vendor: Resolved, session: Session) -> web.StreamResponse:
    """Send upstream and stream the answer back."""
    now = request.app[CLOCK]()
    upstream = await send_upstream(request, vendor, session, now)
    try:
        response, size, plan = await respond(request, vendor, session, upstream, now)
    finally:
        upstream.release()
    account(request, vendor.rule, session, size=size, content_type=upstream.content_type, now=now)
    if plan is not None:
        count_third_parties(request, vendor.rule, plan.rewriter.referenced_hosts, now)
    return response


async def send_upstream(
    request: web.Request, vendor: Resolved, session: Session, now: datetime
) -> ClientResponse:
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


async def respond(
    request: web.Request,
    vendor: Resolved,
    session: Session,
    upstream: ClientResponse,
    now: datetime,
) -> tuple[web.StreamResponse, int, BodyPlan | None]:
    """Map the headers, keep the cookies, and stream (or rewrite) the body."""
    rule, tools = vendor.rule, tools_for(request)
    plan = plan_body(
        tools.rewriter,
        rule,
        method=request.method,
        status=upstream.status,
        content_type=upstream.headers.get("Content-Type"),
        content_encoding=upstream.headers.get("Content-Encoding"),
        accept_encoding=request.headers.get("Accept-Encoding"),
        url_path=request.path,
        max_decoded=request.app[SETTINGS].max_rewrite_megabytes * 2**20,
    )
    mapped = incoming_headers(
        decoded_headers(upstream.raw_headers),
        mapper=tools.mapper,
        body_rewritten=plan is not None,
    )
    headers = CIMultiDict(mapped.headers)
    keep_cookies(request, vendor, session, mapped.set_cookies, headers, now)
    if rule.third_party == "block":
        headers.add("Content-Security-Policy", tools.block_csp)
    if plan is None and upstream.content_length is not None and upstream.content_length <= CHUNK:
        small = await send_small(upstream, headers)
        return small, upstream.content_length, None
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    if plan is None:
        await response.prepare(request)
        return response, await stream_body(request, response, upstream, rule.id), None
    head, size = await prime(iter_body(upstream), plan)  # errors here still get a page
    if plan.encoder.coding:
        response.headers["Content-Encoding"] = plan.encoder.coding
    response.headers.add("Vary", "Accept-Encoding")
    await response.prepare(request)
    if head:
        await response.write(head)
    try:
        size += await stream_rewritten(response, iter_body(upstream), plan)
        await response.write_eof()
    except ClamshellError as exc:
        cut_short(request, rule.id, exc)
    return response, size, plan


def keep_cookies(
    request: web.Request,
    vendor: Resolved,
    session: Session,
    set_cookies: list[str],
    headers: CIMultiDict[str],
    now: datetime,
) -> None:
    """Server-side jar (default), or rescoped to the mapped host for ``cookies: pass``."""
    if not set_cookies:
        return
    origin = vendor.origin
    if vendor.rule.cookies == "server_side":
        request.app[JARS].jar(session.key, vendor.rule.id).store(
            set_cookies,
            request_host=origin.host,
            request_path=request.path,
            secure_scheme=origin.scheme == "https",
            now=now,
        )
        return
    secure_ok = request.app[SETTINGS].public_scheme == "https"
    for value in set_cookies:
        rescoped = rescope_set_cookie(
            value,
            upstream_host=origin.host,
            secure_ok=secure_ok,
            reserved_names=RESERVED_COOKIES,
            is_public_suffix=is_public_suffix,
        )
        if rescoped is not None:
            headers.add("Set-Cookie", rescoped)


def browser_cookies(request: web.Request) -> str | None:
    """For ``cookies: pass``: the browser's cookies minus the proxy's own."""
    kept = [
        f"{name}={value}" for name, value in request.cookies.items() if name not in RESERVED_COOKIES
    ]
    return "; ".join(kept) or None


def rewriter_for(request: web.Request) -> HostRewriter:
    """The compiled rewriter for the current rule set."""
    return tools_for(request).rewriter


def count_third_parties(
    request: web.Request, rule: VendorRule, hosts: Counter[str], now: datetime
) -> None:
    """Aggregate third-party host counts per vendor (no patron data)."""
    blocked = rule.third_party == "block"
    for host, count in hosts.items():
        request.app[USAGE].third_party(now.date(), rule.id, host, blocked=blocked, count=count)


async def send_small(upstream: ClientResponse, headers: CIMultiDict[str]) -> web.Response:
    """A small pass-through body goes out with its headers in one write (profiled: each
    extra socket write costs more than the rest of the relay's per-request policy work).
    aiohttp sets Content-Length from the body itself."""
    body = await read_small(upstream)
    headers.popall("Content-Length", None)
    return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=headers)


async def stream_body(
    request: web.Request, response: web.StreamResponse, upstream: ClientResponse, vendor: str
) -> int:
    """Copy the body; a failure after the headers went out can only cut the connection."""
    size = 0
    try:
        async for chunk in iter_body(upstream):
            size += len(chunk)
            await response.write(chunk)
        await response.write_eof()
    except UpstreamError as exc:
        cut_short(request, vendor, exc)
    return size


def account(
    request: web.Request,
    rule: VendorRule,
    session: Session,
    *,
    size: int,
    content_type: str,
    now: datetime,
) -> None:
    """Aggregate statistics and abuse limits for one relayed response (no URL kept)."""
    app = request.app
    app[USAGE].request(
        now.date(),
        rule.id,
        session.library,
        patron=session.patron_key or session.key,
        session=session.key,
        size=size,
        content_type=content_type,
    )
    limits = tools_for(request).per_rule[rule.id].limits
    crossed = app[ABUSE].record(
        session.key, limits, size=size, download=is_download(content_type), now=now
    )
    if crossed is None and session.patron_key is not None:
        network = client_network(request)
        crossed = app[ABUSE].network_seen(session.patron_key, network, limits, now)
    if crossed is None:
        return
    if action_for(crossed, limits) == "log":
        app[SUSPENSIONS].suspend(session.key, rule.id, crossed.limit, now, action="logged")
        log.warning("usage_limit_logged", vendor=rule.id, limit=crossed.limit)
    elif not app[SUSPENSIONS].is_suspended(session.key):
        app[SUSPENSIONS].suspend(session.key, rule.id, crossed.limit, now)
        log.warning("session_suspended", vendor=rule.id, limit=crossed.limit)


def cut_short(request: web.Request, vendor: str, exc: Exception) -> None:
    """A body failed after its headers went out: close the connection, so the browser sees
    a truncated response rather than a complete-looking wrong one."""
    log.warning("upstream_body_failed", vendor=vendor, error=type(exc).__name__)
    if request.transport is not None:
        request.transport.close()


def decoded_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[Header]:
    """Raw header pairs as text, duplicates kept (RFC 9110 §5.5: field values are latin-1)."""
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]


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
