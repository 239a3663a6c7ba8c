"""Response bodies in the relay: stream through untouched, or decode ▸ rewrite ▸ re-encode.

Contract: ``plan_body(...)`` decides, from the rule and the vendor's response, whether a body
is rewritten (its media type is one the rule lists, its coding is one we can decode, it is
not UTF-16, and it can have a body at all) and returns the incremental objects to do it, or
None to pass the bytes through exactly as received (Content-Encoding and Content-Length
kept). ``stream_rewritten`` runs decode ▸ rewrite ▸ encode chunk by chunk, so memory stays
bounded whatever the body size; a decompression bomb stops at ``max_decoded`` bytes.
``third_party_csp`` is the Content-Security-Policy that keeps a ``third_party: block``
vendor's pages on proxy hosts.
Not here: rewriting itself (core/rewrite.py), codings (contentcoding.py), headers (core/headers.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from proxy.contentcoding import Decoder, Encoder, can_decode
from proxy.core.rewrite import BodyRewriter, HostRewriter, is_rewritable
from proxy.core.rules import VendorRule

NO_BODY_STATUSES: Final = frozenset({204, 205, 304})  # RFC 9110 §6.4.1
# A partial body (Range) cannot be rewritten without breaking its Content-Range; it is passed
# through as it is (RFC 9110 §15.3.7).
PASS_THROUGH_STATUSES: Final = frozenset({206})
NO_BODY_METHODS: Final = frozenset({"HEAD"})


@dataclass(slots=True)
class BodyPlan:
    """The three incremental steps for one rewritten body."""

    decoder: Decoder
    rewriter: BodyRewriter
    encoder: Encoder


def plan_body(
    rewriting: HostRewriter,
    rule: VendorRule,
    *,
    method: str,
    status: int,
    content_type: str | None,
    content_encoding: str | None,
    accept_encoding: str | None,
    url_path: str,
    max_decoded: int,
) -> BodyPlan | None:
    """How to handle this body: a plan to rewrite it, or None to pass it through."""
    if method in NO_BODY_METHODS or status in NO_BODY_STATUSES | PASS_THROUGH_STATUSES:
        return None
    if not is_rewritable(content_type, rule.rewrite.content_types):
        return None
    if not can_decode(content_encoding):
        return None  # e.g. 'compress' or a vendor's own coding: passed through untouched
    rewriter = rewriting.rewriter(
        content_type=content_type or "",
        find_replace=rule.rewrite.find_replace,
        url_path=url_path,
        third_party=rule.third_party,
    )
    return BodyPlan(
        Decoder.for_coding(content_encoding, max_decoded),
        rewriter,
        Encoder.for_accept(accept_encoding),
    )


async def prime(chunks: AsyncIterator[bytes], plan: BodyPlan) -> tuple[bytes, int]:
    """Process the first chunk before any header is sent, so a bomb or a damaged body
    becomes an error page rather than a cut connection; returns (output, bytes read)."""
    first = await anext(chunks, b"")
    out = [plan.encoder.encode(plan.rewriter.feed(p)) for p in plan.decoder.iter_decode(first)]
    return b"".join(out), len(first)


async def stream_rewritten(
    response: web.StreamResponse, chunks: AsyncIterator[bytes], plan: BodyPlan
) -> int:
    """Decode, rewrite and re-encode the rest chunk by chunk; returns the bytes read."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        for piece in plan.decoder.iter_decode(chunk):
            await _write(response, plan.encoder.encode(plan.rewriter.feed(piece)))
    tail = plan.rewriter.feed(plan.decoder.flush()) + plan.rewriter.flush()
    await _write(response, plan.encoder.encode(tail) + plan.encoder.flush())
    return size


async def _write(response: web.StreamResponse, data: bytes) -> None:
    if data:
        await response.write(data)


def third_party_csp(public_scheme: str, proxy_host: str, proxy_port: int | None) -> str:
    """A CSP that lets a page load only from proxy hosts, data: and blob: (third_party: block).

    Inline scripts and styles stay allowed: vendor pages depend on them, and they run on the
    proxy's hosts anyway; what the policy stops is the browser contacting other hosts.
    """
    port = f":{proxy_port}" if proxy_port else ""
    hosts = f"{public_scheme}://{proxy_host}{port} {public_scheme}://*.{proxy_host}{port}"
    return (
        f"default-src 'self' {hosts} data: blob: 'unsafe-inline' 'unsafe-eval'; "
        f"form-action 'self' {hosts}; frame-ancestors 'self' {hosts}"
    )
