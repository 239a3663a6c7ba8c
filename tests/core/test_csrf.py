"""CSRF tokens and the cross-site test."""

from __future__ import annotations

import pytest

from proxy.core import csrf

KEY = b"k" * 32


def test_token_round_trip() -> None:
    """A token issued for a nonce verifies with that nonce's cookie."""
    assert csrf.verify(KEY, "n0nce", csrf.issue(KEY, "n0nce"))


@pytest.mark.parametrize(
    ("cookie", "token"),
    [
        (None, csrf.issue(KEY, "a")),
        ("a", None),
        ("b", csrf.issue(KEY, "a")),
        ("a", csrf.issue(b"other" * 8, "a")),
        ("a", "a.forged"),
        ("a", "a"),
        ("é", "é.x"),
    ],
)
def test_bad_tokens_fail(cookie: str | None, token: str | None) -> None:
    """Missing, mismatched, foreign-key and forged tokens fail."""
    assert not csrf.verify(KEY, cookie, token)


@pytest.mark.parametrize(
    ("origin", "site", "cross"),
    [
        (None, None, False),
        ("http://p.test", None, False),
        ("http://p.test", "same-origin", False),
        (None, "none", False),
        ("http://www-x-org.p.test", "same-site", True),
        ("https://evil.com", "cross-site", True),
        ("null", None, True),
        ("http://www-x-org.p.test", None, True),
    ],
)
def test_cross_site(origin: str | None, site: str | None, cross: bool) -> None:
    """Posts from vendor pages on sibling hosts and other sites are cross-site."""
    assert csrf.is_cross_site(origin, site, "http://p.test") is cross
