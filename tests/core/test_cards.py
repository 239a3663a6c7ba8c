"""Tests for proxy.core.cards: normalization, check digits, library by prefix."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.cards import (
    CheckScheme,
    LoginWith,
    barcode_problem,
    check_digit_ok,
    library_for_barcode,
    make_check_digit,
    normalize_barcode,
    normalize_secret,
)
from proxy.core.settings import Library

MAIN = Library(code="MAIN", name="Main", prefix="21234", length=14, check_digit="luhn")
WEST = Library(code="WEST", name="West", prefix="29876", length=14, check_digit="mod10_weighted_31")
BRANCH = Library(code="BRANCH", name="Branch", prefix="212345", length=14, check_digit="luhn")
SHORT = Library(code="SHORT", name="Short", prefix="21234", length=10, check_digit="none")
ANY = Library(code="ANY", name="Anything", prefix="", length=8, check_digit="none")

# --- check digits: known answers from published sources ------------------------------

KNOWN_ANSWERS: list[tuple[CheckScheme, str, str]] = [
    ("luhn", "3319100010586", "4"),  # Dynix manual: 3 3191 00010586 4
    ("luhn", "3023400051786", "1"),  # JerseyCat barcode FAQ
    ("luhn", "2111200069813", "2"),  # CalAcademy patron barcode (koha-devel, 2002)
    ("luhn", "7992739871", "3"),  # the textbook Luhn example
    ("luhn", "0", "0"),
    ("mod10_weighted_31", "03600024145", "7"),  # UPC-A 036000241457
    ("mod10_weighted_31", "400638133393", "1"),  # EAN-13 4006381333931
    ("mod10_weighted_31", "2987600000001", "3"),
    ("none", "21234000000018", ""),
]


@pytest.mark.parametrize(("scheme", "body", "digit"), KNOWN_ANSWERS)
def test_check_digit_known_answers(scheme: CheckScheme, body: str, digit: str) -> None:
    """Each scheme gives the published check digit, and accepts the completed number."""
    assert make_check_digit(body, scheme) == digit
    assert check_digit_ok(body + digit, scheme)


@pytest.mark.parametrize("scheme", ["luhn", "mod10_weighted_31"])
@given(body=st.text("0123456789", min_size=1, max_size=20), data=st.data())
def test_any_single_digit_error_is_caught(
    scheme: CheckScheme, body: str, data: st.DataObject
) -> None:
    """Changing any one digit of a valid number makes the check digit wrong."""
    valid = body + make_check_digit(body, scheme)
    where = data.draw(st.integers(0, len(valid) - 1))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != valid[where]]))
    assert not check_digit_ok(valid[:where] + digit + valid[where + 1 :], scheme)


@pytest.mark.parametrize(
    ("scheme", "blind_spot"),
    [
        ("luhn", lambda a, b: {a, b} == {0, 9}),  # Luhn misses only 09 <-> 90
        ("mod10_weighted_31", lambda a, b: abs(a - b) == 5),  # 3a+b = 3b+a (mod 10)
    ],
)
def test_adjacent_swaps_are_caught_except_known_blind_spots(
    scheme: CheckScheme, blind_spot: Callable[[int, int], bool]
) -> None:
    """Swapping two neighbouring digits is caught unless it is the scheme's known blind spot."""
    for a, b in itertools.permutations(range(10), 2):
        body, swapped = f"2123400000{a}{b}", f"2123400000{b}{a}"
        same = make_check_digit(body, scheme) == make_check_digit(swapped, scheme)
        assert same == blind_spot(a, b), (a, b)


def test_make_check_digit_refuses_non_digits() -> None:
    """A body with anything but ASCII digits is a programming error."""
    for body in ("", "12a4", "١٢٣", "12 34"):
        with pytest.raises(ValueError, match="ASCII digits"):
            make_check_digit(body, "luhn")


# --- normalization ---------------------------------------------------------------------

BARCODES = [
    ("21234000000018", "21234000000018"),
    (" 2123-4000 0000 18 ", "21234000000018"),
    ("\t21234-00000001-8\n", "21234000000018"),
    ("", ""),
    ("  ", ""),
    ("2123x", "2123x"),  # letters stay, so validation can reject them
]


@pytest.mark.parametrize(("raw", "normalized"), BARCODES)
def test_normalize_barcode(raw: str, normalized: str) -> None:
    """Spaces, tabs and dashes go; everything else stays for validation to judge."""
    assert normalize_barcode(raw) == normalized


SECRETS: list[tuple[LoginWith, str, str]] = [
    ("pin", " 1234 ", "1234"),
    ("pin", "AbC-1", "AbC-1"),  # a PIN keeps case and inner characters
    ("last_name", "O'Brien-Smith", "obriensmith"),
    ("last_name", "  o’brien   SMITH ", "obriensmith"),
    ("last_name", "Müller", "muller"),
    ("last_name", "MULLER", "muller"),
    ("last_name", "Straße", "strasse"),
    ("last_name", "Nguyễn", "nguyen"),
    ("last_name", "García Lorca", "garcialorca"),
    ("last_name", "St. John", "stjohn"),
    ("last_name", "Ｗｉｄｅ", "wide"),  # fullwidth letters fold (NFKD)
    ("last_name", "İnönü", "inonu"),
    ("last_name", "℃", "c"),  # a compatibility character hiding a capital
    ("last_name", " - ' ", ""),
]


@pytest.mark.parametrize(("login_with", "raw", "normalized"), SECRETS)
def test_normalize_secret(login_with: LoginWith, raw: str, normalized: str) -> None:
    """PINs are only stripped; last names fold case, accents and punctuation."""
    assert normalize_secret(raw, login_with) == normalized


@settings(max_examples=1000)
@given(st.text(max_size=30))
def test_normalize_secret_is_idempotent(raw: str) -> None:
    """Normalizing twice changes nothing (import and login may both normalize)."""
    once = normalize_secret(raw, "last_name")
    assert normalize_secret(once, "last_name") == once


# --- barcode problems: every rejection reason -------------------------------------------

PROBLEMS = [
    ("", MAIN, "barcode is empty"),
    ("2123400000001x", MAIN, "barcode must contain only digits"),
    ("２１２３４０００００００１８", MAIN, "barcode must contain only digits"),  # fullwidth
    ("2123400000001", MAIN, "barcode has 13 digits; MAIN cards have 14"),
    ("212340000000180", MAIN, "barcode has 15 digits; MAIN cards have 14"),
    ("29876000000018", MAIN, "barcode does not start with MAIN's prefix 21234"),
    ("21234000000019", MAIN, "check digit is wrong (MAIN uses luhn)"),
    ("29876000000014", WEST, "check digit is wrong (WEST uses mod10_weighted_31)"),
]


@pytest.mark.parametrize(("barcode", "library", "reason"), PROBLEMS)
def test_barcode_problem_reasons(barcode: str, library: Library, reason: str) -> None:
    """Each way a barcode can be wrong has its own reason, which never repeats the barcode."""
    problem = barcode_problem(barcode, library)
    assert problem is not None and problem.startswith(reason)
    if barcode:
        assert barcode not in problem


@pytest.mark.parametrize(
    ("barcode", "library"),
    [("21234000000018", MAIN), ("29876000000013", WEST), ("2123499999", SHORT)],
)
def test_valid_barcodes_have_no_problem(barcode: str, library: Library) -> None:
    """A number with the right prefix, length and check digit is accepted."""
    assert barcode_problem(barcode, library) is None


# --- which library ------------------------------------------------------------------------

OWNERS = [
    ("21234000000018", [MAIN, WEST], MAIN),
    ("29876000000013", [MAIN, WEST], WEST),
    ("21234500000013", [MAIN, BRANCH], BRANCH),  # longest prefix wins ...
    ("21234500000013", [BRANCH, MAIN], BRANCH),  # ... whatever the config order
    ("2123499999", [MAIN, SHORT], SHORT),  # equal prefixes: the fitting length wins
    ("21234000000018", [SHORT, MAIN], MAIN),
    ("99999999", [MAIN, ANY], ANY),  # an empty prefix is the fallback
    ("21234000000018", [ANY, MAIN], MAIN),
    ("99999999", [MAIN, WEST], None),
]


@pytest.mark.parametrize(("barcode", "libraries", "owner"), OWNERS)
def test_library_for_barcode(barcode: str, libraries: list[Library], owner: Library | None) -> None:
    """The library is chosen by the longest matching prefix."""
    assert library_for_barcode(barcode, libraries) is owner
