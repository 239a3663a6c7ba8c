"""Checks across rules and the host → rule index."""

from __future__ import annotations

from typing import Any

from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex, check_ruleset


def make(rule_id: str, **extra: Any) -> VendorRule:
    """A rule for ``<id>.org``."""
    raw: dict[str, Any] = {
        "id": rule_id,
        "title": rule_id.title(),
        "url": f"https://www.{rule_id}.org/",
        "hosts": [f"www.{rule_id}.org"],
    }
    return VendorRule.model_validate({**raw, **extra})


def never_public(_: str) -> bool:
    """No domain is a public suffix."""
    return False


def test_clean_set_has_no_problems() -> None:
    """Distinct ids and hosts produce no problems."""
    assert check_ruleset([make("a"), make("b")], is_public_suffix=never_public) == []


def test_duplicate_id_and_shared_host_are_reported() -> None:
    """A duplicate id and a host claimed by two vendors are both reported at their keys."""
    other = make("b", hosts=["www.b.org", "www.a.org"])
    problems = check_ruleset([make("a"), make("a"), other], is_public_suffix=never_public)
    keys = {(p.rule_index, p.key) for p in problems}
    assert (1, ("id",)) in keys
    assert (2, ("hosts", 1)) in keys


def test_local_names_refused() -> None:
    """localhost-like hosts are never vendor hosts."""
    bad = make("a", hosts=["www.a.org", "app.localhost"])
    problems = check_ruleset([bad], is_public_suffix=never_public)
    assert [p.key for p in problems] == [("hosts", 1)]


def test_index_finds_exact_hosts_and_domains() -> None:
    """Lookup prefers exact hosts, walks domain suffixes, and honours never_proxy."""
    a = make("a", domains=["a.org"], never_proxy=["ads.a.org"])
    b = make("b", hosts=["www.b.org", "http://legacy.b.org:8080"])
    index = RuleIndex.build([a, b])
    assert index.rule_for("www.a.org") is a
    assert index.rule_for("deep.cdn.a.org") is a
    assert index.rule_for("ads.a.org") is None
    assert index.rule_for("x.ads.a.org") is None
    assert index.rule_for("legacy.b.org") is b
    assert index.rule_for("b.org") is None
    assert index.origin_for("legacy.b.org").url_prefix() == "http://legacy.b.org:8080"
    assert index.origin_for("cdn.a.org").url_prefix() == "https://cdn.a.org"


def test_R17_rules_covering_the_proxy_host_are_refused() -> None:
    """R17: a rule may not name the proxy's host, a host under it, or a domain above it."""
    rules = [
        make("a", hosts=["www.a.org", "proxy.lib.org"]),
        make("b", hosts=["www.b.org", "www-jstor-org.proxy.lib.org"]),
        make("c", domains=["lib.org"]),
    ]
    problems = check_ruleset(rules, is_public_suffix=never_public, proxy_host="proxy.lib.org")
    assert [(p.rule_index, p.key) for p in problems] == [
        (0, ("hosts", 1)),
        (1, ("hosts", 1)),
        (2, ("domains", 0)),
    ]
    assert all("the proxy would relay to itself" in p.message for p in problems)
    assert check_ruleset(rules, is_public_suffix=never_public) == []  # no proxy host: no check


def test_R17_wildcard_dns_and_shared_hosting_domains_are_refused() -> None:
    """R17: nip.io-style names are refused anywhere; shared hosting domains as a domain."""
    rules = [
        make("a", hosts=["www.a.org", "10.0.0.1.nip.io"]),
        make("b", domains=["sslip.io"]),
        make("c", domains=["amazonaws.com"]),
        make("d", hosts=["www.d.org", "d123.cloudfront.net"]),  # one tenant's host: fine
    ]
    problems = check_ruleset(rules, is_public_suffix=never_public)
    assert [(p.rule_index, p.key) for p in problems] == [
        (0, ("hosts", 1)),
        (1, ("domains", 0)),
        (2, ("domains", 0)),
    ]
    assert "wildcard-DNS" in problems[0].message and "shared hosting" in problems[2].message
