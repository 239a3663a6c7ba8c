"""Incremental content codings for bodies the proxy rewrites: decode, then re-encode.

Contract: ``Decoder.for_coding(content_encoding, max_output)`` returns a decoder for the
response's ``Content-Encoding``: gzip (also ``x-gzip`` and several members), deflate (zlib
wrapper or raw, told apart by the first two bytes), br, zstd when the ``zstandard`` package
is importable, identity, or a list of those (decoded last-applied first).
``iter_decode(chunk)`` yields the decoded bytes in pieces of at most ``OUTPUT_STEP`` bytes;
``decode(chunk)`` joins them; ``flush()`` ends the body. Once a body decodes to more than
``max_output`` bytes, ``DecodedTooLarge`` (502) is raised. Every step asks the library for a
bounded amount of output (zlib's ``max_length``/``unconsumed_tail``, brotli's
``output_buffer_limit``, zstd fed a few hundred input bytes at a time), so a decompression
bomb never materialises more than one step before the cap stops it. Brotli before 1.2 has
no output limit: it is fed ``BROTLI_SLICE`` input bytes at a time, which bounds a step at
8 MiB instead of 64 KiB, and slows br decoding; ``BROTLI_BOUNDED`` tells which applies
(brotli ≥ 1.2 is used as soon as it is installed). Damaged input raises
``DamagedBody`` (502).
``Encoder.for_accept(accept_encoding)`` picks the coding the browser accepts with the highest
q-value among ``gzip`` (level 1), ``br`` (quality 1) and identity, preferring them in that
order on equal q (``ENCODINGS``); ``encode(chunk)`` returns bytes ending on a flush point
(so a streamed page renders progressively) and ``flush()`` ends the stream.
A coding not in ``DECODERS`` (``compress``, a vendor's own…) cannot be decoded: ``can_decode``
says so and ``for_coding`` raises ``UnsupportedCoding``. The relay then streams such a body
through untouched, Content-Encoding and all, without rewriting it.
Not here: which bodies are rewritten (core/rewrite.py), headers (core/headers.py), sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, Protocol, cast

import brotli

# gzip and deflate through python-isal's ``isal_zlib``: zlib's API and wire format, with
# Intel's ISA-L underneath. Measured on the real pages and the link-dense page (#19): level-1
# compression 461 vs zlib's 104 MB/s at a slightly better ratio, decompression 917 vs 437
# MB/s; once rewriting got fast, zlib was most of a compressed page's cost in the relay.
from isal import isal_zlib

from proxy.errors import ClamshellError

try:  # optional: zstd is decoded only when the package is installed
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None  # type: ignore[assignment]

OUTPUT_STEP: Final = 64 * 1024  # most decoded bytes produced by one step
ZSTD_INPUT_STEP: Final = 256  # zstd input per step: one RLE block (4 bytes) yields ≤128 KB
# Input per call with brotli < 1.2, which has no output limit (mitmproxy 11 pins it there).
# Measured on a 100 MiB bomb: up to 16 bytes of input yield at most 8 MiB (21 MiB peak), 32
# bytes already 16 MiB (45 MiB peak). Normal pages then decode at ~110 MB/s instead of
# ~500; with brotli >= 1.2 (BROTLI_BOUNDED) neither cost applies.
BROTLI_SLICE: Final = 16
BROTLI_BOUNDED: Final = hasattr(brotli.Decompressor(), "can_accept_more_data")
# Measured on the real pages here (bench, 64 KB chunks with a flush each): brotli quality 1
# ran at twice the speed of gzip level 1 for the same size; higher levels cost more CPU per
# page than they save on the wire of a patron's connection.
GZIP_LEVEL: Final = 1
BROTLI_QUALITY: Final = 1
# python-isal's stub declares ``error`` as an instance; it is the class ISA-L errors raise.
ISAL_ERROR: Final = cast(type[Exception], isal_zlib.error)
GZIP_WBITS: Final = 16 + isal_zlib.MAX_WBITS  # zlib's "gzip container" setting
GZIP_MAGIC: Final = b"\x1f\x8b"  # RFC 1952 §2.3.1


class DecodedTooLarge(ClamshellError):
    """A response decodes to more than the configured cap (a decompression bomb, or huge)."""

    status_hint = 502
    public_message = "The publisher's page is too large for the proxy to process."


class DamagedBody(ClamshellError):
    """The response's bytes do not decode with the coding it names."""

    status_hint = 502
    public_message = "The publisher sent a damaged page. Please try again later."


class UnsupportedCoding(ValueError):
    """A Content-Encoding this module cannot decode; relay the body untouched instead."""


class Step(Protocol):
    """One decoding: ``feed`` new input, then call ``more`` until it returns ``b""``."""

    def feed(self, data: bytes) -> bytes: ...

    def more(self) -> bytes: ...


class ZlibStep:
    """gzip (one or more members) or deflate (``wbits`` None: decided by the first bytes)."""

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits
        self._pending = b""  # input not yet given to zlib: before a stream starts
        self._obj = isal_zlib.decompressobj(wbits) if wbits is not None else None
        self._done = False  # the body has ended; later bytes are ignored, as browsers do

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        return self.more()

    def more(self) -> bytes:
        if self._done or ((self._obj is None or self._obj.eof) and not self._start_stream()):
            return b""
        obj = self._obj
        assert obj is not None
        data, self._pending = self._pending, b""
        out = obj.decompress(obj.unconsumed_tail + data, OUTPUT_STEP)
        if not obj.eof:
            return out
        self._pending = obj.unused_data  # maybe the next gzip member
        return out or self.more()

    def _start_stream(self) -> bool:
        """Open the next stream on the pending input; False while that is not possible."""
        if len(self._pending) < 2:
            return False  # wait for the two bytes that decide
        if self._obj is None:
            self._obj = isal_zlib.decompressobj(_deflate_wbits(self._pending))
        elif self._wbits == GZIP_WBITS and self._pending.startswith(GZIP_MAGIC):
            self._obj = isal_zlib.decompressobj(GZIP_WBITS)  # another member (RFC 1952 §2.2)
        else:
            self._done = True
            return False
        return True


def _deflate_wbits(head: bytes) -> int:
    """zlib-wrapped (RFC 1950) when the header checks out, else raw deflate (RFC 1951)."""
    cmf, flg = head[0], head[1]
    wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
    return isal_zlib.MAX_WBITS if wrapped else -isal_zlib.MAX_WBITS


class Backlog:
    """Input not yet handed to a library, taken in slices without copying the rest."""

    def __init__(self) -> None:
        self._data = b""
        self._pos = 0

    def add(self, data: bytes) -> None:
        if data:
            self._data = self._data[self._pos :] + data
            self._pos = 0

    def take(self, size: int | None = None) -> bytes:
        end = len(self._data) if size is None else self._pos + size
        piece = self._data[self._pos : end]
        self._pos += len(piece)
        return piece

    def __bool__(self) -> bool:
        return self._pos < len(self._data)


class BrotliStep:
    """br. Output is bounded per call with brotli ≥ 1.2; older versions get small slices."""

    def __init__(self) -> None:
        self._obj = brotli.Decompressor()
        self._bounded = BROTLI_BOUNDED
        self._backlog = Backlog()

    def feed(self, data: bytes) -> bytes:
        self._backlog.add(data)
        return self.more()

    def more(self) -> bytes:
        if not self._bounded:
            while self._backlog:
                out: bytes = self._obj.process(self._backlog.take(BROTLI_SLICE))
                if out:
                    return out
            return b""
        if self._obj.is_finished():
            return b""
        data = self._backlog.take() if self._obj.can_accept_more_data() else b""
        return self._obj.process(data, output_buffer_limit=OUTPUT_STEP)  # type: ignore[no-any-return]


class ZstdStep:
    """zstd, fed a few hundred input bytes at a time so that no step can balloon."""

    def __init__(self) -> None:
        assert zstandard is not None
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._backlog = Backlog()

    def feed(self, data: bytes) -> bytes:
        self._backlog.add(data)
        return self.more()

    def more(self) -> bytes:
        while self._backlog:
            out: bytes = self._obj.decompress(self._backlog.take(ZSTD_INPUT_STEP))
            if out:
                return out
        return b""


# Content-Encoding token → decoding step (RFC 9110 §8.4.1; "x-gzip" is gzip, §8.4.1.3).
DECODERS: Final[dict[str, Callable[[], Step]]] = {
    "gzip": lambda: ZlibStep(GZIP_WBITS),
    "x-gzip": lambda: ZlibStep(GZIP_WBITS),
    "deflate": lambda: ZlibStep(None),
    "br": BrotliStep,
}
if zstandard is not None:  # pragma: no branch - depends on the environment
    DECODERS["zstd"] = ZstdStep
# The errors the libraries raise for damaged input.
_LIBRARY_ERRORS: Final = (ISAL_ERROR, brotli.error) + (
    (zstandard.ZstdError,) if zstandard is not None else ()
)


def codings(content_encoding: str | None) -> list[str]:
    """The codings in the order they were applied, without ``identity``."""
    tokens = [t.strip().lower() for t in (content_encoding or "").split(",")]
    return [t for t in tokens if t and t != "identity"]


def can_decode(content_encoding: str | None) -> bool:
    """True when every coding in the header can be decoded here."""
    return all(c in DECODERS for c in codings(content_encoding))


class Decoder:
    """Decodes one response body incrementally, under a cap on the decoded size."""

    def __init__(self, steps: Sequence[Step], max_output: int) -> None:
        self._steps = tuple(steps)  # in decoding order: the last coding applied comes first
        self._max = max_output
        self._totals = [0] * len(self._steps)

    @classmethod
    def for_coding(cls, content_encoding: str | None, max_output: int) -> Decoder:
        """A decoder for this ``Content-Encoding`` value (None or "identity": no coding)."""
        names = codings(content_encoding)
        unknown = [n for n in names if n not in DECODERS]
        if unknown:
            raise UnsupportedCoding(f"cannot decode Content-Encoding {unknown[0]!r}")
        return cls([DECODERS[n]() for n in reversed(names)], max_output)

    def iter_decode(self, chunk: bytes) -> Iterator[bytes]:
        """The decoded bytes available after ``chunk``, at most ``OUTPUT_STEP`` at a time."""
        pieces: Iterable[bytes] = (chunk,) if chunk else ()
        for i in range(len(self._steps)):
            pieces = self._through(i, pieces)
        try:
            yield from pieces
        except _LIBRARY_ERRORS as exc:
            raise DamagedBody(f"{type(exc).__name__}: {exc}") from None

    def decode(self, chunk: bytes) -> bytes:
        """All decoded bytes available after ``chunk``."""
        return b"".join(self.iter_decode(chunk))

    def flush(self) -> bytes:
        """The rest at the end of the body (every step has seen all its input by now)."""
        return self.decode(b"")

    def _through(self, i: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        step = self._steps[i]
        for data in pieces:
            out = step.feed(data)
            while out:
                self._totals[i] += len(out)
                if self._totals[i] > self._max:
                    raise DecodedTooLarge(f"decoded body passed {self._max} bytes")
                yield out
                out = b""  # drop this piece before the next is made (brotli < 1.2: 16 MB)
                out = step.more()


def accepted(accept_encoding: str | None) -> dict[str, float]:
    """Accept-Encoding as coding → q (RFC 9110 §12.5.3); ``*`` stands for the rest."""
    weights: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        name, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a malformed weight is not an acceptance
        if name:
            weights[name.lower()] = q
    return weights


IMPLICIT_IDENTITY_Q: Final = 0.001
# What we can send, in order of preference on equal q. gzip first: every client decodes it,
# while some brotli decoders in the field are not (aiohttp 3.14's client fails on the
# brotli 1.1 that mitmproxy 11 pins); br is still used when a client prefers it by q-value.
ENCODINGS: Final = ("gzip", "br", "identity")


def choose_encoding(accept_encoding: str | None) -> str:
    """The best coding for this Accept-Encoding; identity when nothing else is accepted.

    No header at all gets identity: RFC 9110 allows any coding then, but old clients and
    tools that send none are exactly the ones that might not decode it.
    """
    if not accept_encoding:
        return "identity"
    weights = accepted(accept_encoding)
    star = weights.get("*")

    def q(name: str) -> float:
        if name in weights:
            return weights[name]
        if star is not None:
            return star
        # Unlisted identity is acceptable but least preferred (RFC 9110 §12.5.3).
        return IMPLICIT_IDENTITY_Q if name == "identity" else 0.0

    best = max(ENCODINGS, key=lambda name: (q(name), -ENCODINGS.index(name)))
    return best if q(best) > 0 else "identity"  # nothing acceptable: identity as a fallback


class Encoder:
    """Encodes one body for the browser; ``coding`` is the Content-Encoding to send (or None)."""

    def __init__(self, coding: str) -> None:
        if coding not in ENCODINGS:
            raise UnsupportedCoding(f"cannot encode {coding!r}; expected one of {ENCODINGS}")
        self.coding: str | None = None if coding == "identity" else coding
        self._brotli = brotli.Compressor(quality=BROTLI_QUALITY) if coding == "br" else None
        gzip = coding == "gzip"
        self._gzip = (
            isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, GZIP_WBITS) if gzip else None
        )

    @classmethod
    def for_accept(cls, accept_encoding: str | None) -> Encoder:
        """The encoder for the coding ``choose_encoding`` picks."""
        return cls(choose_encoding(accept_encoding))

    def encode(self, chunk: bytes) -> bytes:
        """Encoded bytes for ``chunk``, ending on a flush point; empty in, empty out."""
        if not chunk or self.coding is None:
            return chunk
        if self._brotli is not None:
            return self._brotli.process(chunk) + self._brotli.flush()  # type: ignore[no-any-return]
        assert self._gzip is not None
        return self._gzip.compress(chunk) + self._gzip.flush(isal_zlib.Z_SYNC_FLUSH)

    def flush(self) -> bytes:
        """The end of the encoded stream."""
        if self.coding is None:
            return b""
        if self._brotli is not None:
            return self._brotli.finish()  # type: ignore[no-any-return]
        assert self._gzip is not None
        return self._gzip.flush()
