"""Vendor review detectors (proxy/core/review/) and the tracker list, table-driven."""

from __future__ import annotations

import base64
import hashlib

import pytest

from proxy.core.review.canaries import Canaries
from proxy.core.review.identifying import (
    fingerprint_surface,
    header_names,
    identifying_data,
    varying_headers,
)
from proxy.core.review.observed import ObservedRequest
from proxy.core.review.pseudonyms import pseudonym_check
from proxy.core.review.thirdparty import hosts_contacted, third_party_references
from proxy.core.review.vendorcookies import cookies_set
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex
from proxy.core.trackers import TRACKERS, tracker_for

CARD = "21234000000019"
PIN = "Pin7ReviewZ"
EMAIL = "quentin.reviewcanary@example.org"
CANARIES = Canaries.build(
    card=CARD,
    pin=PIN,
    name="Quentin Reviewcanary",
    email=EMAIL,
    client_ips=["203.0.113.9"],
    proxy_host="proxy.localhost",
)
INDEX = RuleIndex.build(
    [
        VendorRule.model_validate(
            {
                "id": "acme",
                "title": "Acme",
                "url": "https://www.acme.test/",
                "hosts": ["www.acme.test"],
                "domains": ["acme.test"],
                "pseudonym": {"header": "X-Patron-Pseudonym"},
            }
        ),
        VendorRule.model_validate(
            {
                "id": "bigdb",
                "title": "BigDB",
                "url": "https://search.bigdb.test/",
                "hosts": ["search.bigdb.test"],
                "pseudonym": {"header": "X-BigDB-User"},
            }
        ),
    ]
)


def req(
    headers: list[tuple[str, str]] | None = None,
    *,
    host: str = "www.acme.test",
    query: str = "",
    body: bytes = b"",
) -> ObservedRequest:
    """An upstream request with the given parts."""
    return ObservedRequest("GET", host, "/x", query, tuple(headers or []), body)


B64_CREDS = base64.b64encode(f"{CARD}:{PIN}".encode()).decode()


XFF = "X-Forwarded-For"
PROXY_REFERER = "http://www-acme-test.proxy.localhost/a"
MAIL_SHA256 = hashlib.sha256(EMAIL.encode()).hexdigest()


def sent(label: str, form: str, where: str) -> tuple[str, str]:
    """The (what, where) of a canary finding."""
    return (f"[{label}] sent ({form})", where)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (req([("Accept", "*/*")]), []),
        (req([("X-Leak", CARD)]), [sent("card number", "raw", "header X-Leak")]),
        (
            req(query=f"u={EMAIL.replace('@', '%40')}"),
            # the surname is part of the address, so it is found raw as well
            [sent("email", "percent-encoded", "query"), sent("surname", "raw", "query")],
        ),
        (
            req(query="q=Quentin+Reviewcanary"),
            [sent("name", "percent-encoded", "query"), sent("surname", "raw", "query")],
        ),
        (
            req([("X-Auth", f"Basic {B64_CREDS}")]),
            [
                sent("card number", "base64", "header X-Auth"),
                sent("PIN", "base64", "header X-Auth"),
            ],
        ),
        (req(body=f"pin={PIN}".encode()), [sent("PIN", "raw", "body")]),
        (req([("X-Mail", MAIL_SHA256)]), [sent("email", "sha256 hash", "header X-Mail")]),
        (req([(XFF, "10.0.0.1")]), [(f"identifying header {XFF} sent", f"header {XFF}")]),
        (req([("Via", "1.1 corp")]), [("identifying header Via sent", "header Via")]),
        (req([("Sec-CH-UA", "x")]), [("identifying header Sec-CH-UA sent", "header Sec-CH-UA")]),
        (
            req([("Cookie", "clamshell_session=abc; v=1")]),
            [("the proxy's session cookie sent", "header Cookie")],
        ),
        (req([("Cookie", "acme_session=abc")]), []),
        (req([("Referer", PROXY_REFERER)]), [("Referer names the proxy host", "header Referer")]),
        (req([("Referer", "https://www.acme.test/a")]), []),
        (req([("X-Client", "203.0.113.9")]), [sent("client address", "raw", "header X-Client")]),
    ],
)
def test_identifying_data(request_: ObservedRequest, expected: list[tuple[str, str]]) -> None:
    """Each leak is found once, in the right place and form, and all findings are P1."""
    found = identifying_data(request_, CANARIES)
    assert sorted((f.what, f.where) for f in found) == sorted(expected)
    assert all(f.invariant == "P1" for f in found)


@pytest.mark.parametrize(
    ("pin", "text", "hit"),
    [("1234", "x=1234&y=2", True), ("1234", "id=912345", False), ("1234", "a1234b", False)],
)
def test_short_canaries_match_whole_tokens_only(pin: str, text: str, hit: bool) -> None:
    """A short PIN matches only as a whole token, so page ids do not raise false alarms."""
    canaries = Canaries.build(card=CARD, pin=pin)
    assert bool(identifying_data(req(query=text), canaries)) is hit


def test_findings_never_hold_canary_values() -> None:
    """Findings name canaries by label only."""
    found = identifying_data(req([("X-Leak", f"{CARD} {EMAIL}")], query=f"p={PIN}"), CANARIES)
    text = repr(found).lower()
    assert found and CARD not in text and PIN.lower() not in text and EMAIL not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"card {CARD}!", "card [card number]!"),
        (f"{EMAIL.upper()}", "[email]"),
        ("nothing here", "nothing here"),
        ("Reviewcanaryship, reviewcanary", "Reviewcanaryship, [surname]"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    """Redaction replaces canary values, in any case, with their labels."""
    assert CANARIES.redact(text) == expected


def test_header_names_counts_requests() -> None:
    """Header names are counted once per request, lowercase, most frequent first."""
    reqs = [req([("Accept", "a"), ("accept", "b")]), req([("Accept", "a"), ("X-Y", "1")])]
    assert header_names(reqs) == {"accept": 2, "x-y": 1}


@pytest.mark.parametrize(
    ("sessions", "expected"),
    [
        ({"a": [req([("UA", "1"), ("P", "x")])], "b": [req([("UA", "1"), ("P", "y")])]}, ["p"]),
        ({"a": [req([("UA", "1")])], "b": [req([("UA", "1")])]}, []),
        ({"a": [req([("UA", "1")])]}, []),
        ({"a": [req([("UA", "1"), ("C", "k")])], "b": [req([("UA", "1")])]}, ["c"]),
    ],
)
def test_varying_headers(sessions: dict[str, list[ObservedRequest]], expected: list[str]) -> None:
    """A header varies when two sessions sent different sets of values for it."""
    assert varying_headers(sessions) == expected


def test_pseudonym_check_passes_clean_traffic() -> None:
    """Distinct pseudonyms, each in its own vendor's header, give no finding."""
    reqs = [
        req([("X-Patron-Pseudonym", "aaaa1111")]),
        req([("X-BigDB-User", "bbbb2222")], host="search.bigdb.test"),
        req([("Accept", "*/*")], host="search.bigdb.test"),
    ]
    uses, findings = pseudonym_check(reqs, INDEX)
    assert findings == []
    assert [(u.vendor, u.header, u.requests_with, u.requests_without) for u in uses] == [
        ("acme", "X-Patron-Pseudonym", 1, 0),
        ("bigdb", "X-BigDB-User", 1, 1),
    ]


@pytest.mark.parametrize(
    ("reqs", "what"),
    [
        ([req([("X-Patron-Pseudonym", "same1234")]),
          req([("X-BigDB-User", "same1234")], host="search.bigdb.test")],
         "one pseudonym value sent to 2 vendors"),
        ([req([("X-Patron-Pseudonym", "p1"), ("X-BigDB-User", "p2")])],
         "vendor 'bigdb''s pseudonym header sent"),
        ([req([("X-Patron-Pseudonym", "aaaa1111")], query="u=aaaa1111")],
         "its own pseudonym outside its header"),
        ([req([("X-BigDB-User", "bbbb2222")], host="search.bigdb.test"),
          req([("X-Patron-Pseudonym", "aaaa1111"), ("X-Ref", "bbbb2222")])],
         "another vendor's pseudonym outside its header"),
    ],
)  # fmt: skip
def test_pseudonym_check_failures(reqs: list[ObservedRequest], what: str) -> None:
    """Shared values, foreign headers and misplaced values each fail P2."""
    _, findings = pseudonym_check(reqs, INDEX)
    assert what in {f.what for f in findings}
    assert all(f.invariant == "P2" for f in findings)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=1", ("a", "", "session", False, False, "")),
        ("sid=x; Domain=.Acme.test; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax",
         ("sid", "acme.test", "max-age 3600 s", True, True, "Lax")),
        ("t=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
         ("t", "", "expires Wed, 21 Oct 2037 07:28:00 GMT", False, False, "")),
        ("gone=; Max-Age=0", ("gone", "", "deleted", False, False, "")),
    ],
)  # fmt: skip
def test_cookies_set(header: str, expected: tuple[object, ...]) -> None:
    """Set-Cookie is parsed into name, domain, lifetime and flags; its value is not kept."""
    (cookie,) = cookies_set([("Set-Cookie", header), ("Content-Type", "text/html")])
    got = (cookie.name, cookie.domain, cookie.lifetime, cookie.secure, cookie.httponly)
    assert (*got, cookie.samesite) == expected
    assert "=" not in cookie.value_digest and len(cookie.value_digest) == 12


def test_cookie_digest_changes_with_value() -> None:
    """Two values of one cookie give two digests (so the report can count changes)."""
    a, b = cookies_set([("Set-Cookie", "s=1"), ("Set-Cookie", "s=2")])
    assert a.value_digest != b.value_digest


def test_hosts_contacted_splits_rule_hosts_from_others() -> None:
    """Hosts a rule covers are counted apart from any other host."""
    reqs = [req(), req(), req(host="cdn.acme.test"), req(host="evil.example")]
    got = hosts_contacted(reqs, INDEX)
    assert got.rule_hosts == {"cdn.acme.test": 1, "www.acme.test": 2}
    assert got.other_hosts == {"evil.example": 1}


PAGE = """<html><head>
<script src="https://stats.trackly.test/t.js" async></script>
<script src="//www.googletagmanager.com/gtm.js?id=X"></script>
<script type="application/ld+json">{"@context": "https://schema.org"}</script>
<link rel="stylesheet" href="https://fonts.example/f.css">
<link rel="canonical" href="https://elsewhere.example/a">
<script src="https://cdn.acme.test/app.js"></script>
<script>navigator.sendBeacon("https://beacon.example/b")</script>
</head><body><img src='https://px.example/p.gif'><a href="https://linked.example/">x</a>
<iframe src="https://frame.example/"></iframe><img srcset="https://a.example/1.png 1x, /2.png 2x">
<img src="/local.png"></body></html>"""


def test_third_party_references() -> None:
    """Fetched third-party hosts are found per tag; rule hosts, links and JSON-LD are not."""
    refs = {(r.host, r.kind): r for r in third_party_references(PAGE, INDEX)}
    assert set(refs) == {
        ("stats.trackly.test", "script"),
        ("www.googletagmanager.com", "script"),
        ("fonts.example", "link"),
        ("beacon.example", "inline-script"),
        ("px.example", "img"),
        ("frame.example", "iframe"),
        ("a.example", "img"),
    }
    assert refs[("stats.trackly.test", "script")].tracker is None
    gtm = refs[("www.googletagmanager.com", "script")].tracker
    assert gtm is not None and gtm.owner == "Google"


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.google-analytics.com", "google-analytics.com"),
        ("stats.g.doubleclick.net", "doubleclick.net"),
        ("bam.nr-data.net", "nr-data.net"),
        ("dpm.demdex.net", "demdex.net"),
        ("stats.trackly.test", None),
        ("www.acmejournals.test", None),
        ("com", None),
    ],
)
def test_tracker_for(host: str, domain: str | None) -> None:
    """Known trackers match on their domain or any subdomain; the demo tracker is unknown."""
    found = tracker_for(host)
    assert (found.domain if found else None) == domain


def test_tracker_entries_are_documented() -> None:
    """Every tracker entry names its owner and a source, and is keyed by its own domain."""
    for domain, tracker in TRACKERS.items():
        assert tracker.domain == domain and tracker.owner and len(tracker.source) > 10


def test_fingerprint_surface() -> None:
    """Browser-describing headers and anything beyond the allow-list form the surface."""
    headers = [
        ("User-Agent", "UA"),
        ("Accept-Language", "de"),
        ("Range", "bytes=0-1"),
        ("X-Consortium", "demo"),
        ("Cookie", "a=b"),
        ("Sec-CH-UA-Platform", "Linux"),
        ("Content-Length", "12"),  # the pool's own framing of a POST body
    ]
    assert fingerprint_surface(headers) == {
        "user-agent": "UA",
        "accept-language": "de",
        "x-consortium": "demo",
        "sec-ch-ua-platform": "Linux",
    }
