"""Content codings: round trips, chunking, the decompression-bomb guard, Accept-Encoding."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.contentcoding import (
    BROTLI_BOUNDED,
    DECODERS,
    OUTPUT_STEP,
    DamagedBody,
    DecodedTooLarge,
    Decoder,
    Encoder,
    UnsupportedCoding,
    can_decode,
    choose_encoding,
)
from proxy.errors import ClamshellError

PAGE = b"".join(
    b'<p><a href="https://www.jstor.org/stable/%d">Article %d</a> lorem ipsum</p>\n' % (i, i)
    for i in range(3000)
)


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib wrapper (what some servers send as "deflate")."""
    obj = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return obj.compress(data) + obj.flush()


def zstd(data: bytes) -> bytes:
    """zstd, when the optional package is installed."""
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)  # type: ignore[no-any-return]


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd,
}


def decode_in_chunks(coding: str | None, body: bytes, size: int, cap: int = 10**9) -> bytes:
    """Decode ``body`` fed ``size`` bytes at a time."""
    decoder = Decoder.for_coding(coding, max_output=cap)
    out = [decoder.decode(body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(out) + decoder.flush()


@pytest.mark.parametrize("coding", sorted(ENCODERS))
@pytest.mark.parametrize("size", [1, 7, 4096, 10**7])
def test_round_trip(coding: str, size: int) -> None:
    """Each supported coding decodes to the original, however the input is cut."""
    assert decode_in_chunks(coding, ENCODERS[coding](PAGE), size) == PAGE


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_raw_deflate_is_told_apart_from_zlib(size: int) -> None:
    """ "deflate" without the zlib wrapper (RFC 1951 only) decodes too."""
    assert decode_in_chunks("deflate", raw_deflate(PAGE), size) == PAGE


def test_identity_and_no_coding_pass_bytes_through() -> None:
    """No Content-Encoding, or identity, changes nothing."""
    for coding in (None, "", "identity", "Identity"):
        assert decode_in_chunks(coding, PAGE, 1000) == PAGE


def test_stacked_codings_are_decoded_last_applied_first() -> None:
    """'Content-Encoding: gzip, br' means gzip was applied first."""
    body = brotli.compress(gzip.compress(PAGE))
    assert decode_in_chunks("gzip, br", body, 500) == PAGE


def test_several_gzip_members_are_one_body() -> None:
    """Concatenated gzip members decode to the concatenation (RFC 1952 §2.2)."""
    body = gzip.compress(PAGE[:1000]) + gzip.compress(PAGE[1000:])
    for size in (1, 999, 10**6):
        assert decode_in_chunks("gzip", body, size) == PAGE


def test_trailing_bytes_after_gzip_are_ignored() -> None:
    """Junk after the gzip trailer is dropped, as browsers do."""
    assert decode_in_chunks("gzip", gzip.compress(PAGE) + b"\x00\x00junk", 100) == PAGE


def test_outputs_come_in_bounded_pieces() -> None:
    """iter_decode never yields more than OUTPUT_STEP bytes at once."""
    decoder = Decoder.for_coding("gzip", max_output=10**9)
    pieces = list(decoder.iter_decode(gzip.compress(b"\0" * (5 * OUTPUT_STEP + 3))))
    assert max(map(len, pieces)) <= OUTPUT_STEP
    assert sum(map(len, pieces)) == 5 * OUTPUT_STEP + 3


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=5000), cuts=st.lists(st.integers(1, 300), max_size=20))
def test_chunking_does_not_change_decoding(data: bytes, cuts: list[int]) -> None:
    """Any cut of the encoded body decodes to the same bytes."""
    for coding in ("gzip", "deflate", "br"):
        body = ENCODERS[coding](data)
        decoder = Decoder.for_coding(coding, max_output=10**6)
        out, pos = [], 0
        for size in cuts:
            out.append(decoder.decode(body[pos : pos + size]))
            pos += size
        out.append(decoder.decode(body[pos:]) + decoder.flush())
        assert b"".join(out) == data


def streamed_bomb(size: int, wbits: int, block: int = 2**20) -> bytes:
    """``size`` zero bytes compressed one block at a time (never held in memory at once)."""
    obj = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(block)
    parts = [obj.compress(zeros) for _ in range(size // block)]
    return b"".join(parts) + obj.flush()


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """``body`` in network-sized pieces."""
    return (body[i : i + size] for i in range(0, len(body), size))


def peak_while_decoding(coding: str, body: bytes, cap: int) -> int:
    """Decode ``body`` chunk by chunk, discarding output; the peak traced memory."""
    decoder = Decoder.for_coding(coding, max_output=cap)
    tracemalloc.start()
    try:
        with pytest.raises(DecodedTooLarge):
            for chunk in chunks(body):
                for _ in decoder.iter_decode(chunk):
                    pass
            decoder.flush()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_stops_at_the_cap_in_bounded_memory() -> None:
    """1 GiB of zeros as ~1 MB of gzip (1024 members): refused at a 10 MB cap, small peak."""
    bomb = gzip.compress(bytes(2**20), 9) * 1024
    assert len(bomb) < 2 * 2**20
    peak = peak_while_decoding("gzip", bomb, cap=10 * 2**20)
    assert peak < 2**20, f"peak {peak} bytes"


def test_single_stream_gzip_bomb_stops_at_the_cap_in_bounded_memory() -> None:
    """200 MiB of zeros in one gzip stream (~200 KB): zlib's max_length keeps steps small."""
    bomb = streamed_bomb(200 * 2**20, 16 + zlib.MAX_WBITS)
    peak = peak_while_decoding("gzip", bomb, cap=10 * 2**20)
    assert peak < 2**20, f"peak {peak} bytes"


def test_brotli_bomb_stops_at_the_cap_in_bounded_memory() -> None:
    """100 MiB of zeros as ~200 bytes of br: refused at a 10 MB cap, memory bounded.

    brotli >= 1.2 bounds each step to OUTPUT_STEP; older versions (mitmproxy 11 pins
    brotli <= 1.1) only allow slicing the input, which bounds a step to 8 MiB: the
    library's growing buffer peaks at about 21 MiB, plus the piece the consumer still holds.
    """
    bomb = brotli.compress(b"\0" * (100 * 2**20), quality=5)
    assert len(bomb) < 1000
    peak = peak_while_decoding("br", bomb, cap=10 * 2**20)
    limit = 2**20 if BROTLI_BOUNDED else 32 * 2**20
    assert peak < limit, f"peak {peak} bytes"


def test_deflate_bomb_with_small_cap() -> None:
    """A highly compressed 100 MB deflate body trips a 1 MB cap before 1.1 MB come out."""
    bomb = streamed_bomb(100 * 2**20, zlib.MAX_WBITS)
    decoder = Decoder.for_coding("deflate", max_output=2**20)
    seen = 0
    with pytest.raises(DecodedTooLarge):
        for chunk in chunks(bomb, 1000):
            for piece in decoder.iter_decode(chunk):
                seen += len(piece)
    assert seen <= 2**20 + OUTPUT_STEP


def test_a_body_exactly_at_the_cap_passes() -> None:
    """The cap is inclusive: a body of exactly max_output bytes decodes."""
    assert decode_in_chunks("gzip", gzip.compress(PAGE), 1000, cap=len(PAGE)) == PAGE
    with pytest.raises(DecodedTooLarge):
        decode_in_chunks("gzip", gzip.compress(PAGE), 1000, cap=len(PAGE) - 1)


def test_errors_carry_502_and_a_patron_safe_message() -> None:
    """Both body errors are ClamshellErrors the error boundary renders as 502."""
    for error in (DecodedTooLarge, DamagedBody):
        assert issubclass(error, ClamshellError)
        assert error.status_hint == 502
        assert "publisher" in error.public_message


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_damaged_input_raises_damaged_body(coding: str) -> None:
    """Bytes that are not in the named coding become DamagedBody, not a library error."""
    with pytest.raises(DamagedBody):
        decode_in_chunks(coding, b"\x1f\x8b\x08\x00this is not compressed at all" * 10, 50)


@pytest.mark.parametrize(
    ("header", "decodable"),
    [
        (None, True),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("br", True),
        ("deflate", True),
        ("gzip, br", True),
        ("identity", True),
        ("compress", False),
        ("gzip, compress", False),
        ("sdch", False),
    ],
)
def test_can_decode(header: str | None, decodable: bool) -> None:
    """Unknown codings are reported, so the relay passes such bodies through untouched."""
    assert can_decode(header) is decodable
    if not decodable:
        with pytest.raises(UnsupportedCoding):
            Decoder.for_coding(header, max_output=1)


def test_zstd_is_decodable_exactly_when_the_package_is_installed() -> None:
    """zstd support follows the optional zstandard package."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        assert "zstd" not in DECODERS
    else:
        assert "zstd" in DECODERS


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("gzip, deflate, br, zstd", "gzip"),
        ("br;q=0.5, gzip", "gzip"),
        ("gzip;q=0.8, br;q=0.8", "gzip"),
        ("gzip;q=0", "identity"),
        ("deflate", "identity"),
        ("zstd, gzip;q=0.9", "gzip"),
        ("*", "gzip"),
        ("br;q=0, *", "gzip"),
        ("*;q=0", "identity"),
        ("identity;q=0, gzip;q=0", "identity"),
        ("identity, gzip;q=0.5", "identity"),
        ("gzip;q=abc", "identity"),
        ("gzip; q=1.0 , br ; q=0.9", "gzip"),
    ],
)
def test_accept_encoding_choice(accept: str | None, chosen: str) -> None:
    """The highest q wins; gzip before br before identity on a tie; identity as the fallback."""
    assert choose_encoding(accept) == chosen
    encoder = Encoder.for_accept(accept)
    assert encoder.coding == (None if chosen == "identity" else chosen)


@pytest.mark.parametrize("coding", ["gzip", "br", "identity"])
def test_encoder_round_trip_and_flush_points(coding: str) -> None:
    """Each encode() output is decodable on its own prefix, and the whole stream round-trips."""
    encoder = Encoder(coding)
    decoder = Decoder.for_coding(encoder.coding, max_output=10**9)
    received = b""
    sent = 0
    for piece in chunks(PAGE, 10_000):
        encoded = encoder.encode(piece)
        assert encoded
        received += decoder.decode(encoded)
        sent += len(piece)
        assert received == PAGE[:sent]  # a flush point: everything sent so far decodes
    received += decoder.decode(encoder.flush()) + decoder.flush()
    assert received == PAGE
    assert encoder.encode(b"") == b""


def test_gzip_output_decodes_with_the_stdlib_at_every_flush_point() -> None:
    """#19: gzip is written by ISA-L (python-isal); an independent decoder (CPython's zlib,
    the same inflate browsers use) reads every prefix the encoder hands out, and the end."""
    encoder = Encoder("gzip")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    received, sent = b"", 0
    for piece in chunks(PAGE, 7_000):
        received += inflate.decompress(encoder.encode(piece))
        sent += len(piece)
        assert received == PAGE[:sent]
    received += inflate.decompress(encoder.flush()) + inflate.flush()
    assert received == PAGE and inflate.eof


def test_encoder_refuses_codings_it_cannot_write() -> None:
    """Only br, gzip and identity are written."""
    with pytest.raises(UnsupportedCoding):
        Encoder("deflate")
