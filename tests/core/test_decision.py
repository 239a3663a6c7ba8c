"""The relay decision from tables: every refusal, redirect and plan, no server, no I/O (#14)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from proxy.core import pseudonym
from proxy.core.decision import (
    ANONYMOUS,
    MAX_REQUEST_BODY,
    Deny,
    Forward,
    ForwardPlan,
    Redirect,
    RequestView,
    decide,
)
from proxy.core.hostmap import HostMap, Origin
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex
from proxy.core.settings import Settings
from proxy.core.snapshot import RuleSnapshot, compile_snapshot

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
RULES: list[dict[str, Any]] = [
    {
        "id": "jstor",
        "title": "JSTOR",
        "url": "https://www.jstor.org/",
        "hosts": ["www.jstor.org"],
        "pseudonym": {"header": "X-Pseud", "rotate": "daily"},
        "rewrite": {"request_params": ["return"]},
    },
    {
        "id": "acme",
        "title": "Acme",
        "url": "https://www.acme.test/",
        "hosts": ["www.acme.test"],
        "libraries": ["MAIN"],
        "ptypes": ["staff"],
        "pseudonym": {"rotate": "session"},
        "headers": {"allow": ["X-Vendor-Token"], "set": {"X-Api": "1"}},
    },
    {"id": "bigdb", "title": "BigDB", "url": "https://big.test/", "hosts": ["big.test"]},
]


def snapshot(rules: list[dict[str, Any]] = RULES) -> RuleSnapshot:
    """A compiled snapshot under http://proxy.localhost:8080."""
    parsed = tuple(VendorRule.model_validate(r) for r in rules)
    return compile_snapshot(
        parsed,
        RuleIndex.build(parsed),
        {},
        HostMap("proxy.localhost", 8080),
        Settings(public_url="http://proxy.localhost:8080"),
    )


SNAP = snapshot()


def host_of(vendor_host: str) -> str:
    """The mapped Host header for an https vendor host."""
    return SNAP.hostmap.mapped_authority(Origin("https", vendor_host, 443))


@dataclass(frozen=True)
class Patron:
    """A session as the decision reads it."""

    key: str = "sess"
    library: str = "MAIN"
    ptype: str | None = "staff"
    patron_key: str | None = "card"


def view(vendor_host: str = "www.jstor.org", **kw: Any) -> RequestView:
    """A GET for ``vendor_host`` with ``kw`` overriding the view's fields."""
    fields: dict[str, Any] = {
        "method": "GET",
        "host": host_of(vendor_host),
        "raw_path": "/stable/1?x=1",
        "headers": [("Accept", "text/html"), ("Cookie", "a=b")],
    }
    return RequestView(**{**fields, **kw})


REFUSALS = [
    ("unknown host", view(host="nohost.proxy.localhost:8080"), Patron(), False, 404, "no_rule"),
    ("wrong port of a covered host", view(host="www-jstor-org-8443.proxy.localhost:8080"),
     Patron(), False, 404, "no_rule"),
    ("other library", view("www.acme.test"), Patron(library="EAST"), False, 403, "not_licensed"),
    ("other ptype", view("www.acme.test"), Patron(ptype="student"), False, 403, "not_licensed"),
    ("suspended", view(), Patron(), True, 403, "suspended"),
    ("TRACE", view(method="TRACE"), Patron(), False, 405, "method_not_relayed"),
    ("CONNECT", view(method="CONNECT"), Patron(), False, 405, "method_not_relayed"),
    ("gzip body", view(method="POST", content_encodings=("gzip",)), Patron(), False, 415,
     "coded_request_body"),
    ("listed codings", view(method="POST", content_encodings=("identity, br",)), Patron(),
     False, 415, "coded_request_body"),
    ("huge body", view(method="POST", content_length=MAX_REQUEST_BODY + 1), Patron(), False,
     413, "request_too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "req", "patron", "suspended", "status", "reason"), REFUSALS)
def test_every_refusal_is_a_deny_value(
    name: str, req: RequestView, patron: Patron, suspended: bool, status: int, reason: str
) -> None:
    """#14: each relay refusal is a Deny with its status and reason, decided without I/O."""
    decision = decide(req, patron, NOW, SNAP, suspended=suspended)
    assert isinstance(decision, Deny), name
    assert (decision.status, decision.reason) == (status, reason)


def test_refusals_carry_the_headers_their_rfc_asks_for() -> None:
    """#14: a 405 lists Allow (RFC 9110 §15.5.6), a 415 asks for identity (RFC 7694 §3)."""
    trace = decide(view(method="TRACE"), Patron(), NOW, SNAP)
    coded = decide(view(method="POST", content_encodings=("gzip",)), Patron(), NOW, SNAP)
    assert isinstance(trace, Deny) and trace.headers and "GET" in trace.headers["Allow"]
    assert isinstance(coded, Deny) and coded.headers == {"Accept-Encoding": "identity"}


def test_refusals_after_the_rule_name_the_vendor_and_the_licence_the_title() -> None:
    """#14: a licence refusal names the database and the access log gets the rule id."""
    decision = decide(view("www.acme.test"), Patron(library="EAST"), NOW, SNAP)
    assert isinstance(decision, Deny) and decision.vendor == "acme"
    assert "Acme" in decision.message


def test_the_order_of_the_rules() -> None:
    """#14: no session beats every refusal; licence beats suspension beats the method check."""
    unlicensed = Patron(library="EAST")
    assert isinstance(decide(view("www.acme.test", method="TRACE"), None, NOW, SNAP), Redirect)
    first = decide(view("www.acme.test", method="TRACE"), unlicensed, NOW, SNAP, suspended=True)
    assert isinstance(first, Deny) and first.reason == "not_licensed"
    second = decide(view(method="TRACE"), Patron(), NOW, SNAP, suspended=True)
    assert isinstance(second, Deny) and second.reason == "suspended"


def test_no_session_redirects_to_login_with_the_vendor_url() -> None:
    """#14: without a session the answer is a 302 to /login?qurl=<vendor URL>, naming the
    rule's vendor for the access log (#18)."""
    decision = decide(view(), None, NOW, SNAP)
    assert decision == Redirect(
        "http://proxy.localhost:8080/login?qurl=https%3A%2F%2Fwww.jstor.org%2Fstable%2F1%3Fx%3D1",
        302,
        "jstor",
    )


@pytest.mark.parametrize(
    ("host", "location"),
    [
        ("www.jstor.org.proxy.localhost:8080", host_of("www.jstor.org")),
        ("www.jstor.org.proxy.localhost", host_of("www.jstor.org")),
        ("big.test.proxy.localhost:8080", host_of("big.test")),
    ],
)
def test_ezproxy_dotted_host_moves_permanently(host: str, location: str) -> None:
    """#14: EZproxy's dotted host form is a 301 to the mapped host, with path and query."""
    decision = decide(view(host=host), None, NOW, SNAP)
    assert decision == Redirect(f"http://{location}/stable/1?x=1", 301)


def test_dotted_host_no_rule_covers_is_not_found() -> None:
    """#14: a dotted host of a database no rule covers is a 404, not a redirect."""
    decision = decide(view(host="www.other.org.proxy.localhost:8080"), Patron(), NOW, SNAP)
    assert isinstance(decision, Deny) and decision.status == 404


def forward(req: RequestView, patron: Patron = Patron()) -> ForwardPlan:
    """The plan of a request that is forwarded."""
    decision = decide(req, patron, NOW, SNAP)
    assert isinstance(decision, Forward)
    return decision.plan


def test_forward_plan_holds_origin_target_and_accounting_keys() -> None:
    """#14: a forward names the origin, the target and whom it counts for."""
    plan = forward(view("big.test"), Patron(patron_key=None))
    assert plan.origin == Origin("https", "big.test", 443)
    assert plan.target == "/stable/1?x=1"
    assert (plan.accounting.vendor, plan.accounting.library) == ("bigdb", "MAIN")
    assert plan.accounting.subject == "sess"  # a card-less session counts for itself
    assert forward(view("big.test")).accounting.subject == "card"


def test_request_params_are_turned_back_in_the_target() -> None:
    """#14: a proxy URL in a request_params query value goes upstream as the vendor URL."""
    back = "http://" + host_of("www.jstor.org") + "/x"
    plan = forward(view(raw_path="/login?return=" + back.replace(":", "%3A").replace("/", "%2F")))
    assert "www.jstor.org" in plan.target and "proxy.localhost" not in plan.target
    assert plan.form_params == frozenset({"return"})


GENERIC_UA = (
    "Mozilla/5.0 (compatible; LibraryProxy/1.0)"  # #18: reduced by default; "UA" is unknown
)
HEADER_CASES = [
    ("bigdb", [("Cookie", "a=b"), ("X-Vendor-Token", "t")], [("Host", "big.test")], []),
    ("acme", [("X-Vendor-Token", "t"), ("X-Forwarded-For", "10.0.0.1")],
     [("Host", "www.acme.test"), ("X-Vendor-Token", "t"), ("X-Api", "1")], ["X-Forwarded-For"]),
    ("jstor", [("User-Agent", "UA"), ("Authorization", "x")],
     [("Host", "www.jstor.org"), ("User-Agent", GENERIC_UA)], ["Authorization"]),  # #18
]  # fmt: skip


@pytest.mark.parametrize(("rule", "incoming", "expected", "absent"), HEADER_CASES)
def test_header_policy_per_rule(
    rule: str, incoming: list[tuple[str, str]], expected: list[tuple[str, str]], absent: list[str]
) -> None:
    """#14: the outgoing headers follow the rule's policy; Cookie is the shell's to add."""
    vendor = {"bigdb": "big.test", "acme": "www.acme.test", "jstor": "www.jstor.org"}[rule]
    plan = forward(view(vendor, headers=incoming))
    assert plan.headers == expected
    assert not {n.lower() for n, _ in plan.headers} & {a.lower() for a in [*absent, "cookie"]}


PSEUDONYM_CASES = [
    ("bigdb", Patron(), None),
    ("acme", Patron(), ("X-Patron-Pseudonym", None)),
    ("jstor", Patron(), ("X-Pseud", pseudonym.epoch_id("daily", NOW))),
    ("jstor", Patron(patron_key=None), ("X-Pseud", None)),  # no card: the session's own
]


@pytest.mark.parametrize(("rule", "patron", "expected"), PSEUDONYM_CASES)
def test_pseudonym_rotation_per_rule(
    rule: str, patron: Patron, expected: tuple[str, str | None] | None
) -> None:
    """#14: the plan names the pseudonym header and its rotation epoch (None: per session)."""
    vendor = {"bigdb": "big.test", "acme": "www.acme.test", "jstor": "www.jstor.org"}[rule]
    plan = forward(view(vendor), patron)
    got = None if plan.pseudonym is None else (plan.pseudonym.header, plan.pseudonym.epoch)
    assert got == expected


def test_epoch_rotation_changes_with_the_day() -> None:
    """#14: a daily pseudonym's epoch is another one the next day."""
    today = forward(view()).pseudonym
    tomorrow = decide(view(), Patron(), NOW.replace(day=5), SNAP)
    assert isinstance(tomorrow, Forward) and tomorrow.plan.pseudonym != today


def test_a_snapshot_is_the_only_rule_set_a_decision_reads() -> None:
    """#14: a rule missing from the snapshot handed in is not found, whatever else exists."""
    without_jstor = snapshot(RULES[1:])
    decision = decide(view(), Patron(), NOW, without_jstor)
    assert isinstance(decision, Deny) and decision.status == 404
    assert isinstance(decide(view(), Patron(), NOW, SNAP), Forward)


ANON_SNAP = snapshot(
    [
        {
            **RULES[0],
            "headers": {"set": {"X-Consortium": "demo"}},
            "anonymous": [{"patterns": ["/fonts/*"]}],
        },
        RULES[2],
    ]
)
PREFLIGHT = [
    ("Origin", "http://www-jstor-org.proxy.localhost:8080"),
    ("Access-Control-Request-Method", "GET"),
]


@pytest.mark.parametrize(
    ("req", "outcome"),
    [
        (view(raw_path="/fonts/a.woff2"), "anonymous"),
        (view(raw_path="/fonts/a.woff2", method="POST"), "login"),  # not in the method set
        (view(raw_path="/stable/1"), "login"),
        (view(method="OPTIONS", headers=PREFLIGHT), "anonymous"),  # preflights by default
        (view("big.test", method="OPTIONS", headers=PREFLIGHT), "anonymous"),
        (view(method="OPTIONS", headers=PREFLIGHT[:1]), "login"),  # not a preflight
        (view("big.test", raw_path="/fonts/a.woff2"), "login"),  # another rule's pattern
        (
            view(host="nohost.proxy.localhost:8080", method="OPTIONS", headers=PREFLIGHT),
            "not covered",
        ),  # never an open proxy
        (view(raw_path="/fonts/a", content_encodings=("x-zip",)), "refused"),
    ],
)
def test_requests_without_a_session_relayed_anonymously(req: RequestView, outcome: str) -> None:
    """#17: a preflight or a rule's anonymous pattern → an anonymous plan; the rest → login."""
    decision = decide(req, None, NOW, ANON_SNAP)
    got = {Forward: "anonymous", Redirect: "login"}.get(type(decision))
    if isinstance(decision, Deny):
        got = "not covered" if decision.status == 404 else "refused"
    assert got == outcome


def test_an_anonymous_plan_carries_nothing_patron_derived() -> None:
    """No cookie, no pseudonym, accounted as (anonymous); the rule's static headers stay."""
    decision = decide(view(raw_path="/fonts/a.woff2"), None, NOW, ANON_SNAP)
    assert isinstance(decision, Forward)
    plan = decision.plan
    assert plan.anonymous and plan.pseudonym is None
    names = {name.lower() for name, _ in plan.headers}
    assert "cookie" not in names and "x-pseud" not in names
    assert ("X-Consortium", "demo") in plan.headers
    assert (plan.accounting.library, plan.accounting.subject) == (ANONYMOUS, ANONYMOUS)
