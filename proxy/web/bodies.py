"""Response bodies in the relay: stream through untouched, or decode ▸ rewrite ▸ re-encode.

Contract: ``plan_body(...)`` builds the incremental objects for a body the response plan
(core/responseplan.py: media type, coding, status) rewrites. A body the plan reads whole
(``rewrite_small``: declared at most ``SMALL_BODY`` long) is rewritten whole
(``rewrite_whole``); any other body runs decode ▸ rewrite ▸ encode chunk by chunk (``prime``,
then ``stream_rewritten``), so memory stays bounded whatever the body size; a decompression
bomb stops at ``max_decoded`` bytes.
Not here: rewriting itself (core/rewrite.py), codings (contentcoding.py), headers (core/headers.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from proxy.contentcoding import Decoder, Encoder
from proxy.core.responseplan import SMALL_BODY
from proxy.core.rewrite import BodyRewriter, HostRewriter
from proxy.core.rules import VendorRule

# Rewritten output held before the headers of a body read whole; past it, the rest streams.
MAX_HELD: Final = 4 * SMALL_BODY


@dataclass(slots=True)
class BodyPlan:
    """The three incremental steps for one rewritten body."""

    decoder: Decoder
    rewriter: BodyRewriter
    encoder: Encoder

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        """``chunk`` decoded (a bounded step at a time), rewritten and re-encoded."""
        for piece in self.decoder.iter_decode(chunk):
            yield self.encoder.encode(self.rewriter.feed(piece))

    def end(self) -> bytes:
        """Everything the three steps still hold, once the body has ended."""
        tail = self.rewriter.feed(self.decoder.flush()) + self.rewriter.flush()
        return self.encoder.encode(tail) + self.encoder.flush()


def plan_body(
    rewriting: HostRewriter,
    rule: VendorRule,
    *,
    content_type: str,
    content_encoding: str | None,
    accept_encoding: str | None,
    url_path: str,
    max_decoded: int,
) -> BodyPlan:
    """The incremental objects for a body the response plan rewrites."""
    rewriter = rewriting.rewriter(
        content_type=content_type,
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
    return b"".join(plan.pieces(first)), len(first)


@dataclass(slots=True)
class Whole:
    """A body read whole and rewritten before its headers: the output so far, the bytes
    read, and ``rest`` (the pieces still to come) when the output outgrew ``MAX_HELD``."""

    output: bytes
    size: int
    rest: Iterator[bytes] | None = None


async def rewrite_whole(chunks: AsyncIterator[bytes], plan: BodyPlan) -> Whole:
    """A body the plan reads whole (``rewrite_small``): read whole, then decode ▸ rewrite
    ▸ encode it in one feed, before any header is sent (every error still gets a page).

    Why whole (#19): the body then goes out with a Content-Length in one socket write instead
    of chunk framing per upstream read, and the rewriter runs once instead of once per read
    (profiled on a 100 KB results page, that was about 180 µs per page). Memory stays bounded:
    the raw bytes by ``SMALL_BODY`` (the upstream framing stops at the declared length), the
    output by ``MAX_HELD``: a small body that decodes to much more (a compressed page sent
    to a browser that takes no coding, or a bomb on its way to the decoder's limit) stops
    being held there and streams the rest (``Whole.rest``)."""
    data = b"".join([chunk async for chunk in chunks])
    pieces = plan.pieces(data)
    held: list[bytes] = []
    size = 0
    for piece in pieces:
        held.append(piece)
        size += len(piece)
        if size > MAX_HELD:
            return Whole(b"".join(held), len(data), pieces)
    held.append(plan.end())
    return Whole(b"".join(held), len(data))


async def stream_rewritten(
    response: web.StreamResponse,
    chunks: AsyncIterator[bytes],
    plan: BodyPlan,
    held: Iterable[bytes] = (),
) -> int:
    """Write the pieces ``held`` still has (``Whole.rest``), then decode, rewrite and
    re-encode the rest chunk by chunk; returns the bytes read."""
    for piece in held:
        await _write(response, piece)
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        for piece in plan.pieces(chunk):
            await _write(response, piece)
    await _write(response, plan.end())
    return size


async def _write(response: web.StreamResponse, data: bytes) -> None:
    if data:
        await response.write(data)
