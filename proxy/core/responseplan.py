"""The relay's response plan: the vendor's response head in, what the browser gets out.

Contract: ``plan_response(snapshot, plan, head, method=..., can_decode=...)`` returns one of
``Leave`` (a redirect to an unlisted public http(s) site: the "you are leaving the library's
proxy" page, R22), ``Deny(502)`` (a redirect to an internal address or another scheme) or
``Relay``: the mapped header list (core/headers.incoming_headers, the rule's third-party
CSP for ``third_party: block`` rules, ``Referrer-Policy`` at least as strict as
strict-origin-when-cross-origin on HTML), the vendor's Set-Cookie values for the shell to
keep (jar) or rescope (``cookies: pass``), and the body plan — ``small`` (one write),
``stream`` (byte identical) or ``rewrite`` (decode ▸ rewrite ▸ re-encode, when the media
type is one the rule lists, the coding can be decoded and the response can have a body). No
I/O; every branch is tested from a table (tests/core/test_responseplan.py).
Not here: the Set-Cookie semantics (core/cookiejar.py), the codings (contentcoding.py), the
incremental rewriting (core/rewrite.py, web/bodies.py), writing (web/relay_response.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from proxy.core.decision import Deny, ForwardPlan
from proxy.core.headers import Header, incoming_headers
from proxy.core.redirects import judge_location
from proxy.core.rewrite import is_rewritable
from proxy.core.snapshot import RuleSnapshot

# Bodies declared (Content-Length) up to this size are read whole and go out with their
# headers in one write, passed through or rewritten (#19: chunked or repeated socket writes
# cost more per page than the relay's policy work); larger ones stream, memory bounded.
SMALL_BODY: Final = 256 * 1024
NO_BODY_STATUSES: Final = frozenset({204, 205, 304})  # RFC 9110 §6.4.1
# A partial body (Range) cannot be rewritten without breaking its Content-Range; it is passed
# through as it is (RFC 9110 §15.3.7).
PASS_THROUGH_STATUSES: Final = NO_BODY_STATUSES | {206}
NO_BODY_METHODS: Final = frozenset({"HEAD"})
UNSAFE_REDIRECT: Final = Deny(
    502,
    "The database tried to send you to an address the library's proxy won't open.",
    "unsafe_redirect",
)
# "small": read whole, one write; "rewrite_small": the same, rewritten (#19); "stream" and
# "rewrite": chunk by chunk, memory bounded (the rewritten one's first chunk before the head).
BodyMode = Literal["small", "stream", "rewrite_small", "rewrite"]
# #18.8: on relayed HTML an allowed third party (or a link out) learns at most the mapped
# origin, never the vendor path (W3C Referrer Policy §3). Not same-origin: each vendor host
# is its own mapped origin, and vendors check the Referer across their own hosts (CDN
# hotlinking, auth hosts); strict-origin-when-cross-origin keeps that origin.
REFERRER_POLICY: Final = "strict-origin-when-cross-origin"
# A vendor's own policy kept because it is at least as strict (never weakened).
STRICT_REFERRER_POLICIES: Final = frozenset(
    {"no-referrer", "same-origin", "strict-origin", REFERRER_POLICY}
)
# Every policy token (W3C Referrer Policy §3); others in the header are ignored (§4.1).
REFERRER_TOKENS: Final = STRICT_REFERRER_POLICIES | {
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "unsafe-url",
}
HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})  # documents (WHATWG HTML)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The parts of the vendor's response head the plan reads."""

    status: int
    headers: Sequence[Header]  # as the browser may get them (Content-Encoding decoded names)
    location: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    content_length: int | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    """Show the "you are leaving the library's proxy" page for ``url`` (on ``host``)."""

    url: str
    host: str


@dataclass(frozen=True, slots=True)
class Relay:
    """Send the response: status, mapped headers, Set-Cookie values to keep, body plan."""

    status: int
    headers: list[Header]
    set_cookies: list[str]
    body: BodyMode
    content_type: str  # for the rewriter ("" when the vendor sent none)


ResponsePlan = Leave | Deny | Relay


def plan_response(
    snapshot: RuleSnapshot,
    plan: ForwardPlan,
    head: ResponseHead,
    *,
    method: str,
    can_decode: Callable[[str | None], bool],
) -> ResponsePlan:
    """Leave, refuse or relay; for a relay, the headers and how the body goes out."""
    if head.location is not None:
        leaving = judge_redirect(snapshot, head)
        if leaving is not None:
            return leaving
    rewrite = rewrites(plan, head, method, can_decode)
    mapped = incoming_headers(head.headers, mapper=snapshot.mapper, body_rewritten=rewrite)
    headers = mapped.headers
    if plan.compiled.csp is not None:
        headers.append(("Content-Security-Policy", plan.compiled.csp))
    if is_html(head.content_type):
        headers = with_referrer_policy(headers)
    return Relay(
        head.status,
        headers,
        mapped.set_cookies,
        body_mode(head, method, rewrite),
        head.content_type or "",
    )


def is_html(content_type: str | None) -> bool:
    """The response is an HTML document (by its media type, parameters ignored)."""
    return (content_type or "").split(";", 1)[0].strip().lower() in HTML_TYPES


def with_referrer_policy(headers: list[Header]) -> list[Header]:
    """The headers with ``REFERRER_POLICY`` unless the vendor's own (last valid token, W3C
    Referrer Policy §4.1) is at least as strict; a weaker vendor policy is dropped."""
    name = "referrer-policy"
    # Names are compared only when their lengths match (this runs on every
    # relayed HTML response, and vendors rarely send the header at all).
    given = [v for n, v in headers if len(n) == len(name) and n.lower() == name]
    if not given:
        return [*headers, ("Referrer-Policy", REFERRER_POLICY)]
    tokens = [
        t for t in (t.strip().lower() for v in given for t in v.split(",")) if t in REFERRER_TOKENS
    ]
    if tokens and tokens[-1] in STRICT_REFERRER_POLICIES:
        return headers
    kept = [(n, v) for n, v in headers if n.lower() != name]
    kept.append(("Referrer-Policy", REFERRER_POLICY))
    return kept


def judge_redirect(snapshot: RuleSnapshot, head: ResponseHead) -> Leave | Deny | None:
    """A Location leaving the proxy: the leaving page (3xx), a 502 (unsafe), or None."""
    location = head.location or ""
    verdict = judge_location(location, snapshot.mapper.to_proxy(location))
    if verdict == "refuse":
        return UNSAFE_REDIRECT
    if verdict == "stay" or not 300 <= head.status < 400:
        return None
    url = location.strip()
    return Leave(url, urlsplit(url).hostname or "")


def rewrites(
    plan: ForwardPlan, head: ResponseHead, method: str, can_decode: Callable[[str | None], bool]
) -> bool:
    """The body is rewritten: it can have one, its type is the rule's, its coding decodable."""
    types = plan.rule.rewrite.content_types
    if not types or method in NO_BODY_METHODS or head.status in PASS_THROUGH_STATUSES:
        return False  # a rule that rewrites no type skips the media type parse (per request)
    if not is_rewritable(head.content_type, types):
        return False
    return can_decode(head.content_encoding)  # e.g. 'compress' is passed through untouched


def body_mode(head: ResponseHead, method: str, rewrite: bool) -> BodyMode:
    """Rewritten or as it is; read whole for a small known-length body, else streamed."""
    length = head.content_length
    small = length is not None and length <= SMALL_BODY and method not in NO_BODY_METHODS
    if rewrite:
        return "rewrite_small" if small else "rewrite"
    return "small" if small else "stream"
