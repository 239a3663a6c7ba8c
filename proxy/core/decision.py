"""The relay's decision: one request view, one session, one instant, one rule snapshot in;
one closed value out — ``Redirect``, ``Deny`` or ``Forward(plan)``.

Contract: ``decide(view, session, now, snapshot, suspended=...)`` applies every relay rule in
order: a host no rule covers → ``Deny(404)``, EZproxy's dotted host form → ``Redirect(301)``
to the mapped host, no session → ``Redirect(302)`` to ``/login?qurl=<vendor URL>``, a library
(or patron type) the rule does not license → ``Deny(403)``, a suspended card or session →
``Deny(403)``, a method never relayed → ``Deny(405, Allow)``, a coded request body →
``Deny(415)`` (R1), a declared body over the cap → ``Deny(413)``. Without a session, a CORS
preflight or a request a rule's ``anonymous`` entry matches (#17) is ``Forward`` with an
anonymous plan: no session, no pseudonym, accounted as ``ANONYMOUS``. Otherwise ``Forward`` with a
``ForwardPlan``: the upstream origin and target (request_params turned back), the outgoing
headers by the rule's policy (the shell appends the vendor cookies and the pseudonym, whose
rotation the plan names), the body policy and the accounting keys. No I/O, no clock, no
randomness: every branch is tested from a table (tests/core/test_decision.py).
Not here: the stores the shell consults (suspensions, jars, pseudonym keys), sending, the
response (core/responseplan.py), header policy itself (core/headers.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Protocol
from urllib.parse import quote

from proxy.core import pseudonym
from proxy.core.abuse import AbuseLimits
from proxy.core.headers import (
    REFUSED_METHODS,
    RELAYED_METHODS,
    RELAYED_REQUEST_CODINGS,
    Header,
    outgoing_headers,
)
from proxy.core.hostmap import HostMapError, Origin
from proxy.core.rules import VendorRule
from proxy.core.snapshot import CompiledRule, RuleSnapshot
from proxy.core.urlmap import translate_params

MAX_REQUEST_BODY: Final = 100 * 2**20  # aiohttp's client_max_size does not cover streams
# RFC 9110 §15.5.6: a 405 lists the methods that are allowed
METHOD_REFUSED_HEADERS: Final = {"Allow": RELAYED_METHODS}
CODING_REFUSED_HEADERS: Final = {"Accept-Encoding": "identity"}  # RFC 7694 §3
ANONYMOUS: Final = "(anonymous)"  # the statistics key of requests relayed without a session
# Fetch standard §3.2.2 (CORS-preflight request): OPTIONS with Origin and
# Access-Control-Request-Method; browsers never send cookies with it.
PREFLIGHT_HEADERS: Final = frozenset({"origin", "access-control-request-method"})
PAUSED: Final = (
    "Your access has been paused because of unusually heavy use. Please contact your library."
)


class Patron(Protocol):
    """What the decision reads of a session (stores.sessions.Session has it)."""

    @property
    def key(self) -> str: ...
    @property
    def library(self) -> str: ...
    @property
    def ptype(self) -> str | None: ...
    @property
    def patron_key(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RequestView:
    """The parts of a browser request the decision reads."""

    method: str
    host: str  # the validated Host header, lower case
    raw_path: str  # path and query, as received
    headers: Sequence[Header]
    content_length: int | None = None
    content_encodings: tuple[str, ...] = ()  # every Content-Encoding header value


@dataclass(frozen=True, slots=True)
class Redirect:
    """Answer with a redirect (302 to log in, 301 for EZproxy's dotted host form)."""

    location: str
    status: int
    vendor: str = ""  # the rule's id once a rule covers the host (for the access log, #18)


@dataclass(frozen=True, slots=True)
class Deny:
    """Refuse with a status and a patron-safe message (``reason`` is for the log)."""

    status: int
    message: str
    reason: str
    headers: Mapping[str, str] | None = None
    vendor: str = ""  # the rule's id once a rule covers the host (for the access log)


@dataclass(frozen=True, slots=True)
class Pseudonym:
    """Which pseudonym goes upstream: the session's own (``epoch`` None) or the card's in
    the named rotation epoch; the shell looks the key up and derives the value."""

    header: str
    epoch: str | None


@dataclass(frozen=True, slots=True)
class Accounting:
    """Whom a relayed request counts for: statistics and abuse limits (no URL)."""

    vendor: str
    library: str
    session: str
    subject: str  # whom statistics, limits and suspensions count (R10): the card, else session


@dataclass(frozen=True, slots=True)
class ForwardPlan:
    """Everything the shell needs to send one request upstream."""

    rule: VendorRule
    compiled: CompiledRule
    origin: Origin
    target: str  # the upstream request target (request_params turned back)
    headers: list[Header]  # by policy; the shell appends Cookie and the pseudonym
    pseudonym: Pseudonym | None
    form_params: frozenset[str]  # request_params to turn back in a small urlencoded form
    accounting: Accounting
    anonymous: bool = False  # #17: no session: no cookies, no pseudonym, nothing patron-derived

    @property
    def limits(self) -> AbuseLimits:
        """The rule's abuse limits (global ones merged in)."""
        return self.compiled.limits


@dataclass(frozen=True, slots=True)
class Forward:
    """Relay the request as planned."""

    plan: ForwardPlan


Decision = Redirect | Deny | Forward
NOT_COVERED: Final = Deny(404, "This address is not one of our licensed databases.", "no_rule")
SUSPENDED: Final = Deny(403, PAUSED, "suspended")
METHOD_REFUSED: Final = Deny(
    405,
    "This kind of request is not sent through the library's proxy.",
    "method_not_relayed",
    METHOD_REFUSED_HEADERS,
)
CODED_BODY: Final = Deny(
    415,
    "This upload is compressed in a way the library's proxy does not relay.",
    "coded_request_body",
    CODING_REFUSED_HEADERS,
)
TOO_LARGE: Final = Deny(
    413, "This upload is too large to send through the library's proxy.", "request_too_large"
)


def decide(
    view: RequestView,
    session: Patron | None,
    now: datetime,
    snapshot: RuleSnapshot,
    *,
    suspended: bool = False,
) -> Decision:
    """Every relay rule, in order; ``suspended``: the card or session is suspended."""
    resolved = resolve(view, snapshot)
    if not isinstance(resolved, tuple):
        return resolved
    compiled, origin = resolved
    rule = compiled.rule
    if session is None:
        if is_anonymous(view, rule, origin):
            refused = refused_shape(view)
            if refused is not None:
                return replace(refused, vendor=rule.id)
            return Forward(anonymous_plan(view, snapshot, compiled, origin))
        login = login_url(snapshot.public_url, origin.url_prefix() + view.raw_path)
        return Redirect(login, 302, rule.id)
    if not rule.licensed_to(session.library, session.ptype):
        return Deny(
            403, f"Your library does not license {rule.title}.", "not_licensed", None, rule.id
        )
    refused = SUSPENDED if suspended else refused_shape(view)
    if refused is not None:
        return replace(refused, vendor=rule.id)
    return Forward(forward_plan(view, session, now, snapshot, compiled, origin))


def resolve(view: RequestView, snapshot: RuleSnapshot) -> tuple[CompiledRule, Origin] | Decision:
    """Host → origin → rule; the origin must be the rule's own (scheme and port too)."""
    try:
        origin = snapshot.hostmap.origin_for(view.host)
    except HostMapError:
        location = legacy_location(view, snapshot)
        return NOT_COVERED if location is None else Redirect(location, 301)
    index = snapshot.index
    rule = index.rule_for(origin.host)
    if rule is None or index.origin_for(origin.host) != origin:
        return NOT_COVERED
    return snapshot.compiled[rule.id], origin


def legacy_location(view: RequestView, snapshot: RuleSnapshot) -> str | None:
    """``www.jstor.org.<proxy host>`` (EZproxy's dotted form) → our mapped URL, if covered."""
    host = view.host
    bare = host.rsplit(":", 1)[0] if ":" in host else host
    suffix = "." + snapshot.hostmap.proxy_host
    vendor_host = bare[: -len(suffix)] if bare.endswith(suffix) else ""
    if "." not in vendor_host:
        return None
    origin = snapshot.mapper.vendor_origin(vendor_host)
    return None if origin is None else snapshot.mapper.mapped_origin(origin) + view.raw_path


def login_url(public_url: str, vendor_url: str) -> str:
    """``/login?qurl=…`` for a vendor URL."""
    return f"{public_url}/login?qurl={quote(vendor_url, safe='')}"


def refused_shape(view: RequestView) -> Deny | None:
    """What is never relayed, refused before any body byte is read (R1, R22)."""
    if view.method in REFUSED_METHODS:
        return METHOD_REFUSED
    for value in view.content_encodings:
        if any(c.strip().lower() not in RELAYED_REQUEST_CODINGS for c in value.split(",")):
            return CODED_BODY
    if (view.content_length or 0) > MAX_REQUEST_BODY:
        return TOO_LARGE
    return None


def forward_plan(
    view: RequestView,
    session: Patron,
    now: datetime,
    snapshot: RuleSnapshot,
    compiled: CompiledRule,
    origin: Origin,
) -> ForwardPlan:
    """The upstream request: target, policy-built headers, pseudonym, body policy, keys."""
    rule, names = compiled.rule, compiled.request_params
    headers = policy_headers(view, snapshot, compiled, origin)
    subject = session.patron_key or session.key
    return ForwardPlan(
        rule,
        compiled,
        origin,
        upstream_target(view.raw_path, names, snapshot),
        headers,
        pseudonym_for(rule, session, now),
        names,
        Accounting(rule.id, session.library, session.key, subject),
    )


def policy_headers(
    view: RequestView, snapshot: RuleSnapshot, compiled: CompiledRule, origin: Origin
) -> list[Header]:
    """The browser's headers through the rule's policy; the shell adds Cookie and pseudonym."""
    return outgoing_headers(
        view.headers,
        policy=compiled.policy,
        mapper=snapshot.mapper,
        host=origin.authority,
        cookie=None,
        pseudonym=None,
    )


def is_preflight(view: RequestView) -> bool:
    """A CORS preflight: relayed anonymously by default, only the vendor knows its policy."""
    if view.method != "OPTIONS":
        return False
    names = {name.lower() for name, _ in view.headers}
    return names >= PREFLIGHT_HEADERS


def is_anonymous(view: RequestView, rule: VendorRule, origin: Origin) -> bool:
    """#17: relayed without a session: a preflight, or a match of the rule's own
    ``anonymous`` entries (checked only after the host resolved to this rule, so a pattern
    can never reach a host the rule does not cover; DESIGN P6)."""
    if is_preflight(view):
        return True
    return rule.anonymous_allows(view.method, origin.scheme, origin.host, view.raw_path)


def anonymous_plan(
    view: RequestView, snapshot: RuleSnapshot, compiled: CompiledRule, origin: Origin
) -> ForwardPlan:
    """The upstream request with nothing patron-derived: policy headers only (no Cookie, no
    pseudonym), accounted as ``ANONYMOUS``."""
    rule, names = compiled.rule, compiled.request_params
    headers = policy_headers(view, snapshot, compiled, origin)
    return ForwardPlan(
        rule,
        compiled,
        origin,
        upstream_target(view.raw_path, names, snapshot),
        headers,
        None,
        names,
        Accounting(rule.id, ANONYMOUS, ANONYMOUS, ANONYMOUS),
        anonymous=True,
    )


def upstream_target(raw_path: str, names: frozenset[str], snapshot: RuleSnapshot) -> str:
    """The request target, with proxy URLs in the rule's request_params turned back."""
    if not names:
        return raw_path
    path, sep, query = raw_path.partition("?")
    return path + sep + translate_params(query, names, snapshot.mapper) if sep else path


def pseudonym_for(rule: VendorRule, session: Patron, now: datetime) -> Pseudonym | None:
    """The rule's pseudonym header, or None when the rule asks for none (DESIGN P2); a
    card-less session always gets its session pseudonym (no card to keep stable)."""
    spec = rule.pseudonym
    if spec is None:
        return None
    if spec.rotate == "session" or session.patron_key is None:
        return Pseudonym(spec.header, None)
    return Pseudonym(spec.header, pseudonym.epoch_id(spec.rotate, now))
