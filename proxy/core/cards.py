"""Library card numbers and login secrets: normalization, check digits, which library.

Contract: pure string functions (stdlib only, no I/O). ``normalize_barcode`` and
``normalize_secret`` turn what a person typed or an ILS exported into the canonical form
that is hashed and compared; ``barcode_problem`` explains in words why a normalized barcode
cannot belong to a library (``None`` when it can); ``library_for_barcode`` picks the member
library by prefix; ``make_check_digit`` creates valid cards for tests and the demo.
Messages never repeat the barcode, so they are safe to print and to log.
Not here: hashing (core/keyedhash.py), storage (stores/patrons.py), whether a card may log
in (core/login.py).

Check-digit schemes (``CHECK_DIGITS``), both "mod 10" with the check digit last:

* ``luhn`` — from the rightmost body digit leftwards, double every other digit starting with
  that one, subtract 9 from products over 9, sum; check = (10 - sum mod 10) mod 10.
  This is also the classic 14-digit library Codabar check digit (Dynix/Ameritech, JerseyCat,
  NC Cardinal "Mod 10 L-to-R 2-1-2"): weights 2,1,2,… from the *left* over 13 body digits
  double the same positions as Luhn does. Known answers: ``3 3191 00010586 4`` (Dynix manual
  example), ``3 0234 00051786 1`` (JerseyCat FAQ), ``79927398713`` (the textbook Luhn number).
  Note: for an even-length body (odd total length) the left-anchored 2-1 variant and Luhn
  differ; ``luhn`` here is always right-anchored.
* ``mod10_weighted_31`` — "weighted 3-1" mod 10, the arithmetic of GS1 UPC/EAN: from the
  rightmost body digit leftwards, weights 3,1,3,1,… (the digit next to the check digit gets
  3), products summed as they are (no digit summing); check = (10 - sum mod 10) mod 10.
  Known answers: UPC-A ``036000241457`` (check 7) and EAN-13 ``4006381333931`` (check 1).
  Beware: ILS manuals that say "Codabar mod 10" for 14-digit cards mostly mean the 2-1
  scheme above (``luhn``), not this one; check a few real cards before choosing.
* ``none`` — no check digit; every digit is part of the number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal, Protocol, TypeVar

CheckScheme = Literal["luhn", "mod10_weighted_31", "none"]
LoginWith = Literal["pin", "last_name"]

BARCODE_SEPARATORS: Final = str.maketrans("", "", " \t-")  # what ILS exports and people type
LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # 2*d with its digits summed
NOT_ASCII_ALNUM: Final = re.compile(r"[^a-z0-9]+")


class CardRules(Protocol):
    """What cards.py needs of a member library (``settings.Library`` fits)."""

    @property
    def code(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def length(self) -> int: ...
    @property
    def check_digit(self) -> CheckScheme: ...


LibraryT = TypeVar("LibraryT", bound=CardRules)


def normalize_barcode(raw: str) -> str:
    """Remove spaces, tabs and dashes: ``' 2123-4000 0000 18 '`` → ``'21234000000018'``."""
    return raw.strip().translate(BARCODE_SEPARATORS)


def _luhn(body: str) -> str:
    doubled = sum(LUHN_DOUBLED[d] for d in map(int, body[-1::-2]))  # rightmost body digit first
    return str(-(doubled + sum(map(int, body[-2::-2]))) % 10)


def _weighted_31(body: str) -> str:
    total = 3 * sum(map(int, body[-1::-2])) + sum(map(int, body[-2::-2]))
    return str(-total % 10)


def _no_check_digit(_body: str) -> str:
    return ""


# scheme -> the check digit for a body of ASCII digits ("" for none: nothing is appended)
CHECK_DIGITS: Final[Mapping[CheckScheme, Callable[[str], str]]] = {
    "luhn": _luhn,
    "mod10_weighted_31": _weighted_31,
    "none": _no_check_digit,
}


def is_ascii_digits(value: str) -> bool:
    """True for a non-empty string of 0-9 only (``str.isdigit`` also accepts '²' and '٣')."""
    return value.isascii() and value.isdigit()


def make_check_digit(body: str, scheme: CheckScheme) -> str:
    """The check digit to append to ``body``; ``''`` for ``none`` (the body is the card).

    Raises:
        ValueError: ``body`` is not ASCII digits.
    """
    if not is_ascii_digits(body):
        raise ValueError("a barcode body must be ASCII digits")
    return CHECK_DIGITS[scheme](body)


def check_digit_ok(barcode: str, scheme: CheckScheme) -> bool:
    """Whether the last digit of a digits-only ``barcode`` is right for ``scheme``."""
    if scheme == "none":
        return True
    return len(barcode) >= 2 and CHECK_DIGITS[scheme](barcode[:-1]) == barcode[-1]


def barcode_problem(barcode: str, library: CardRules) -> str | None:
    """Why a normalized ``barcode`` cannot be a card of ``library``, or None if it can."""
    if not barcode:
        return "barcode is empty"
    if not is_ascii_digits(barcode):
        return "barcode must contain only digits (spaces and dashes are ignored)"
    if len(barcode) != library.length:
        return f"barcode has {len(barcode)} digits; {library.code} cards have {library.length}"
    if not barcode.startswith(library.prefix):
        return f"barcode does not start with {library.code}'s prefix {library.prefix}"
    if not check_digit_ok(barcode, library.check_digit):
        return f"check digit is wrong ({library.code} uses {library.check_digit})"
    return None


def library_for_barcode(barcode: str, libraries: Iterable[LibraryT]) -> LibraryT | None:
    """The library whose prefix starts ``barcode``: the longest prefix wins.

    Between equal prefixes, a library whose card length fits wins; then config order.
    An empty prefix matches every barcode, so such a library is the fallback.
    """
    best: LibraryT | None = None
    best_key = (-1, False)
    for library in libraries:
        if barcode.startswith(library.prefix):
            key = (len(library.prefix), len(barcode) == library.length)
            if key > best_key:
                best, best_key = library, key
    return best


def normalize_secret(value: str, login_with: LoginWith) -> str:
    """The canonical form of a PIN or last name, as hashed at import and compared at login.

    A PIN only loses surrounding whitespace (case and inner characters matter).
    A last name is compared the way staff would read it: case-folded, accents removed
    (NFKD, then combining marks dropped), and every character that is not a letter or digit
    dropped, so spaces, hyphens, apostrophes and dots do not matter:
    ``"O'Brien-Smith"``, ``"obrien smith"`` and ``"O’BRIEN SMITH"`` are all ``obriensmith``;
    ``"Müller"`` and ``"Muller"`` are ``muller``; ``"Straße"`` is ``strasse``.
    """
    if login_with == "pin":
        return value.strip()
    if value.isascii():  # fast path: NFKD changes nothing and there are no combining marks
        return NOT_ASCII_ALNUM.sub("", value.lower())
    # NFKD both before casefold ("℃" hides a "C") and after it ("İ" folds to "i" + a mark).
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", value).casefold())
    return "".join(c for c in folded if c.isalnum() and not unicodedata.combining(c))
