"""The one Cookie header parser: table-driven."""

from __future__ import annotations

import pytest

from proxy.core.cookieheader import (
    CookiePair,
    parse_cookie_header,
    session_tokens,
    vendor_cookie_header,
)

S = "clamshell_session"
RESERVED = ("clamshell_session", "clamshell_csrf")


@pytest.mark.parametrize(
    ("headers", "pairs"),
    [
        ([""], ()),
        (["a=1"], (("a", "1"),)),
        (["a=1; b=2", "c=3"], (("a", "1"), ("b", "2"), ("c", "3"))),
        (["  a = 1 ;;b="], (("a", "1"), ("b", ""))),
        (["solo"], (("", "solo"),)),
        (['x="a; clamshell_session=T; y=b"'], (("x", '"a'), (S, "T"), ("y", 'b"'))),
        (["a=b=c"], (("a", "b=c"),)),
    ],
)
def test_pairs_split_as_browsers_build_the_header(
    headers: list[str], pairs: tuple[tuple[str, str], ...]
) -> None:
    """R2: pairs split on every ';' (quotes are ordinary octets, RFC 6265 §4.2.1)."""
    assert parse_cookie_header(headers) == tuple(CookiePair(*p) for p in pairs)


@pytest.mark.parametrize(
    ("header", "tokens"),
    [
        ("a=1", []),
        (f"{S}=T", ["T"]),
        (f'{S}="T"', ["T"]),
        (f"{S}=A; other=1; {S}=B", ["A", "B"]),
        (f'x="a; {S}=T; y=b"', ["T"]),
        (f"{S.upper()}=T", []),
    ],
)
def test_session_tokens_are_every_exact_name(header: str, tokens: list[str]) -> None:
    """R2/R7: every cookie with the session name counts (two mean a conflict)."""
    assert session_tokens(parse_cookie_header([header]), S) == tokens


@pytest.mark.parametrize(
    ("header", "forwarded"),
    [
        ("a=1; b=2", "a=1; b=2"),
        (f"{S}=T; a=1", "a=1"),
        (f'x="a; {S}=T; y=b"', 'x="a; y=b"'),
        ("x=clamshell_session; y=1", "y=1"),
        ("x=Clamshell_Session%3DT", None),
        ("clamshell_csrf=z", None),
        ("my_clamshell_session_copy=1; k=v", "k=v"),
        ("solo; a=1", "solo; a=1"),
    ],
)
def test_vendor_never_gets_a_reserved_name(header: str, forwarded: str | None) -> None:
    """R2: a cookie whose name or value holds a reserved name never reaches a pass vendor."""
    assert vendor_cookie_header(parse_cookie_header([header]), RESERVED) == forwarded
