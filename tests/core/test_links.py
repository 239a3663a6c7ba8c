"""#17: the link builder as a pure function, and reading link lists."""

from __future__ import annotations

import pytest

from proxy.core.hostmap import HostMap
from proxy.core.links import LinkReport, link_report, registrable_domain, urls_in
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex

INDEX = RuleIndex.build(
    [
        VendorRule.model_validate(
            {
                "id": "ebsco",
                "hosts": ["search.ebscohost.com"],
                "databases": [
                    {
                        "id": "asp",
                        "title": "Academic Search",
                        "url": "https://search.ebscohost.com/login.aspx?profile=asp",
                    },
                    {
                        "id": "cinahl",
                        "title": "CINAHL",
                        "libraries": ["NURSE"],
                        "url": "https://search.ebscohost.com/login.aspx?profile=cin",
                    },
                ],
                "libraries": ["MAIN"],
            }
        )
    ]
)
SUFFIXES = {"com", "uk", "co.uk", "org"}


def report(url: str) -> LinkReport:
    """The report under a test proxy with three member libraries."""
    return link_report(
        url,
        INDEX,
        HostMap("proxy.example.org", None),
        public_url="https://proxy.example.org",
        libraries=["MAIN", "NURSE", "EAST"],
        is_public_suffix=SUFFIXES.__contains__,
    )


def test_a_database_url_names_rule_database_link_and_licences() -> None:
    """A database's starting URL: the /login?url= link and each library's licence."""
    r = report("https://search.ebscohost.com/login.aspx?profile=cin")
    assert (r.covered, r.rule_id, r.database_id, r.title) == (True, "ebsco", "cinahl", "CINAHL")
    assert r.link == (
        "https://proxy.example.org/login?url=https://search.ebscohost.com/login.aspx?profile=cin"
    )
    assert r.licensed == {"MAIN": False, "NURSE": True, "EAST": False}


def test_another_url_on_the_platform_is_covered_by_the_platform() -> None:
    """A deep link names no database: the platform's licence (any database) applies."""
    r = report("https://search.ebscohost.com/detail?id=1")
    assert (r.covered, r.database_id) == (True, "")
    assert r.licensed == {"MAIN": True, "NURSE": True, "EAST": False}


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("https://www.newvendor.co.uk/x", "newvendor.co.uk"),
        ("https://a.b.example.com/", "example.com"),
        ("javascript:alert(1)", ""),
    ],
)
def test_an_uncovered_url_says_so_and_suggests_the_domain(url: str, suggestion: str) -> None:
    """Not covered, why, and the registrable domain to add."""
    r = report(url)
    assert not r.covered and r.why and r.suggestion == suggestion


def test_registrable_domain_stops_above_the_public_suffix() -> None:
    """One label above the longest public suffix."""
    assert registrable_domain("x.y.z.co.uk", SUFFIXES.__contains__) == "z.co.uk"


def test_link_lists_are_read_from_lines_or_csv() -> None:
    """One URL per line, or the first http(s) cell of each CSV row; other rows ignored."""
    text = (
        "https://a.example.org/1\n"
        'title,url\n"JSTOR, the archive",https://www.jstor.org/\n'
        "no url here\n\n"
    )
    assert urls_in(text) == ["https://a.example.org/1", "https://www.jstor.org/"]
