"""Review canaries: values that must never reach a vendor, and finding them in any text.

Contract: pure. ``Canaries`` holds the review card's values (and the client addresses and the
proxy's session tokens), each with the label a report shows instead of it; ``Canaries.redact``
replaces every value by its label. ``canary_places`` finds canaries in a text: short canaries
(< ``MIN_SUBSTRING`` characters) as whole tokens only, longer ones anywhere, raw and in
percent-encoded, base64 and hashed (md5/sha1/sha256 hex) forms.
Not here: which parts of a request are searched and what counts as a P1 failure
(identifying.py), rendering reports (proxy/review/report.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, quote_plus, unquote_plus

MIN_SUBSTRING: Final = 6  # shorter canaries (a 4-digit PIN) only match as whole tokens
B64_TOKEN: Final = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


@dataclass(frozen=True, slots=True)
class Canary:
    """A value that must never reach a vendor, and the label shown instead of it."""

    label: str
    value: str

    def forms(self) -> dict[str, str]:
        """Encoded forms a leak may take: form name -> needle (lowercase)."""
        raw = self.value
        data = raw.encode()
        out = {"percent-encoded": quote(raw, safe=""), "form-encoded": quote_plus(raw)}
        for name, algo in (
            ("md5", hashlib.md5),
            ("sha1", hashlib.sha1),
            ("sha256", hashlib.sha256),
        ):
            out[f"{name} hash"] = algo(data, usedforsecurity=False).hexdigest()
            if raw != raw.lower():  # hashed e-mail addresses are usually lowercased first
                lowered = algo(raw.lower().encode(), usedforsecurity=False).hexdigest()
                out[f"{name} hash (lowercased)"] = lowered
        return {k: v.lower() for k, v in out.items() if v.lower() != raw.lower()}


@dataclass(frozen=True, slots=True)
class Canaries:
    """The review card's values, the client addresses and the proxy's session cookie."""

    values: tuple[Canary, ...]
    session_cookie: str = "clamshell_session"
    proxy_host: str = ""

    @classmethod
    def build(
        cls,
        *,
        card: str,
        pin: str,
        name: str = "",
        email: str = "",
        client_ips: Iterable[str] = (),
        session_tokens: Iterable[str] = (),
        session_cookie: str = "clamshell_session",
        proxy_host: str = "",
    ) -> Canaries:
        """Canaries from a review card; empty values are skipped."""
        pairs = [("[card number]", card), ("[PIN]", pin), ("[name]", name), ("[email]", email)]
        surname = name.split()[-1] if name.split() else ""
        if len(surname) >= MIN_SUBSTRING and surname != name:
            pairs.append(("[surname]", surname))
        pairs += [("[client address]", ip) for ip in client_ips]
        pairs += [("[proxy session]", token) for token in session_tokens]
        found = tuple(Canary(label, value.strip()) for label, value in pairs if value.strip())
        return cls(found, session_cookie, proxy_host.lower())

    def redact(self, text: str) -> str:
        """``text`` with every canary value (any case) replaced by its label."""
        for canary in sorted(self.values, key=lambda c: -len(c.value)):
            pattern = re.escape(canary.value)
            if canary.value.isalpha():  # a name: whole words only, never part of other words
                pattern = rf"(?<![A-Za-z]){pattern}(?![A-Za-z])"
            text = re.sub(pattern, canary.label, text, flags=re.IGNORECASE)
        return text


def _contains(haystack: str, needle: str) -> bool:
    if len(needle) >= MIN_SUBSTRING:
        return needle in haystack
    return re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", haystack) is not None


def _b64_decoded(text: str) -> str:
    """Every base64-looking token of ``text`` decoded (standard or URL-safe), joined."""
    out = []
    for token in B64_TOKEN.findall(text):
        padded = token + "=" * (-len(token) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                out.append(decode(padded).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                continue
    return "\n".join(out).lower()


def canary_places(text: str, canaries: Canaries) -> list[tuple[str, str]]:
    """(label, form) for every canary in ``text``: raw, decoded or hashed."""
    lowered = text.lower()
    decoded = unquote_plus(lowered)
    b64 = _b64_decoded(text)
    hits: list[tuple[str, str]] = []
    for canary in canaries.values:
        needle = canary.value.lower()
        if _contains(lowered, needle):
            hits.append((canary.label, "raw"))
        elif _contains(decoded, needle):
            hits.append((canary.label, "percent-encoded"))
        elif b64 and _contains(b64, needle):
            hits.append((canary.label, "base64"))
        else:
            hits += [
                (canary.label, form)
                for form, v in canary.forms().items()
                if "hash" in form and v in lowered
            ]
    return hits
