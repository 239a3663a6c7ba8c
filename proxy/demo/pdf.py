"""Deterministic ~3 MB article PDFs for the demo cdn host.

Contract: `pdf_bytes(n)` returns the same bytes for the same `n` on every call, in every process
and on every machine: a one-page PDF 1.7 whose figure is a 2000x1500 grey-noise image drawn from
SHAKE-256 (a fixed, specified function, unlike `random`, whose algorithm may change between
Python versions). The xref offsets are exact, so PDF readers open it without repair.

Not here: serving (Content-Type, Range, 206) lives in `proxy.demo.vendor`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Final

from proxy.demo.pages import article_title

FIGURE_WIDTH: Final = 2000
FIGURE_HEIGHT: Final = 1500  # 8-bit grey, uncompressed: exactly 3,000,000 bytes of stream data
HEADER: Final = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"  # binary comment marks the file as binary


def noise(n: int, size: int) -> bytes:
    """`size` reproducible pseudo-random bytes for article `n`."""
    return hashlib.shake_256(f"clamshell-demo-pdf-{n}".encode()).digest(size)


def _pdf_text(text: str) -> bytes:
    """A PDF literal string, `(…)` with the three special characters escaped."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1", "replace") + b")"


def _stream(dictionary: bytes, data: bytes) -> bytes:
    """A stream object body with its exact /Length."""
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _objects(n: int) -> list[bytes]:
    """The bodies of objects 1..6, in order."""
    content = (
        b"BT /F1 18 Tf 72 740 Td " + _pdf_text(article_title(n)) + b" Tj ET\n"
        b"BT /F1 11 Tf 72 720 Td "
        + _pdf_text(f"Acme Journal Archive - article {n}")
        + b" Tj ET\nq 468 351 0 0 72 330 cm /Fig1 Do Q\n"
    )
    image_dict = (
        b"/Type /XObject /Subtype /Image /Width %d /Height %d"
        b" /ColorSpace /DeviceGray /BitsPerComponent 8" % (FIGURE_WIDTH, FIGURE_HEIGHT)
    )
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
        b" /Resources << /Font << /F1 4 0 R >> /XObject << /Fig1 6 0 R >> >> >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
        _stream(b"", content),
        _stream(image_dict, noise(n, FIGURE_WIDTH * FIGURE_HEIGHT)),
    ]


def build_pdf(n: int) -> bytes:
    """Assemble article `n`'s PDF: header, numbered objects, xref table, trailer."""
    out = bytearray(HEADER)
    offsets: list[int] = []
    for number, body in enumerate(_objects(n), start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(offsets) + 1,
        xref_at,
    )
    return bytes(out)


@lru_cache(maxsize=4)  # 3 MB each; a benchmark hammers one or two articles
def pdf_bytes(n: int) -> bytes:
    """The stable bytes of article `n`'s PDF (cached)."""
    return build_pdf(n)
