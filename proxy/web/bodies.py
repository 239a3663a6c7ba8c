"""Response bodies in the relay: stream through untouched, or decode ▸ rewrite ▸ re-encode.

Contract: ``plan_body(...)`` builds the incremental objects for a body the response plan
(core/responseplan.py: media type, coding, status) rewrites. ``stream_rewritten`` runs
decode ▸ rewrite ▸ encode chunk by chunk, so memory stays bounded whatever the body size;
a decompression bomb stops at ``max_decoded`` bytes.
Not here: rewriting itself (core/rewrite.py), codings (contentcoding.py), headers (core/headers.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiohttp import web

from proxy.contentcoding import Decoder, Encoder
from proxy.core.rewrite import BodyRewriter, HostRewriter
from proxy.core.rules import VendorRule


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


async def finish_rewritten(chunks: AsyncIterator[bytes], plan: BodyPlan) -> tuple[bytes, int]:
    """The end of a body whose every byte ``prime`` already read (the upstream's
    Content-Length reached): what is left of decode ▸ rewrite ▸ encode, flushed, in memory
    (bounded like ``prime``'s chunk, by the decoder's limit); returns (output, bytes read).
    The iterator is still drained, so the upstream connection goes back to its pool."""
    out: list[bytes] = []
    size = 0
    async for chunk in chunks:  # nothing is expected; read it all the same
        size += len(chunk)
        out += plan.pieces(chunk)
    out.append(plan.end())
    return b"".join(out), size


async def stream_rewritten(
    response: web.StreamResponse, chunks: AsyncIterator[bytes], plan: BodyPlan
) -> int:
    """Decode, rewrite and re-encode the rest chunk by chunk; returns the bytes read."""
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
