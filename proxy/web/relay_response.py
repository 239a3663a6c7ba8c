"""The response side of a relayed request: the response plan executed.

Contract: ``respond(exchange, upstream, meter)`` asks
``core.responseplan.plan_response`` what the browser gets and does it: the "you are leaving
the library's proxy" page (200, not cached, R22), a refusal (502 for a redirect to an
internal address or another scheme), or the mapped headers with Set-Cookie kept in the
session's server-side jar (or rescoped for ``cookies: pass``) and the body sent in one write
(small), streamed byte-identical, or rewritten by the snapshot's rewriter. A body that
fails after its headers went out cuts the connection, as does crossing the bytes limit (the
optional ``BodyMeter`` counts the body as it streams). Returns what was ``Sent``.
Not here: the upstream request (relay_request.py), statistics (relay_guard.py), rewriting
itself (core/rewrite.py, web/bodies.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from multidict import CIMultiDict

from proxy.contentcoding import can_decode
from proxy.core.cookierescope import rescope_set_cookie
from proxy.core.decision import Deny
from proxy.core.responseplan import Leave, ResponseHead, plan_response
from proxy.core.settings import Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.metrics import count_rewrite
from proxy.rules_loader import is_public_suffix
from proxy.upstream.client import UpstreamResponse, iter_body, read_small
from proxy.upstream.errors import UpstreamError
from proxy.web.bodies import BodyPlan, plan_body, prime, rewrite_whole, stream_rewritten
from proxy.web.exchange import Exchange
from proxy.web.page_response import page
from proxy.web.relay_guard import BodyMeter, LimitReached, Refused
from proxy.web.relay_request import RESERVED_COOKIES

log = get_logger("relay")
# The interstitial is the proxy's own page: never cached, and the next site gets no Referer.
LEAVING_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True, slots=True)
class Sent:
    """What was sent: the response, the body bytes read, third-party hosts the rewriter saw."""

    response: web.StreamResponse
    size: int
    third_parties: Counter[str] | None = None


async def respond(ex: Exchange, upstream: UpstreamResponse, meter: BodyMeter | None = None) -> Sent:
    """Execute the response plan: the leaving page, a refusal, or the mapped response with
    the cookies kept and the body sent small, streamed or rewritten (``meter`` counts it)."""
    request, snapshot, plan = ex.request, ex.snapshot, ex.plan
    head = ResponseHead(
        upstream.status,
        upstream.decoded_headers,
        upstream.headers.get("Location"),
        upstream.headers.get("Content-Type"),
        upstream.headers.get("Content-Encoding"),
        upstream.content_length,
    )
    answer = plan_response(snapshot, plan, head, method=request.method, can_decode=can_decode)
    if isinstance(answer, Leave):
        ex.stores.usage.unknown_host(ex.now.date(), answer.host)  # #17 needhost, no patron data
        return Sent(leaving_answer(ex.request, ex.stores.settings, answer), 0)
    if isinstance(answer, Deny):
        log.info("redirect_refused", status=upstream.status)
        raise Refused(answer)
    headers = CIMultiDict(answer.headers)
    keep_cookies(ex, answer.set_cookies, headers)
    await share_cookies(ex, answer.set_cookies)
    if answer.body == "small":
        return Sent(await send_small(upstream, headers, meter), upstream.content_length or 0)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    if answer.body == "stream":
        await response.prepare(request)
        return Sent(response, await stream_body(request, response, upstream, plan.rule.id, meter))
    body = plan_body(
        snapshot.rewriter,
        plan.rule,
        content_type=answer.content_type,
        content_encoding=head.content_encoding,
        accept_encoding=request.headers.get("Accept-Encoding"),
        url_path=request.path,
        max_decoded=snapshot.max_decoded,
    )
    whole = answer.body == "rewrite_small"  # read whole before the headers (#19)
    size = await send_rewritten(request, response, upstream, plan.rule.id, body, meter, whole)
    count_rewrite(plan.rule.id, size)
    return Sent(response, size, body.rewriter.referenced_hosts)


def leaving_answer(request: web.Request, settings: Settings, leave: Leave) -> web.Response:
    """The "you are leaving the library's proxy" page (R22), never cached."""
    return page(
        request,
        "leaving.html",
        headers=LEAVING_HEADERS,
        url=leave.url,
        host=leave.host,
        back=settings.public_url + "/",
    )


async def send_rewritten(
    request: web.Request,
    response: web.StreamResponse,
    upstream: UpstreamResponse,
    vendor: str,
    plan: BodyPlan,
    meter: BodyMeter | None,
    whole_body: bool,
) -> int:
    """Decode ▸ rewrite ▸ re-encode: a body read whole (``whole_body``) before its headers,
    with its length; any other with its first chunk before the headers (errors get a page)."""
    chunks = metered(iter_body(upstream), meter)
    held: Iterable[bytes] = ()
    if whole_body:
        whole = await rewrite_whole(chunks, plan)  # errors here still get a page
        coding_headers(response, plan)
        if whole.rest is None:
            await send_whole(request, response, whole.output)
            return whole.size
        head, size, held = whole.output, whole.size, whole.rest  # it grew: stream the rest
    else:
        head, size = await prime(chunks, plan)  # errors here still get a page
        coding_headers(response, plan)
    await response.prepare(request)
    if head:
        await response.write(head)
    try:
        size += await stream_rewritten(response, chunks, plan, held)
        await response.write_eof()
    except ClamshellError as exc:
        cut_short(request, vendor, exc)
    except ConnectionError:
        pass  # the browser went away, or was disconnected for not reading (relay_guard.py)
    return size


def coding_headers(response: web.StreamResponse, plan: BodyPlan) -> None:
    """The re-encoded body's coding, and that it depends on the browser's Accept-Encoding."""
    if plan.encoder.coding:
        response.headers["Content-Encoding"] = plan.encoder.coding
    response.headers.add("Vary", "Accept-Encoding")


async def send_whole(request: web.Request, response: web.StreamResponse, body: bytes) -> None:
    """A rewritten body that is complete: its length in the headers, one write."""
    response.content_length = len(body)
    try:
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
    except ConnectionError:
        pass  # the browser went away, or was disconnected for not reading (relay_guard.py)


async def share_cookies(ex: Exchange, set_cookies: list[str]) -> None:
    """#15, redis mode: write the server-side jar that just changed for the other nodes."""
    shared, rule = ex.stores.shared_jars, ex.plan.rule
    if shared is None or not set_cookies or rule.cookies != "server_side" or ex.plan.anonymous:
        return  # an anonymous answer seeds no jar (keep_cookies)
    session = ex.plan.accounting.session
    await shared.save(ex.stores.jars.jar(session, rule.id), session, rule.id, ex.now)


def keep_cookies(ex: Exchange, set_cookies: list[str], headers: CIMultiDict[str]) -> None:
    """Server-side jar (default), or rescoped to the mapped host for ``cookies: pass``."""
    if not set_cookies or ex.plan.anonymous:
        return  # #17: an anonymous answer seeds no jar (there is no session to hold it)
    stores, plan = ex.stores, ex.plan
    origin, rule = plan.origin, plan.rule
    if rule.cookies == "server_side":
        stores.jars.jar(plan.accounting.session, rule.id).store(
            set_cookies,
            request_host=origin.host,
            request_path=ex.request.path,
            secure_scheme=origin.scheme == "https",
            now=ex.now,
        )
        return
    secure_ok = stores.settings.public_scheme == "https"
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


async def send_small(
    upstream: UpstreamResponse, headers: CIMultiDict[str], meter: BodyMeter | None = None
) -> web.Response:
    """A small pass-through body goes out with its headers in one write (profiled: each
    extra socket write costs more than the rest of the relay's per-request policy work).
    aiohttp sets Content-Length from the body itself. Over the bytes limit: not sent."""
    body = await read_small(upstream)
    if meter is not None:
        meter.add(len(body))
    headers.popall("Content-Length", None)
    return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=headers)


async def stream_body(
    request: web.Request,
    response: web.StreamResponse,
    upstream: UpstreamResponse,
    vendor: str,
    meter: BodyMeter | None = None,
) -> int:
    """Copy the body; a failure after the headers went out can only cut the connection, and
    so does crossing the bytes limit (R3: the rest is not served)."""
    size = 0
    try:
        async for chunk in iter_body(upstream):
            size += len(chunk)
            if meter is not None:
                meter.add(len(chunk))
            await response.write(chunk)
        await response.write_eof()
    except (UpstreamError, LimitReached) as exc:
        cut_short(request, vendor, exc)
    except ConnectionError:
        pass  # the browser went away, or was disconnected for not reading (relay_guard.py)
    return size


async def metered(chunks: AsyncIterator[bytes], meter: BodyMeter | None) -> AsyncIterator[bytes]:
    """The chunks, each counted by ``meter`` before it is passed on."""
    async for chunk in chunks:
        if meter is not None:
            meter.add(len(chunk))
        yield chunk


def cut_short(request: web.Request, vendor: str, exc: Exception) -> None:
    """A body failed (or crossed a limit) after its headers went out: close the connection,
    so the browser sees a truncated response rather than a complete-looking wrong one."""
    if isinstance(exc, LimitReached):
        log.warning("response_cut_at_limit", vendor=vendor, limit=str(exc))
    else:
        log.warning("upstream_body_failed", vendor=vendor, error=type(exc).__name__)
    if request.transport is not None:
        request.transport.close()
