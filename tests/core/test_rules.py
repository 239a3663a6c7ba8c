"""Vendor rule schema: one rule on its own."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from proxy.core.rules import VendorRule

BASE: dict[str, Any] = {
    "id": "jstor",
    "title": "JSTOR",
    "url": "https://www.jstor.org/",
    "hosts": ["www.jstor.org"],
}


def rule(**changes: Any) -> VendorRule:
    """A valid rule with some keys changed."""
    return VendorRule.model_validate({**BASE, **changes})


def error_locs(**changes: Any) -> list[tuple[Any, ...]]:
    """The locations pydantic reports for an invalid rule."""
    with pytest.raises(ValidationError) as info:
        rule(**changes)
    return [e["loc"] for e in info.value.errors()]


def test_minimal_rule_gets_privacy_first_defaults() -> None:
    """#18.8: a rule with only required keys keeps cookies server-side and blocks third
    parties, allowing none."""
    r = rule()
    assert r.cookies == "server_side"
    assert r.third_party == "block"
    assert r.third_party_allow == ()
    assert r.pseudonym is None
    assert "text/html" in r.rewrite.content_types
    assert "text/plain" not in r.rewrite.content_types


def test_user_agent_is_reduced_by_default_and_may_be_chosen() -> None:
    """#18: headers.user_agent defaults to reduced; pass and generic stay available."""
    assert rule().headers.user_agent == "reduced"
    for choice in ("pass", "reduced", "generic"):
        assert rule(headers={"user_agent": choice}).headers.user_agent == choice
    assert error_locs(headers={"user_agent": "full"}) == [("headers", "user_agent")]


@pytest.mark.parametrize(
    "pseudonym",
    [
        {"rotate": "never"},
        {"rotate": "never", "never_reason": ""},
        {"rotate": "never", "never_reason": "  "},
    ],
)
def test_rotate_never_needs_a_reason(pseudonym: dict[str, str]) -> None:
    """#18: rotate: never without a never_reason is refused at pseudonym.rotate."""
    assert ("pseudonym", "rotate") in error_locs(pseudonym=pseudonym)


def test_rotate_never_with_a_reason_and_reason_only_with_never() -> None:
    """#18: a stated reason makes never valid; a reason beside another rotation is refused."""
    reason = "the vendor's saved searches need a stable id (contract 2026-04)"
    kept = rule(pseudonym={"rotate": "never", "never_reason": reason}).pseudonym
    assert kept is not None and (kept.rotate, kept.never_reason) == ("never", reason)
    assert ("pseudonym", "rotate") in error_locs(pseudonym={"rotate": "daily", "never_reason": "x"})


def test_third_party_allow_hosts_are_matched() -> None:
    """#18.8: third_party_allow names hosts exactly, or a domain's subdomains with ``*.``."""
    r = rule(third_party_allow=["Fonts.Gstatic.com", "*.mathjax.org"])
    assert r.third_party_allow == ("fonts.gstatic.com", "*.mathjax.org")
    assert r.third_party_allowed("fonts.gstatic.com") and r.third_party_allowed("cdn.mathjax.org")
    assert not r.third_party_allowed("gstatic.com") and not r.third_party_allowed("mathjax.org")
    assert not r.third_party_allowed("evilmathjax.org")


def test_third_party_allow_needs_block() -> None:
    """#18.8: third_party_allow with report or allow is an error (it would mean nothing)."""
    with pytest.raises(ValidationError, match="third_party_allow applies only"):
        rule(third_party="report", third_party_allow=["fonts.gstatic.com"])


@pytest.mark.parametrize(
    ("entry", "prefix"),
    [
        ("www.jstor.org", "https://www.jstor.org"),
        ("WWW.JSTOR.ORG/", "https://www.jstor.org"),
        ("http://old.jstor.org", "http://old.jstor.org"),
        ("www.jstor.org:8443", "https://www.jstor.org:8443"),
    ],
)
def test_host_entries_are_normalised(entry: str, prefix: str) -> None:
    """Host entries accept EZproxy forms (scheme, port, stray slash) and normalise them."""
    r = rule(hosts=[entry], url=prefix + "/")
    assert r.hosts == (prefix,)


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"hosts": ["www.jstor.org", "www..jstor.org"]}, ("hosts", 1)),
        ({"hosts": ["www.jstor.org", "10.0.0.1"]}, ("hosts", 1)),
        ({"domains": ["com"]}, ("domains", 0)),
        ({"id": "Bad Id"}, ("id",)),
        ({"cookies": "sometimes"}, ("cookies",)),
        ({"third_party": "maybe"}, ("third_party",)),
        ({"third_party_allow": ["https://fonts.gstatic.com"]}, ("third_party_allow", 0)),
        ({"third_party_allow": ["cdn.test", "cdn.test:443"]}, ("third_party_allow", 1)),
        ({"third_party_allow": ["cdn.test/js"]}, ("third_party_allow", 0)),
        ({"third_party_allow": ["localhost"]}, ("third_party_allow", 0)),
        ({"third_party_allow": ["*"]}, ("third_party_allow", 0)),
        ({"hostz": ["x.org"]}, ("hostz",)),
        ({"headers": {"set": {"X-A": "a\r\nInjected: 1"}}}, ("headers", "set")),
        ({"headers": {"allow": ["Bad Header"]}}, ("headers", "allow")),
        ({"pseudonym": {"rotate": "hourly"}}, ("pseudonym", "rotate")),
        (
            {"rewrite": {"find_replace": [{"find": "a", "url_pattern": "("}]}},
            ("rewrite", "find_replace", 0, "url_pattern"),
        ),
    ],
)
def test_invalid_rules_point_at_the_key(changes: dict[str, Any], loc: tuple[Any, ...]) -> None:
    """Each invalid value is reported at its own key path."""
    assert loc in error_locs(**changes)


def test_url_must_be_covered_by_the_rule() -> None:
    """The starting URL must be on one of the rule's hosts or domains."""
    with pytest.raises(ValidationError, match="not in this rule's hosts"):
        rule(url="https://www.example.org/")


def test_public_suffix_domain_refused_with_context() -> None:
    """With the public-suffix test in context, 'co.uk' is refused as a domain."""
    with pytest.raises(ValidationError, match="public suffix"):
        VendorRule.model_validate(
            {**BASE, "domains": ["co.uk"]}, context={"is_public_suffix": lambda d: d == "co.uk"}
        )


def test_undefined_library_refused_with_context() -> None:
    """A library code proxy.yaml does not define is refused when the codes are known."""
    with pytest.raises(ValidationError, match="'NOPE' is not defined"):
        VendorRule.model_validate(
            {**BASE, "libraries": ["MAIN", "NOPE"]}, context={"library_codes": frozenset({"MAIN"})}
        )


@pytest.mark.parametrize(
    ("host", "covered"),
    [
        ("www.jstor.org", True),
        ("WWW.JSTOR.ORG", True),
        ("cdn.jstor.org", True),
        ("jstor.org", True),
        ("notjstor.org", False),
        ("jstor.org.evil.com", False),
        ("ads.jstor.org", False),
        ("x.ads.jstor.org", False),
    ],
)
def test_covers_respects_domains_and_never_proxy(host: str, covered: bool) -> None:
    """Domains cover subdomains with exact label boundaries; never_proxy wins."""
    r = rule(domains=["jstor.org"], never_proxy=["ads.jstor.org"])
    assert r.covers(host) is covered


@pytest.mark.parametrize(
    ("libraries", "ptypes", "library", "ptype", "ok"),
    [
        ("all", None, "MAIN", "adult", True),
        (["MAIN"], None, "WEST", "adult", False),
        (["MAIN"], ["faculty"], "MAIN", "adult", False),
        (["MAIN"], ["faculty"], "MAIN", "faculty", True),
    ],
)
def test_licensed_to(libraries: Any, ptypes: Any, library: str, ptype: str, ok: bool) -> None:
    """Licensing is per member library and optionally per patron type."""
    assert rule(libraries=libraries, ptypes=ptypes).licensed_to(library, ptype) is ok


def error_messages(**changes: Any) -> dict[tuple[Any, ...], str]:
    """Location → message of each error for an invalid rule."""
    with pytest.raises(ValidationError) as info:
        rule(**changes)
    return {e["loc"]: e["msg"] for e in info.value.errors()}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Content-Length", "may not be set by a rule"),
        ("transfer-encoding", "never sent to vendors"),  # hop-by-hop: the existing message
        ("Expect", "may not be set by a rule"),
        ("Proxy-Foo", "may not be set by a rule"),
        ("Host", "never sent to vendors"),
        ("Cookie", "never sent to vendors"),
        ("Authorization", "never sent to vendors"),
    ],
)
def test_R17_rules_may_not_set_framing_or_proxy_headers(name: str, message: str) -> None:
    """R17: headers.set refuses Content-Length and every framing, proxy or identifying header."""
    messages = error_messages(headers={"set": {name: "1"}})
    assert message in messages[("headers", "set")]


@pytest.mark.parametrize(
    "name",
    [
        "Cookie",
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Authorization",
        "X-Forwarded-For",
        "Proxy-Authorization",
        "Connection",
        "Accept",
    ],
)
def test_R17_pseudonym_header_may_not_be_a_special_header(name: str) -> None:
    """R17: the pseudonym never rides in a framing, identifying or browser-sent header."""
    messages = error_messages(pseudonym={"header": name})
    assert "cannot carry the pseudonym" in messages[("pseudonym", "header")]


def test_R17_a_custom_pseudonym_header_and_set_header_still_pass() -> None:
    """R17: ordinary custom headers stay allowed for pseudonyms and headers.set."""
    r = rule(pseudonym={"header": "X-Vendor-User"}, headers={"set": {"X-Api-Key": "k"}})
    assert r.pseudonym is not None and r.pseudonym.header == "X-Vendor-User"


@pytest.mark.parametrize(
    "entry",
    ["www.jstor.org:22", "www.jstor.org:25", "http://www.jstor.org:6379", "x.jstor.org:3306"],
)
def test_R17_non_web_ports_are_refused(entry: str) -> None:
    """R17: a host naming SSH, SMTP, Redis, MySQL… ports is refused at its entry."""
    messages = error_messages(hosts=["www.jstor.org", entry], domains=["jstor.org"])
    assert "is not a web port" in messages[("hosts", 1)]


@pytest.mark.parametrize(
    "entry",
    ["www.jstor.org:8080", "www.jstor.org:8443", "http://www.jstor.org:80", "a.jstor.org:9443"],
)
def test_R17_web_ports_are_allowed(entry: str) -> None:
    """R17: 80, 443, 8080, 8443 and other ports from 1024 not in the non-web table pass."""
    assert len(rule(hosts=["www.jstor.org", entry]).hosts) == 2


def test_R17_url_with_a_non_web_port_is_refused() -> None:
    """R17: the starting URL may not name a non-web port either."""
    assert "is not a web port" in error_messages(url="https://www.jstor.org:22/")[("url",)]
