"""Vendor review detectors: what a vendor received, what it set, whom its pages call.

Contract: pure functions over plain values (``ObservedRequest``/``ObservedFlow`` built by the
mitmproxy addon or from a saved capture) that return findings and summaries. The review
addon and ``review --analyze`` both call exactly these, so a live review and a re-analysis
cannot disagree. Findings never carry a canary's value: they name it by its label
("[card number]"), and ``Canaries.redact`` is applied to every string shown in a report.
Short canaries (< ``MIN_SUBSTRING`` characters) are matched as whole tokens only, longer ones
anywhere, raw and in percent-encoded, base64 and hashed (md5/sha1/sha256 hex) forms.
Not here: mitmproxy types (proxy/review/addon.py), rendering reports (proxy/review/report.py),
the tracker list itself (core/trackers.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit

from proxy.core.headers import (
    ALLOWED_REQUEST_HEADERS,
    CLIENT_HINT_PREFIX,
    IDENTIFYING_REQUEST_HEADERS,
)
from proxy.core.ruleset import RuleIndex
from proxy.core.trackers import Tracker, tracker_for

Header = tuple[str, str]
Invariant = Literal["P1", "P2", "P6"]

MIN_SUBSTRING: Final = 6  # shorter canaries (a 4-digit PIN) only match as whole tokens
# Identifying header names whose mere presence fails P1 (DESIGN P1). Cookie is judged by its
# content instead: the vendor's own server-side jar legitimately sends one.
IDENTIFYING_NAMES: Final = IDENTIFYING_REQUEST_HEADERS - {"cookie"}
# Headers that describe the browser rather than the request: the fingerprinting surface.
FINGERPRINT_HEADERS: Final = frozenset(
    {"user-agent", "accept", "accept-language", "accept-encoding", "dnt", "sec-gpc"}
)
B64_TOKEN: Final = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
# Tags whose URL attributes the browser fetches on its own (HTML §4.8, §4.12, §4.2.4).
FETCHING_TAG: Final = re.compile(
    r"<(script|img|iframe|frame|source|embed|video|audio|track|input|link|object)\b([^>]*)>",
    re.IGNORECASE,
)
URL_ATTR: Final = re.compile(
    r"\b(src|href|data|srcset|poster)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.IGNORECASE
)
REL_ATTR: Final = re.compile(r"\brel\s*=\s*[\"']?([^\"'>]*)", re.IGNORECASE)
# link rel values that make the browser fetch or connect (HTML §4.6.7).
FETCHING_RELS: Final = frozenset(
    {"stylesheet", "icon", "preload", "prefetch", "preconnect", "dns-prefetch", "modulepreload"}
)
INLINE_SCRIPT: Final = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
SCRIPT_URL: Final = re.compile(r"https?://([A-Za-z0-9.-]+)", re.IGNORECASE)
DATA_SCRIPT: Final = re.compile(r"type\s*=\s*[\"']?application/(ld\+)?json", re.IGNORECASE)


# ------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class ObservedRequest:
    """One upstream request as the vendor received it."""

    method: str
    host: str  # from the Host header, lowercase, no port
    path: str
    query: str
    headers: tuple[Header, ...]
    body: bytes = b""

    def values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive)."""
        lower = name.lower()
        return [v for n, v in self.headers if n.lower() == lower]


@dataclass(frozen=True, slots=True)
class ObservedFlow:
    """A request and what the vendor answered (HTML kept only as a bounded prefix)."""

    request: ObservedRequest
    status: int | None = None
    response_headers: tuple[Header, ...] = ()
    content_type: str = ""
    html: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """A failure of an invariant; ``what`` and ``where`` never hold a canary's value."""

    invariant: Invariant
    what: str
    where: str
    host: str


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


# ------------------------------------------------------------------ P1: identifying data


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


def _request_parts(request: ObservedRequest) -> list[tuple[str, str]]:
    parts = [(f"header {name}", value) for name, value in request.headers]
    parts += [("path", request.path), ("query", request.query)]
    if request.body:
        parts.append(("body", request.body.decode("utf-8", "replace")))
    return parts


def identifying_data(request: ObservedRequest, canaries: Canaries) -> list[Finding]:
    """P1 failures in one upstream request: canaries, identifying headers, the proxy itself."""
    host = request.host
    found = [
        Finding("P1", f"identifying header {name} sent", f"header {name}", host)
        for name, _ in request.headers
        if name.lower() in IDENTIFYING_NAMES or name.lower().startswith(CLIENT_HINT_PREFIX)
    ]
    for where, text in _request_parts(request):
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
        or name.lower() not in ALLOWED_REQUEST_HEADERS | {"host", "cookie", "referer", "origin"}
    }


# ------------------------------------------------------------------ P2: pseudonyms


@dataclass(frozen=True, slots=True)
class PseudonymUse:
    """How one vendor received its pseudonym (values are counted, never listed)."""

    vendor: str
    header: str | None
    requests_with: int
    requests_without: int
    distinct_values: int


def _pseudonym_headers(index: RuleIndex) -> dict[str, str]:
    """Lowercase pseudonym header -> vendor id, for every rule that has one."""
    return {r.pseudonym.header.lower(): r.id for r in index.rules if r.pseudonym is not None}


def pseudonym_values(
    requests: Iterable[ObservedRequest], index: RuleIndex
) -> dict[str, dict[str, int]]:
    """Vendor id -> {pseudonym value -> requests carrying it in the vendor's own header}."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for request in requests:
        rule = index.rule_for(request.host)
        if rule is None or rule.pseudonym is None:
            continue
        for value in request.values(rule.pseudonym.header):
            out[rule.id][value] = out[rule.id].get(value, 0) + 1
    return dict(out)


def pseudonym_check(
    requests: Sequence[ObservedRequest], index: RuleIndex
) -> tuple[list[PseudonymUse], list[Finding]]:
    """P2: each vendor gets its pseudonym only in its own header, unlinkable to others'."""
    values = pseudonym_values(requests, index)
    owners: dict[str, set[str]] = defaultdict(set)
    for vendor, seen in values.items():
        for value in seen:
            owners[value].add(vendor)
    findings = [
        Finding("P2", f"one pseudonym value sent to {len(vendors)} vendors", "pseudonym", "")
        for vendors in owners.values()
        if len(vendors) > 1
    ]
    for request in requests:
        findings += _misplaced_pseudonyms(request, index, owners)
    return _uses(requests, index, values), findings


def _misplaced_pseudonyms(
    request: ObservedRequest, index: RuleIndex, owners: Mapping[str, set[str]]
) -> list[Finding]:
    rule = index.rule_for(request.host)
    own_vendor = rule.id if rule is not None else ""
    own_header = rule.pseudonym.header.lower() if rule and rule.pseudonym else None
    found = [
        Finding("P2", f"vendor {vendor!r}'s pseudonym header sent", f"header {name}", request.host)
        for name, vendor in _pseudonym_headers(index).items()
        if vendor != own_vendor and request.values(name)
    ]
    for where, text in _request_parts(request):
        if own_header and where.lower() == f"header {own_header}":
            continue
        for value, vendors in owners.items():
            if value and value in text:
                whose = "its own" if vendors == {own_vendor} else "another vendor's"
                found.append(
                    Finding("P2", f"{whose} pseudonym outside its header", where, request.host)
                )
    return found


def _uses(
    requests: Sequence[ObservedRequest], index: RuleIndex, values: Mapping[str, Mapping[str, int]]
) -> list[PseudonymUse]:
    totals = Counter(rule.id for r in requests if (rule := index.rule_for(r.host)) is not None)
    out = []
    for vendor, total in sorted(totals.items()):
        rule = index.by_id[vendor]
        header = rule.pseudonym.header if rule.pseudonym is not None else None
        carrying = sum(values.get(vendor, {}).values())
        out.append(
            PseudonymUse(vendor, header, carrying, total - carrying, len(values.get(vendor, {})))
        )
    return out


# ------------------------------------------------------------------ cookies


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


# ------------------------------------------------------------------ hosts and third parties


@dataclass(frozen=True, slots=True)
class HostsContacted:
    """Upstream hosts by whether a vendor rule covers them (host -> request count)."""

    rule_hosts: dict[str, int] = field(default_factory=dict)
    other_hosts: dict[str, int] = field(default_factory=dict)


def hosts_contacted(requests: Iterable[ObservedRequest], index: RuleIndex) -> HostsContacted:
    """Split the hosts the proxy contacted into rule hosts and others (others fail P6)."""
    counts = Counter(r.host for r in requests)
    result = HostsContacted()
    for host, n in sorted(counts.items()):
        target = result.rule_hosts if index.rule_for(host) is not None else result.other_hosts
        target[host] = n
    return result


@dataclass(frozen=True, slots=True)
class ThirdPartyRef:
    """A host a vendor page makes the patron's browser contact directly."""

    host: str
    kind: str  # the tag ("script", "img", "iframe", "link") or "inline-script"
    tracker: Tracker | None


def _url_host(url: str) -> str | None:
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    if not url.lower().startswith(("http://", "https://")):
        return None  # relative, data:, javascript: — same origin or no request
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def _tag_urls(tag: str, attrs: str) -> list[str]:
    if tag == "link":
        rel = REL_ATTR.search(attrs)
        if rel is None or not set(rel[1].lower().split()) & FETCHING_RELS:
            return []
    urls = []
    for match in URL_ATTR.finditer(attrs):
        value = match[2] or match[3] or match[4] or ""
        if match[1].lower() == "srcset":
            urls += [item.split()[0] for item in value.split(",") if item.strip()]
        else:
            urls.append(value)
    return urls


def _page_refs(html: str) -> list[tuple[str, str]]:
    """(host, kind) for every absolute URL the browser would fetch on its own."""
    refs = []
    for tag_match in FETCHING_TAG.finditer(html):
        tag = tag_match[1].lower()
        refs += [(h, tag) for url in _tag_urls(tag, tag_match[2]) if (h := _url_host(url))]
    for script in INLINE_SCRIPT.finditer(html):
        if not DATA_SCRIPT.search(script[1]):
            refs += [(h.lower(), "inline-script") for h in SCRIPT_URL.findall(script[2])]
    return refs


def third_party_references(html: str, index: RuleIndex) -> list[ThirdPartyRef]:
    """Hosts in a vendor page that no rule covers, once per (host, kind), with tracker info."""
    seen: dict[tuple[str, str], ThirdPartyRef] = {}
    for host, kind in _page_refs(html):
        if index.rule_for(host) is None and (host, kind) not in seen:
            seen[(host, kind)] = ThirdPartyRef(host, kind, tracker_for(host))
    return list(seen.values())
