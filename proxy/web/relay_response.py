"""The response side of a relayed request: vendor headers mapped, cookies kept, body streamed.

Contract: ``respond(request, vendor, session, upstream, now)`` turns the vendor's response
into the browser's: headers through ``core.headers.incoming_headers``, Set-Cookie into the
session's server-side jar (or rescoped for ``cookies: pass``), the third-party CSP for
``third_party: block`` rules, and the body passed through byte-identical (small bodies in one
write) or rewritten by the rule set's rewriter. A redirect (R22) to an unlisted public http(s)
site becomes the "you are leaving the library's proxy" page (200, not cached, the patron
follows the link or not); one to an internal address or to another scheme is a 502 page.
A body that fails after its headers went out cuts the connection, as does crossing the bytes
limit (an optional ``BodyMeter`` counts the body as it streams). Returns the response, the
bytes read, and the rewrite plan if any.
Not here: the upstream request (relay_request.py), statistics (relay.py), rewriting itself
(core/rewrite.py, web/bodies.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from proxy.core.cookierescope import rescope_set_cookie
from proxy.core.headers import incoming_headers
from proxy.core.redirects import judge_location
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.rules_loader import is_public_suffix
from proxy.stores.sessions import Session
from proxy.upstream.client import UpstreamResponse, iter_body, read_small
from proxy.upstream.errors import UpstreamError
from proxy.web.bodies import (
    BodyPlan,
    plan_body,
    prime,
    stream_rewritten,
)
from proxy.web.keys import (
    JARS,
    SETTINGS,
)
from proxy.web.pages import leaving_page
from proxy.web.relay_guard import BodyMeter, LimitReached
from proxy.web.relay_request import CHUNK, RESERVED_COOKIES, Resolved, tools_for

log = get_logger("relay")
# The interstitial is the proxy's own page: never cached, and the next site gets no Referer.
LEAVING_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class UnsafeRedirect(ClamshellError):
    """A vendor redirected to an internal address or a non-http(s) URL (R22)."""

    status_hint = 502
    public_message = "The database tried to send you to an address the library's proxy won't open."


def leaving_answer(request: web.Request, upstream: UpstreamResponse) -> web.Response | None:
    """The page for a redirect out of the proxy, None to relay the response, or UnsafeRedirect."""
    location = upstream.headers.get("Location")
    if location is None:
        return None
    verdict = judge_location(location, tools_for(request).mapper.to_proxy(location))
    if verdict == "refuse":
        log.info("redirect_refused", status=upstream.status)
        raise UnsafeRedirect()
    if verdict == "stay" or not 300 <= upstream.status < 400:
        return None
    settings = request.app[SETTINGS]
    url = location.strip()
    page = leaving_page(
        url,
        urlsplit(url).hostname or "",
        consortium=settings.consortium_name,
        back=settings.public_url + "/",
    )
    return web.Response(text=page, content_type="text/html", headers=LEAVING_HEADERS)


async def respond(
    request: web.Request,
    vendor: Resolved,
    session: Session,
    upstream: UpstreamResponse,
    now: datetime,
    meter: BodyMeter | None = None,
) -> tuple[web.StreamResponse, int, BodyPlan | None]:
    """Map the headers, keep the cookies, and stream (or rewrite) the body (``meter``
    counts its bytes against the usage limits as they go)."""
    rule, tools = vendor.rule, tools_for(request)
    leaving = leaving_answer(request, upstream)
    if leaving is not None:
        return leaving, 0, None
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
        upstream.decoded_headers,
        mapper=tools.mapper,
        body_rewritten=plan is not None,
    )
    headers = CIMultiDict(mapped.headers)
    keep_cookies(request, vendor, session, mapped.set_cookies, headers, now)
    if rule.third_party == "block":
        headers.add("Content-Security-Policy", tools.block_csp)
    length = upstream.content_length
    if plan is None and length is not None and length <= CHUNK and request.method != "HEAD":
        return await send_small(upstream, headers, meter), length, None
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    if plan is None:
        await response.prepare(request)
        return response, await stream_body(request, response, upstream, rule.id, meter), None
    chunks = metered(iter_body(upstream), meter)
    head, size = await prime(chunks, plan)  # errors here still get a page
    if plan.encoder.coding:
        response.headers["Content-Encoding"] = plan.encoder.coding
    response.headers.add("Vary", "Accept-Encoding")
    await response.prepare(request)
    if head:
        await response.write(head)
    try:
        size += await stream_rewritten(response, chunks, plan)
        await response.write_eof()
    except ClamshellError as exc:
        cut_short(request, rule.id, exc)
    except ConnectionError:
        pass  # the browser went away, or was disconnected for not reading (relay_guard.py)
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
