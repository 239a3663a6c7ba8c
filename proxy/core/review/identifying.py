"""P1 review detectors: what in an upstream request identifies or fingerprints the patron.

Contract: pure functions over ``ObservedRequest`` values. ``identifying_data`` returns the P1
failures of one request (a canary in any form, an identifying header, the proxy's session
cookie, a Referer/Origin naming the proxy host); ``header_names``, ``varying_headers`` and
``fingerprint_surface`` summarise the headers vendors received, for the report.
Not here: the canaries and how they are matched (canaries.py), pseudonyms (P2,
pseudonyms.py), the header allow-list itself (core/headers.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit

from proxy.core.headers import (
    ALLOWED_REQUEST_HEADERS,
    BODY_FRAMING,
    CLIENT_HINT_PREFIX,
    IDENTIFYING_REQUEST_HEADERS,
)
from proxy.core.review.canaries import Canaries, canary_places
from proxy.core.review.observed import Finding, Header, ObservedRequest, request_parts

# Identifying header names whose mere presence fails P1 (DESIGN P1). Cookie is judged by its
# content instead: the vendor's own server-side jar legitimately sends one.
IDENTIFYING_NAMES: Final = IDENTIFYING_REQUEST_HEADERS - {"cookie"}
# What the relay itself sends beside the allow-list: framing is the pool's, not the browser's.
KNOWN_REQUEST_HEADERS: Final = (
    ALLOWED_REQUEST_HEADERS
    | BODY_FRAMING
    | {
        "host",
        "cookie",
        "referer",
        "origin",
    }
)
# Headers that describe the browser rather than the request: the fingerprinting surface.
FINGERPRINT_HEADERS: Final = frozenset(
    {"user-agent", "accept", "accept-language", "accept-encoding", "dnt", "sec-gpc"}
)


# ------------------------------------------------------------------ P1: identifying data


def identifying_data(request: ObservedRequest, canaries: Canaries) -> list[Finding]:
    """P1 failures in one upstream request: canaries, identifying headers, the proxy itself."""
    host = request.host
    found = [
        Finding("P1", f"identifying header {name} sent", f"header {name}", host)
        for name, _ in request.headers
        if name.lower() in IDENTIFYING_NAMES or name.lower().startswith(CLIENT_HINT_PREFIX)
    ]
    for where, text in request_parts(request):
        for label, form in canary_places(text, canaries):
            found.append(Finding("P1", f"{label} sent ({form})", where, host))
    for cookie in request.values("cookie"):
        names = [part.split("=", 1)[0].strip().lower() for part in cookie.split(";")]
        if canaries.session_cookie.lower() in names:
            found.append(Finding("P1", "the proxy's session cookie sent", "header Cookie", host))
    found += _proxy_named(request, canaries)
    return found


def _proxy_named(request: ObservedRequest, canaries: Canaries) -> list[Finding]:
    """Referer/Origin naming the proxy host (they must be translated or dropped)."""
    if not canaries.proxy_host:
        return []
    return [
        Finding("P1", f"{name} names the proxy host", f"header {name}", request.host)
        for name, value in request.headers
        if name.lower() in ("referer", "origin")
        and (urlsplit(value).hostname or "").endswith(canaries.proxy_host)
    ]


# ------------------------------------------------------------------ headers


def header_names(requests: Iterable[ObservedRequest]) -> dict[str, int]:
    """Lowercase header name -> how many requests carried it, most frequent first."""
    counts = Counter(name.lower() for r in requests for name in {n.lower() for n, _ in r.headers})
    return dict(counts.most_common())


def varying_headers(flows_by_session: Mapping[str, Sequence[ObservedRequest]]) -> list[str]:
    """Header names whose values differ between sessions (or patrons): potential identifiers.

    A header varies when the sets of values two sessions sent for it are not the same.
    """
    if len(flows_by_session) < 2:
        return []
    per_session: list[dict[str, frozenset[str]]] = []
    for requests in flows_by_session.values():
        seen: dict[str, set[str]] = defaultdict(set)
        for request in requests:
            for name, value in request.headers:
                seen[name.lower()].add(value)
        per_session.append({k: frozenset(v) for k, v in seen.items()})
    names = {name for session in per_session for name in session}
    return sorted(n for n in names if len({s.get(n, frozenset()) for s in per_session}) > 1)


def fingerprint_surface(headers: Sequence[Header]) -> dict[str, str]:
    """Headers that describe the browser (or go beyond the default allow-list): name -> value."""
    return {
        name.lower(): value
        for name, value in headers
        if name.lower() in FINGERPRINT_HEADERS
        or name.lower().startswith(CLIENT_HINT_PREFIX)
        or name.lower() not in KNOWN_REQUEST_HEADERS
    }
