"""The upstream request of a relayed request: the plan sent, with what only the shell has.

Contract: ``send_upstream(exchange)`` sends an ``Exchange``'s
``ForwardPlan`` (core/decision.py) through the one ``UpstreamClient``: the planned headers
plus the session's vendor cookies (server-side jar) or the browser's own in ``pass`` mode,
the pseudonym value for the plan's rotation, the planned target, and the body streamed with
a size cap and a slow-upload guard (an idle gap and a size-aware total deadline); a small
urlencoded form gets its request_params turned back. Methods, codings and declared sizes
that are never relayed were refused by the decision, so ``Expect: 100-continue`` is answered
only here (``expect_handler`` keeps aiohttp from answering it for mapped hosts before the
relay has decided). The body's framing is the proxy's own: the browser's Content-Length goes
upstream only with the very bytes it counted.
Not here: deciding (core/decision.py), the response (relay_response.py), header policy
itself (core/headers.py), SSRF checks and timeouts (upstream/client.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from proxy.core import pseudonym
from proxy.core.cookieheader import vendor_cookie_header
from proxy.core.decision import MAX_REQUEST_BODY, ForwardPlan
from proxy.core.settings import Timeouts
from proxy.core.snapshot import RuleSnapshot
from proxy.core.urlmap import translate_params
from proxy.errors import ClamshellError
from proxy.stores.sessions import Session
from proxy.upstream.client import UpstreamResponse
from proxy.web.exchange import Exchange
from proxy.web.keys import HOSTMAP, RelayStores
from proxy.web.login import CSRF_COOKIE
from proxy.web.session_cookie import SESSION_COOKIE, cookie_pairs

CHUNK: Final = 64 * 1024  # request and small-response body unit
MAX_TRANSLATED_FORM: Final = 2**20  # forms larger than this stream through untranslated
RESERVED_COOKIES: Final = frozenset({SESSION_COOKIE, CSRF_COOKIE})  # never a vendor's


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


async def send_upstream(ex: Exchange) -> UpstreamResponse:
    """The planned request, with the session's vendor cookies, the pseudonym and the body."""
    request, stores, plan, session = ex.request, ex.stores, ex.plan, ex.session
    rule, origin = plan.rule, plan.origin
    headers = list(plan.headers)
    if session is None or plan.anonymous:
        cookie = None  # #17: a request without a session carries no cookies at all
    elif rule.cookies == "server_side":
        jar = stores.jars.jar(session.key, rule.id)
        if stores.shared_jars is not None:  # #15: another node may have changed it
            await stores.shared_jars.load(jar, session.key, rule.id, ex.now)
        cookie = jar.header_for(
            host=origin.host, path=request.path, secure_scheme=origin.scheme == "https", now=ex.now
        )
    else:
        cookie = browser_cookies(request)
    if cookie:
        headers.append(("Cookie", cookie))
    if plan.pseudonym is not None and session is not None:
        headers.append((plan.pseudonym.header, pseudonym_value(stores, plan, session)))
    if session is not None and not plan.anonymous:  # #21: shown on the transparency page
        pseudonym = plan.pseudonym.header if plan.pseudonym else None
        stores.disclosures.sent(session.key, rule.id, headers, pseudonym)
    body = await request_body(request, ex.snapshot, plan, stores.settings.timeouts)
    if not isinstance(body, bytes) and request.content_length is not None:
        headers.append(("Content-Length", str(request.content_length)))  # counted by the stream
    upstream = stores.upstream
    return await upstream.send(
        request.method,
        upstream.target_url(origin, plan.target),
        headers=headers,
        body=body,
        timeouts=rule.timeouts,
    )


def pseudonym_value(stores: RelayStores, plan: ForwardPlan, session: Session) -> str:
    """The value for the plan's pseudonym: the session's own, or the card's in its epoch."""
    spec, vendor = plan.pseudonym, plan.rule.id
    assert spec is not None
    if spec.epoch is None or session.patron_key is None:
        return stores.pseudonyms.get(session.key, vendor, session.pseudonym_key)
    return pseudonym.derive(stores.epochs.key_for(spec.epoch), vendor, session.patron_key)


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


async def request_body(
    request: web.Request, snapshot: RuleSnapshot, plan: ForwardPlan, timeouts: Timeouts
) -> AsyncIterator[bytes] | bytes | None:
    """Streamed as is; a small urlencoded form is read whole when request_params apply (the
    decision refused methods, codings and sizes that are never relayed before this runs)."""
    if not request.body_exists:
        return None
    await continue_body(request)
    names = plan.form_params
    small = (request.content_length or MAX_TRANSLATED_FORM + 1) <= MAX_TRANSLATED_FORM
    if names and small and request.content_type == "application/x-www-form-urlencoded":
        form = (await request.read()).decode("latin-1")
        return translate_params(form, names, snapshot.mapper).encode("latin-1")
    return bounded_body(request, timeouts)


def browser_cookies(request: web.Request) -> str | None:
    """For ``cookies: pass``: the browser's cookies minus any that name the proxy's own (R2:
    the same parse that found the session token, so a token hidden in a value is dropped)."""
    return vendor_cookie_header(cookie_pairs(request), RESERVED_COOKIES)


async def bounded_body(request: web.Request, timeouts: Timeouts) -> AsyncIterator[bytes]:
    """Stream the request body upstream: at most MAX_REQUEST_BODY bytes, exactly the declared
    Content-Length if any, no silence longer than ``timeouts.client_body``, and all of it within
    ``body_deadline`` (a trickle of one byte per idle gap cannot hold a connection open, R9)."""
    declared = request.content_length
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
