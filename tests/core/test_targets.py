"""Starting-point targets: ours, or refused — never an open redirect."""

from __future__ import annotations

import pytest

from proxy.core.hostmap import HostMap
from proxy.core.ruleset import RuleIndex
from proxy.core.targets import NotOurDatabase, resolve_target


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        (
            "https://www.jstor.org/stable/1?x=y",
            "http://www-jstor-org.proxy.localhost:8080/stable/1?x=y",
        ),
        ("http://www.jstor.org/", "http://www-jstor-org.proxy.localhost:8080/"),
        ("https://www.jstor.org", "http://www-jstor-org.proxy.localhost:8080/"),
        ("HTTPS://WWW.JSTOR.ORG/a", "http://www-jstor-org.proxy.localhost:8080/a"),
        (
            "https://search.bigdb.test/?q=a&b=c",
            "http://search-bigdb-test.proxy.localhost:8080/?q=a&b=c",
        ),
    ],
)
def test_covered_targets_map(index: RuleIndex, hostmap: HostMap, raw: str, mapped: str) -> None:
    """A URL on a covered host maps to its proxied URL (the rule decides the scheme)."""
    assert resolve_target(raw, index, hostmap).mapped_url(hostmap, "http") == mapped


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "javascript:alert(1)",
        "//evil.com/",
        "https://evil.com/",
        "https://jstor.org.evil.com/",
        "https://notjstor.org/",
        "https://www.jstor.org@evil.com/",
        "https://evil.com@www.jstor.org/",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://2852039166/",
        "https://www.jstor.org:22/",
        "https://www.jstor.org\\@evil.com/",
        "https://www.jstor.org/\r\nSet-Cookie: x",
        "ftp://www.jstor.org/",
        "https://ads.jstor.org/",
        "data:text/html,hi",
        "/relative",
    ],
)
def test_hostile_targets_are_refused(index: RuleIndex, hostmap: HostMap, raw: str) -> None:
    """Other schemes, hosts, userinfo tricks, IP literals and control characters are refused."""
    with pytest.raises(NotOurDatabase):
        resolve_target(raw, index, hostmap)
