"""The response plan from tables: leave, refuse or relay; headers in, header map and body
plan out — no server, no I/O (#14)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.core.decision import Deny, Forward, ForwardPlan, decide
from proxy.core.responseplan import REFERRER_POLICY, Leave, Relay, ResponseHead, plan_response
from proxy.core.snapshot import RuleSnapshot
from tests.core.test_decision import NOW, RULES, SNAP, Patron, snapshot, view


def decodable(coding: str | None) -> bool:
    """The codings the shell can decode, as contentcoding.can_decode says for these."""
    return coding in (None, "", "gzip", "br")


def plan_for(vendor_host: str) -> ForwardPlan:
    """The forward plan of a GET to ``vendor_host``."""
    decision = decide(view(vendor_host), Patron(), NOW, SNAP)
    assert isinstance(decision, Forward)
    return decision.plan


def head(status: int = 200, **kw: Any) -> ResponseHead:
    """A response head; ``headers`` default to the typed fields given."""
    headers = kw.pop("headers", None)
    if headers is None:
        names = {"content_type": "Content-Type", "content_encoding": "Content-Encoding"}
        headers = [(names[k], v) for k, v in kw.items() if k in names and v is not None]
    return ResponseHead(status, headers, **kw)


def relay(h: ResponseHead, method: str = "GET", vendor: str = "www.jstor.org") -> Relay:
    """The plan, which must be a Relay."""
    out = plan_response(SNAP, plan_for(vendor), h, method=method, can_decode=decodable)
    assert isinstance(out, Relay)
    return out


BODY_CASES = [
    ("html", head(content_type="text/html; charset=utf-8"), "GET", "rewrite"),
    ("small html", head(content_type="text/html", content_length=256 * 1024), "GET",
     "rewrite_small"),
    ("large html", head(content_type="text/html", content_length=256 * 1024 + 1), "GET",
     "rewrite"),
    ("gzip html", head(content_type="text/html", content_encoding="gzip"), "GET", "rewrite"),
    ("undecodable coding", head(content_type="text/html", content_encoding="compress"), "GET",
     "stream"),
    ("small image", head(content_type="image/png", content_length=100), "GET", "small"),
    ("large image", head(content_type="image/png", content_length=10**6), "GET", "stream"),
    ("image of unknown length", head(content_type="image/png"), "GET", "stream"),
    ("HEAD of html", head(content_type="text/html", content_length=10), "HEAD", "stream"),
    ("partial html", head(206, content_type="text/html"), "GET", "stream"),
    ("not modified", head(304, content_type="text/html"), "GET", "stream"),
    ("no content", head(204, content_type="text/html", content_length=0), "GET", "small"),
    ("untyped", head(content_length=5), "GET", "small"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "h", "method", "mode"), BODY_CASES)
def test_body_plan_per_content_type_and_encoding(
    name: str, h: ResponseHead, method: str, mode: str
) -> None:
    """#14: rewrite only a listed, decodable body that can exist; else small or stream."""
    assert relay(h, method).body == mode, name


def test_rewritten_body_drops_its_stale_framing_headers() -> None:
    """#14: a rewritten body loses Content-Length and Content-Encoding; a passed one keeps them."""
    raw = [("Content-Type", "text/html"), ("Content-Length", "9"), ("Content-Encoding", "gzip")]
    rewritten = relay(head(headers=raw, content_type="text/html", content_encoding="gzip"))
    passed = relay(head(headers=raw, content_type="text/html", content_encoding="compress"))
    added = ["Content-Security-Policy", "Referrer-Policy"]  # third_party: block, HTML (#18.8)
    assert [n for n, _ in rewritten.headers] == ["Content-Type", *added]
    assert [n for n, _ in passed.headers] == [*(n for n, _ in raw), *added]


def test_set_cookies_are_handed_to_the_shell_not_the_browser() -> None:
    """#14: Set-Cookie values leave the header map for the jar (or rescoping)."""
    out = relay(head(headers=[("Set-Cookie", "s=1; Path=/"), ("X-Other", "y")]))
    assert out.set_cookies == ["s=1; Path=/"]
    csp = SNAP.compiled["jstor"].csp  # third_party: block by default (#18.8)
    assert out.headers == [("X-Other", "y"), ("Content-Security-Policy", csp)]


def test_location_on_a_covered_host_is_mapped() -> None:
    """#14: a redirect to a covered host stays on the proxy, its Location mapped."""
    target = "https://www.jstor.org/next"
    out = relay(head(302, headers=[("Location", target)], location=target))
    (location,) = [v for n, v in out.headers if n == "Location"]
    assert location.startswith("http://") and "proxy.localhost" in location


@pytest.mark.parametrize(
    ("location", "status", "expected"),
    [
        ("https://away.example/x", 302, Leave("https://away.example/x", "away.example")),
        ("http://127.0.0.1/admin", 302, 502),
        ("javascript:alert(1)", 301, 502),
        ("https://elsewhere.example/x", 201, None),  # not a redirect: relayed as is
    ],
)  # fmt: skip
def test_location_policy(location: str, status: int, expected: Leave | int | None) -> None:
    """#14 R22: leaving page for a public site, 502 for internal or odd targets."""
    h = head(status, headers=[("Location", location)], location=location)
    out = plan_response(SNAP, plan_for("www.jstor.org"), h, method="GET", can_decode=decodable)
    if isinstance(expected, int):
        assert isinstance(out, Deny) and out.status == expected
    elif expected is None:
        assert isinstance(out, Relay)
    else:
        assert out == expected


def plan_in(snap: RuleSnapshot, vendor: str, h: ResponseHead) -> Relay:
    """The Relay plan of a GET to ``vendor`` under ``snap``."""
    decision = decide(view(vendor), Patron(), NOW, snap)
    assert isinstance(decision, Forward)
    out = plan_response(snap, decision.plan, h, method="GET", can_decode=decodable)
    assert isinstance(out, Relay)
    return out


def csp_of(out: Relay) -> list[str]:
    """The Content-Security-Policy values of a relayed response."""
    return [v for n, v in out.headers if n == "Content-Security-Policy"]


def test_third_party_block_adds_the_csp() -> None:
    """#14: a third_party: block rule's responses carry the proxy-only CSP; others don't."""
    blocking = snapshot([{**RULES[2], "third_party": "block"}])
    expected = blocking.compiled["bigdb"].csp
    assert expected is not None and "default-src 'self' http://proxy.localhost:8080" in expected
    assert csp_of(plan_in(blocking, "big.test", head())) == [expected]
    reporting = snapshot([{**RULES[2], "third_party": "report"}])
    assert csp_of(plan_in(reporting, "big.test", head())) == []


def test_third_party_block_is_the_default() -> None:
    """#18.8: a rule that does not name third_party is contained: its pages carry the CSP."""
    out = plan_in(snapshot([RULES[2]]), "big.test", head(content_type="text/html"))
    (csp,) = csp_of(out)
    assert csp.startswith("default-src 'self' http://proxy.localhost:8080 ")


def test_third_party_allow_hosts_join_the_rules_csp() -> None:
    """#18.8: a rule's third_party_allow hosts are in its CSP source list, and only in its."""
    fonts = {**RULES[2], "third_party_allow": ["fonts.gstatic.com", "*.mathjax.org"]}
    snap = snapshot([RULES[0], fonts])
    (csp,) = csp_of(plan_in(snap, "big.test", head()))
    default_src = csp.split(";")[0].split()
    assert "https://fonts.gstatic.com" in default_src and "https://*.mathjax.org" in default_src
    (other,) = csp_of(plan_in(snap, "www.jstor.org", head()))
    assert "gstatic" not in other and "mathjax" not in other


REFERRER_CASES = [
    ("html, vendor silent", "text/html; charset=utf-8", [], "strict-origin-when-cross-origin"),
    ("html, vendor weaker", "text/html", ["unsafe-url"], "strict-origin-when-cross-origin"),
    ("html, weaker last", "text/html", ["no-referrer, origin"], "strict-origin-when-cross-origin"),
    ("xhtml, vendor silent", "application/xhtml+xml", [], "strict-origin-when-cross-origin"),
    ("html, vendor stricter", "text/html", ["no-referrer"], "no-referrer"),
    ("html, unknown token last", "text/html", ["same-origin, bogus"], "same-origin"),
    ("image: vendor's own", "image/png", ["unsafe-url"], "unsafe-url"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ctype", "given", "expected"), REFERRER_CASES)
def test_relayed_html_gets_a_strict_referrer_policy(
    name: str, ctype: str, given: list[str], expected: str
) -> None:
    """#18.8: relayed HTML says strict-origin-when-cross-origin unless the vendor's is stricter."""
    headers = [("Content-Type", ctype), *(("Referrer-Policy", g) for g in given)]
    out = relay(head(headers=headers, content_type=ctype))
    policies = [v for n, v in out.headers if n.lower() == "referrer-policy"]
    assert policies == ([expected] if expected == REFERRER_POLICY else given), name


def test_cache_validators_are_dropped_from_responses() -> None:
    """#14: validators of a response the proxy may rewrite do not reach the browser."""
    out = relay(head(headers=[("ETag", '"x"'), ("Last-Modified", "Mon")], content_type=None))
    names = {n.lower() for n, _ in out.headers}
    assert "etag" not in names
