"""WCAG 2.x colour contrast, for checking a library's brand colours before they are used.

Contract: ``contrast_ratio("#0b4f8a", "#ffffff")`` is the WCAG 2.2 ratio (1.0–21.0) between two
``#rrggbb`` / ``#rgb`` colours; ``parse_hex`` raises ValueError on anything else.
Not here: which pairs must pass (web/brand.py), CSS.
Hand-written (a dozen lines of the published formula) rather than a dependency.
"""

from __future__ import annotations

import re
from typing import Final

HEX_COLOUR: Final = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
AA_NORMAL_TEXT: Final = 4.5  # WCAG 2.2 SC 1.4.3 (contrast minimum, normal text)


def parse_hex(colour: str) -> tuple[int, int, int]:
    """``#rgb`` or ``#rrggbb`` → (r, g, b) in 0–255."""
    if not HEX_COLOUR.match(colour):
        raise ValueError(f"not a colour like '#0b4f8a': {colour!r}")
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4  # sRGB → linear


def relative_luminance(colour: str) -> float:
    """WCAG 2.2 relative luminance (0 black … 1 white)."""
    r, g, b = (_channel(v) for v in parse_hex(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """(L1 + 0.05) / (L2 + 0.05) with L1 the lighter colour."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
