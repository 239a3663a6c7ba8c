"""Header policy, both directions: an allow-list out, a rewrite-and-drop table in.

Contract: ``outgoing_headers`` builds the upstream request's headers from the browser's and
the rule's policy: only allow-listed names pass (DESIGN P1), identifying headers can never be
added back, Referer/Origin on mapped hosts are translated to the vendor's form and dropped
otherwise, the browser's Cookie is replaced by the session's vendor jar, and the pseudonym is
added only in the header the rule names; the User-Agent is passed, reduced (the default) or
replaced as the rule says (core/useragent.py). ``incoming_headers`` turns the vendor's response
headers into the browser's: URLs in Location/Content-Location/Refresh/Link, CORS and CSP are
mapped to proxy hosts; headers that would pin or break the proxy host are dropped;
Set-Cookie is handed back separately (the caller keeps it server-side or rescopes it).
Pure: lists of (name, value) pairs in and out.
Not here: bodies, cookies' own semantics (core/cookiejar.py), I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from proxy.core.redirects import judge_location
from proxy.core.useragent import UserAgentPolicy, shaped_user_agent

if TYPE_CHECKING:  # rules.py imports the tables below; urlmap imports rules (no cycle at run time)
    from proxy.core.urlmap import UrlMapper

Header = tuple[str, str]

# Request headers a vendor may receive by default: content negotiation, cache directives and
# range requests (RFC 9110 §12, §14). Everything else is dropped unless a rule allows it.
ALLOWED_REQUEST_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "content-type",
        "range",
        "cache-control",
        "pragma",
        "x-requested-with",
        "user-agent",
        # Fetch standard §3.2.2: a CORS preflight names the method and headers it asks for;
        # without them the vendor cannot answer it (#17). Method and header names only.
        "access-control-request-method",
        "access-control-request-headers",
    }
)
# The body's framing is set by the proxy from the bytes it actually sends, never copied from
# the browser: aiohttp decodes coded request bodies, and a stale Content-Length left the rest
# of the body to be read as a second request on a pooled connection (R1; RFC 9112 §6.3).
BODY_FRAMING: Final = frozenset({"content-length", "content-encoding", "transfer-encoding"})
# Cache validators are vendor-chosen strings (ETag) or times that a browser replays on a shared
# PC, linking one patron's pseudonym to the next one's (R6): never sent either way. Without
# If-Range a Range request gets its range of the current representation (RFC 9110 §13.1.5).
REQUEST_VALIDATORS: Final = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"}
)
RESPONSE_VALIDATORS: Final = frozenset({"etag", "last-modified"})  # RFC 9110 §8.8
# Methods never relayed: TRACE/TRACK echo the request (session cookie included) back to
# scripts (cross-site tracing, RFC 9110 §9.3.8); CONNECT asks for a tunnel (§9.3.6).
REFUSED_METHODS: Final = frozenset({"TRACE", "TRACK", "CONNECT"})
RELAYED_METHODS: Final = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"  # the 405's Allow
# Request content codings relayed (RFC 7694 §3: others get 415 with Accept-Encoding). aiohttp's
# server decodes gzip/deflate/br/zstd request bodies inside its parser, before the handler's
# stream: the bytes as sent cannot be had, so a coded body can only be refused (R1).
RELAYED_REQUEST_CODINGS: Final = frozenset({"identity"})
# Headers that identify the patron or the proxy session; never forwarded, not even when a rule
# lists them in headers.allow (DESIGN P1).
IDENTIFYING_REQUEST_HEADERS: Final = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-server",
        "forwarded",
        "via",
        "x-real-ip",
        "true-client-ip",
        "client-ip",
        "cf-connecting-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-originating-ip",
        "from",
        "authorization",
        "proxy-authorization",
        "cookie",
        "dnt",
        "sec-gpc",
        "x-wap-profile",
        "x-att-deviceid",
        "x-uidh",
    }
)
# Hop-by-hop headers are meant for one connection only (RFC 9110 §7.6.1).
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NEXT_HOP_AUTH: Final = frozenset({"proxy-authenticate", "proxy-authorization"})  # RFC 9110 §11.7
CLIENT_HINT_PREFIX: Final = "sec-ch-"  # User-Agent Client Hints: fingerprinting surface
# Set by the proxy itself: the vendor's Host, never the browser's mapped host.
SET_BY_PROXY: Final = frozenset({"host"})
NEVER_SET: Final = IDENTIFYING_REQUEST_HEADERS | SET_BY_PROXY | BODY_FRAMING | HOP_BY_HOP
# Content codings asked of vendors (others are stripped from Accept-Encoding). Not br: with the
# brotli 1.1 that mitmproxy 11 pins, a br decoder cannot bound its output per step, so a br
# bomb costs far more memory than a gzip one (proxy/contentcoding.py); a br body a vendor
# sends anyway is still decoded.
DECODABLE_CODINGS: Final = frozenset({"gzip", "deflate", "identity"})

# Response headers never passed to the browser: they would pin the proxy host to the vendor's
# policy (HSTS includeSubDomains, RFC 6797), advertise vendor endpoints the browser would call
# directly (Alt-Svc RFC 7838; NEL/Report-To send reports from the patron's own address),
# wipe the proxy's own cookies (Clear-Site-Data), or are obsolete pins (RFC 7469, Expect-CT).
DROPPED_RESPONSE_HEADERS: Final = frozenset(
    {
        "strict-transport-security",
        "alt-svc",
        "public-key-pins",
        "public-key-pins-report-only",
        "expect-ct",
        "nel",
        "report-to",
        "reporting-endpoints",
        "clear-site-data",
        "set-cookie2",
    }
)
# Response headers that carry URLs to map to proxy hosts (RFC 9110 §10.2.2, §8.7; RFC 8288).
URL_RESPONSE_HEADERS: Final = frozenset({"location", "content-location"})
CSP_HEADERS: Final = frozenset({"content-security-policy", "content-security-policy-report-only"})
# Stale once the body is rewritten (aiohttp#4462: length and coding no longer match).
# (etag too: a strong validator must name these exact bytes, RFC 9110 §8.8.3.)
STALE_AFTER_REWRITE: Final = frozenset(
    {
        "content-length",
        "content-encoding",
        "content-md5",
        "digest",
        "content-digest",
        "repr-digest",
        "etag",
    }
)
ALWAYS_DROPPED: Final = HOP_BY_HOP | NEXT_HOP_AUTH | DROPPED_RESPONSE_HEADERS | RESPONSE_VALIDATORS
CONTROL_CHARS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class OutgoingPolicy:
    """What a rule adds to the default allow-list."""

    allow: frozenset[str] = frozenset()
    set: Mapping[str, str] | None = None
    user_agent: UserAgentPolicy = "reduced"  # #18: family, major version, platform family


def connection_named(headers: Iterable[Header]) -> frozenset[str]:
    """Header names listed in Connection (RFC 9110 §7.6.1: those are hop-by-hop too)."""
    named: set[str] = set()
    for name, value in headers:  # a plain loop: this runs twice per relayed request
        if len(name) == 10 and name.lower() == "connection":
            named.update(t.strip().lower() for t in value.split(","))
    named.discard("")
    return frozenset(named)


def outgoing_headers(
    incoming: Sequence[Header],
    *,
    policy: OutgoingPolicy,
    mapper: UrlMapper,
    host: str,
    cookie: str | None,
    pseudonym: Header | None,
) -> list[Header]:
    """The upstream request's headers; nothing identifying, nothing the policy did not allow."""
    allowed = _allowed(policy.allow)
    named = connection_named(incoming)
    if named:
        allowed -= named
    out: list[Header] = [("Host", host)]
    for name, value in incoming:
        lower = name.lower()
        if lower in ("referer", "origin"):
            translated = _translate_back(lower, value, mapper)
            if translated:
                out.append((name, translated))
        elif lower in allowed and not lower.startswith(CLIENT_HINT_PREFIX):
            out.append(_shaped(name, lower, value, policy))
    out = [h for h in out if h[1]]
    out += [(n, v) for n, v in (policy.set or {}).items() if n.lower() not in NEVER_SET]
    if cookie:
        out.append(("Cookie", cookie))
    if pseudonym is not None:
        out.append(pseudonym)
    return out


@functools.lru_cache(maxsize=256)  # per request; one entry per rule's headers.allow
def _allowed(extra: frozenset[str]) -> frozenset[str]:
    """The names that may pass: the defaults and the rule's, never identifying or hop-by-hop."""
    never = IDENTIFYING_REQUEST_HEADERS | HOP_BY_HOP | BODY_FRAMING | REQUEST_VALIDATORS
    return (ALLOWED_REQUEST_HEADERS | extra) - never


def _shaped(name: str, lower: str, value: str, policy: OutgoingPolicy) -> Header:
    if lower == "accept-language":
        return (name, coarse_language(value))
    if lower == "accept-encoding":
        return (name, decodable_encodings(value))
    if lower == "user-agent":
        return (name, shaped_user_agent(value, policy.user_agent))
    return (name, value)


@functools.lru_cache(maxsize=512)  # per request; a browser sends the same value each time
def coarse_language(value: str) -> str:
    """'de-CH,de;q=0.9,en;q=0.8' → 'de, en;q=0.5': primary tags only, at most two."""
    tags: list[str] = []
    for item in value.split(","):
        tag = item.split(";")[0].strip().split("-")[0].lower()
        if tag.isalpha() and len(tag) <= 8 and tag not in tags:
            tags.append(tag)
    return ", ".join([*tags[:1], *(f"{t};q=0.5" for t in tags[1:2])])


@functools.lru_cache(maxsize=512)  # per request; a browser sends the same value each time
def decodable_encodings(value: str) -> str:
    """Keep only codings the proxy can decode when it must rewrite."""
    kept = [
        item.strip()
        for item in value.split(",")
        if item.split(";")[0].strip().lower() in DECODABLE_CODINGS
    ]
    return ", ".join(kept) or "identity"


def _translate_back(lower: str, value: str, mapper: UrlMapper) -> str | None:
    vendor = mapper.to_vendor(value if lower == "referer" else value + "/")
    if vendor is None:
        return None  # the portal, another site, or junk: the vendor learns nothing
    if lower == "origin":
        return vendor[:-1]
    return vendor


@dataclass(frozen=True, slots=True)
class IncomingHeaders:
    """The browser's response headers, and the vendor's Set-Cookie values for the caller."""

    headers: list[Header]
    set_cookies: list[str]


def incoming_headers(
    upstream: Sequence[Header], *, mapper: UrlMapper, body_rewritten: bool
) -> IncomingHeaders:
    """Map, drop and keep response headers."""
    # Three lookups rather than one union of the tables: building the union cost more per
    # response than the lookups it saved (this runs on every relayed response).
    named = connection_named(upstream)
    stale = STALE_AFTER_REWRITE if body_rewritten else frozenset()
    out: list[Header] = []
    cookies: list[str] = []
    for name, value in upstream:
        lower = name.lower()
        if lower == "set-cookie":
            cookies.append(value)
        elif lower in ALWAYS_DROPPED or lower in named or lower in stale:
            continue
        elif value.isprintable() or not CONTROL_CHARS.search(value):  # isprintable: fast path
            if lower not in URL_BEARING_HEADERS:
                out.append((name, value))
                continue
            mapped = _mapped_value(lower, value, mapper)
            if mapped is not None:
                out.append((name, mapped))
    return IncomingHeaders(out, cookies)


# The response headers whose values name URLs or hosts (mapped by ``_mapped_value``); every
# other value is passed on as it is, without the call.
URL_BEARING_HEADERS: Final = (
    URL_RESPONSE_HEADERS
    | CSP_HEADERS
    | {
        "refresh",
        "link",
        "access-control-allow-origin",
    }
)


def _mapped_value(lower: str, value: str, mapper: UrlMapper) -> str | None:
    if lower in URL_RESPONSE_HEADERS:
        return mapper.to_proxy(value) or value
    if lower == "refresh":
        return map_refresh(value, mapper)
    if lower == "link":
        return LINK_TARGET.sub(lambda m: f"<{mapper.to_proxy(m[1]) or m[1]}>", value)
    if lower == "access-control-allow-origin":
        return mapper.to_proxy(value) or value
    if lower in CSP_HEADERS:
        return map_csp(value, mapper)
    return value


LINK_TARGET: Final = re.compile(r"<([^>]*)>")  # RFC 8288 §3: URI-Reference in angle brackets
REFRESH_URL: Final = re.compile(r"(?i)(url\s*=\s*['\"]?)([^'\"\s;]+)")


def map_refresh(value: str, mapper: UrlMapper) -> str | None:
    """'5; url=https://www.jstor.org/x' → the mapped URL (HTML §4.2.5.3 refresh syntax).

    A refresh to anywhere a rule does not cover is dropped (None): it would take the patron off
    the proxy, or to an internal address, without the leaving page a Location gets (R22).
    """
    found = REFRESH_URL.search(value)
    if found is None:
        return value
    mapped = mapper.to_proxy(found[2])
    if mapped is None and judge_location(found[2], None) != "stay":
        return None
    return value[: found.start(2)] + (mapped or found[2]) + value[found.end(2) :]


def map_csp(value: str, mapper: UrlMapper) -> str:
    """Map host sources in a CSP to proxy hosts; wildcards become the proxy's wildcard."""
    directives = []
    for directive in value.split(";"):
        tokens = directive.split()
        if tokens and tokens[0].lower() in ("report-uri", "report-to"):
            continue  # reports would go from the patron's browser straight to the vendor
        directives.append(" ".join(_csp_source(t, mapper) for t in tokens))
    return "; ".join(d for d in directives if d)


def _csp_source(token: str, mapper: UrlMapper) -> str:
    if token.startswith("'") or (":" in token and "//" not in token):
        return token  # keywords ('self', 'nonce-…') and scheme sources (data:, https:)
    scheme = "https://" if token.startswith("https://") else ""
    bare = token.split("://", 1)[-1]
    host = bare.split("/", 1)[0].split(":", 1)[0].lower()
    if host.startswith("*."):
        covered = mapper.index.rule_for("x" + host[1:]) is not None
        return f"*.{mapper.hostmap.proxy_host}" if covered else token
    mapped = mapper.to_proxy(f"{scheme or 'https://'}{host}")
    if mapped is None:
        return token
    return urlsplit(mapped).netloc if not scheme else mapped
