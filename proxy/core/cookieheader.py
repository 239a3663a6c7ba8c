"""The one parser of a request's Cookie header, for the session token and for what a vendor gets.

Contract: ``parse_cookie_header(value)`` splits a Cookie header the way browsers build it
(RFC 6265 §4.2.1: ``name=value`` pairs joined by ``;``; a cookie-value never holds ``;``, a
double quote is an ordinary octet of the value): one ``CookiePair`` per ``;``-separated
piece, name and value stripped, quotes kept. ``session_tokens`` and ``vendor_cookie_header``
read that same list, so the proxy cannot find a token that the forwarding filter misses
(two parsers that disagree are a bypass: ``request.cookies`` honours quotes and so saw
``x="a; clamshell_session=T; y=b"`` as one harmless cookie named ``x``).
Pure: strings in, strings out.
Not here: the cookie's name and attributes (web/session_cookie.py), Set-Cookie (setcookie.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

# A browser-built Cookie header is tiny; a pathological one is cut rather than split forever
# (aiohttp's own header size limit is 8190 bytes per line, this only bounds the work).
MAX_PAIRS: Final = 300


class CookiePair(NamedTuple):
    """One ``name=value`` piece of a Cookie header, as sent (value quotes kept)."""

    name: str
    value: str


def parse_cookie_header(headers: Iterable[str]) -> tuple[CookiePair, ...]:
    """Every pair of every Cookie header, in order; a piece without ``=`` has an empty name
    (RFC 6265bis §5.6: a nameless cookie), an empty piece is skipped."""
    pairs: list[CookiePair] = []
    for header in headers:
        for piece in header.split(";", MAX_PAIRS):
            name, sep, value = piece.partition("=")
            if not sep:
                name, value = "", name
            name, value = name.strip(), value.strip()
            if name or value:
                pairs.append(CookiePair(name, value))
    return tuple(pairs[:MAX_PAIRS])


def session_tokens(pairs: Sequence[CookiePair], name: str) -> list[str]:
    """The values of every cookie called ``name`` (a quoted value unquoted), in order.

    More than one means someone else set one (cookie tossing from a sibling host): the caller
    must treat that as no session, never pick one.
    """
    tokens = []
    for pair in pairs:
        if pair.name == name:
            value = pair.value
            tokens.append(value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value)
    return tokens


def vendor_cookie_header(pairs: Sequence[CookiePair], reserved: Iterable[str]) -> str | None:
    """The Cookie header a ``cookies: pass`` vendor gets: every pair whose name and value both
    hold no reserved cookie name (case-insensitive), or None when none is left."""
    marks = tuple(r.lower() for r in reserved)
    kept = [
        f"{name}={value}" if name else value
        for name, value in pairs
        if not any(mark in name.lower() or mark in value.lower() for mark in marks)
    ]
    return "; ".join(kept) or None
