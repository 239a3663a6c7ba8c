"""Review summary of the cookies a vendor set: names, scope, lifetime and flags, never values.

Contract: pure. ``cookies_set`` reads the Set-Cookie headers of one response into ``CookieSet``
values for the report; a value is kept only as a short sha256 prefix, to count changes. It reads
the attributes as sent, without RFC 6265's acceptance rules, so it reports what the vendor sent
rather than what a jar would keep.
Not here: RFC 6265 parsing and its acceptance rules (setcookie.py), the jar (cookiejar.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from proxy.core.review.observed import Header


@dataclass(frozen=True, slots=True)
class CookieSet:
    """One Set-Cookie as the vendor sent it (its value is not kept)."""

    name: str
    domain: str  # "" means host-only
    path: str
    lifetime: str  # "session", "max-age 3600 s", "expires <date>", "deleted"
    secure: bool
    httponly: bool
    samesite: str
    value_digest: str  # sha256 prefix: counts changes without keeping the value


def _attrs(parts: Sequence[str]) -> dict[str, str]:
    out = {}
    for part in parts:
        key, _, value = part.partition("=")
        out[key.strip().lower()] = value.strip()
    return out


def _lifetime(attrs: Mapping[str, str]) -> str:
    if "max-age" in attrs:
        seconds = attrs["max-age"]
        return (
            "deleted"
            if seconds.lstrip("-") == "0" or seconds.startswith("-")
            else f"max-age {seconds} s"
        )
    if "expires" in attrs:
        return f"expires {attrs['expires']}"
    return "session"


def cookies_set(response_headers: Sequence[Header]) -> list[CookieSet]:
    """Every Set-Cookie in a response: name, domain, lifetime, flags (RFC 6265 §5.2)."""
    out = []
    for name, value in response_headers:
        if name.lower() != "set-cookie":
            continue
        first, *rest = value.split(";")
        cookie_name, _, cookie_value = first.partition("=")
        attrs = _attrs(rest)
        digest = hashlib.sha256(cookie_value.strip().encode()).hexdigest()[:12]
        out.append(
            CookieSet(
                name=cookie_name.strip(),
                domain=attrs.get("domain", "").lstrip(".").lower(),
                path=attrs.get("path", ""),
                lifetime=_lifetime(attrs),
                secure="secure" in attrs,
                httponly="httponly" in attrs,
                samesite=attrs.get("samesite", ""),
                value_digest=digest,
            )
        )
    return out
