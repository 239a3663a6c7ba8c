"""#17: platforms and databases, the licence rule, anonymous entries and their checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from proxy.core.addressquota import AddressQuota
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex, check_ruleset, title_collisions

EBSCO: dict[str, Any] = {
    "id": "ebsco",
    "hosts": ["search.ebscohost.com"],
    "domains": ["ebscohost.com"],
    "databases": [
        {"id": "asp", "title": "Academic Search", "url": "https://search.ebscohost.com/?db=asp"},
        {
            "id": "cinahl",
            "title": "CINAHL",
            "url": "https://search.ebscohost.com/?db=cin",
            "libraries": ["NURSE"],
            "hide": True,
        },
    ],
    "libraries": ["MAIN", "WEST"],
}


def rule(**changes: Any) -> VendorRule:
    """The EBSCO platform with ``changes``."""
    return VendorRule.model_validate({**EBSCO, **changes})


def no_suffix(_: str) -> bool:
    """No name is a public suffix here."""
    return False


def test_a_platform_takes_title_and_url_from_its_first_database() -> None:
    """With databases, the rule's title/url default to the first database's."""
    r = rule()
    assert (r.title, r.url) == ("Academic Search", "https://search.ebscohost.com/?db=asp")


def test_a_single_database_rule_is_its_own_database() -> None:
    """A rule without databases is one database with its id, title, url and licence."""
    r = VendorRule.model_validate(
        {
            "id": "jstor",
            "title": "JSTOR",
            "url": "https://www.jstor.org/",
            "hosts": ["www.jstor.org"],
            "libraries": ["MAIN"],
            "description": "Journals",
            "hide": True,
        }
    )
    (db,) = r.all_databases()
    assert (db.id, db.title, db.libraries, db.description, db.hide) == (
        "jstor",
        "JSTOR",
        ("MAIN",),
        "Journals",
        True,
    )


@pytest.mark.parametrize(
    ("library", "ptype", "licensed"),
    [
        ("MAIN", None, True),  # the rule's libraries, inherited by Academic Search
        ("WEST", "adult", True),
        ("NURSE", None, True),  # licenses CINAHL only: may use the platform's hosts
        ("EAST", None, False),  # licenses none of its databases
    ],
)
def test_a_library_may_use_a_platform_if_it_licenses_one_database(
    library: str, ptype: str | None, licensed: bool
) -> None:
    """Licence rule: at least one database licensed → the platform's hosts (as EZproxy)."""
    assert rule().licensed_to(library, ptype) is licensed


def test_database_ptypes_limit_the_licence() -> None:
    """A database's ptypes limit who may use it; the platform follows its databases."""
    r = rule(databases=[{**EBSCO["databases"][0], "ptypes": ["staff"]}])
    assert r.licensed_to("MAIN", "staff") and not r.licensed_to("MAIN", "adult")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"databases": [{**EBSCO["databases"][0], "url": "https://evil.test/"}]},
            "not in this rule",
        ),
        ({"databases": [EBSCO["databases"][0], EBSCO["databases"][0]]}, "appears twice"),
        ({"databases": [{**EBSCO["databases"][0], "id": "Bad Id"}]}, "slug"),
        ({"anonymous": [{"patterns": ["https://evil.test/*.woff"]}]}, "cannot widen"),
        ({"anonymous": [{"patterns": ["*"]}]}, "allow_all"),
        ({"anonymous": [{"patterns": ["https://search.ebscohost.com/*"]}]}, "allow_all"),
        ({"anonymous": [{"patterns": ["/*"], "allow_all": True}]}, "and a reason"),
        ({"anonymous": [{"methods": ["DELETE"], "patterns": ["/api/*"]}]}, "never relayed"),
        ({"anonymous": [{"patterns": ["javascript://x"]}]}, "only http"),
    ],
)
def test_bad_databases_and_anonymous_entries_are_refused(
    change: dict[str, Any], message: str
) -> None:
    """Each mistake is refused with a message naming it."""
    with pytest.raises(ValidationError, match=message):
        rule(**change)


@pytest.mark.parametrize(
    ("method", "host", "path", "allowed"),
    [
        ("GET", "search.ebscohost.com", "/fonts/a.woff2?v=1", True),
        ("HEAD", "search.ebscohost.com", "/fonts/a.woff2", True),
        ("POST", "search.ebscohost.com", "/fonts/a.woff2", False),  # not in the method set
        ("GET", "search.ebscohost.com", "/account", False),
        ("OPTIONS", "api.ebscohost.com", "/v1/x", True),
        ("OPTIONS", "other.ebscohost.com", "/v1/x", False),  # the URL pattern names api. only
        ("GET", "search.ebscohost.com", "/", True),  # allow_all entry on its own host
        ("GET", "api.ebscohost.com", "/", False),
    ],
)
def test_anonymous_entries_match_method_host_and_path(
    method: str, host: str, path: str, allowed: bool
) -> None:
    """Path globs apply on the rule's hosts; URL patterns on their own host only."""
    r = rule(
        anonymous=[
            {"patterns": ["*.woff2*"]},
            {"methods": ["OPTIONS"], "patterns": ["https://api.ebscohost.com/v1/*"]},
            {"patterns": ["https://search.ebscohost.com/"]},  # that one URL only
        ]
    )
    assert r.anonymous_allows(method, "https", host, path) is allowed


def test_a_match_everything_pattern_with_a_reason_is_allowed() -> None:
    """allow_all: true with a reason lets a whole host through, and only that host."""
    wide = rule(
        anonymous=[
            {
                "patterns": ["https://api.ebscohost.com/*"],
                "allow_all": True,
                "reason": "a public JSON API",
            }
        ]
    )
    assert wide.anonymous_allows("GET", "https", "api.ebscohost.com", "/anything?x")
    assert not wide.anonymous_allows("GET", "https", "search.ebscohost.com", "/anything")


def test_set_checks_report_never_proxied_starting_points_and_id_collisions() -> None:
    """rules check: a database excluded by another rule's never_proxy, a reused id."""
    other = VendorRule.model_validate(
        {
            "id": "google",
            "title": "G",
            "url": "https://books.example.org/",
            "hosts": ["books.example.org"],
            "never_proxy": ["ebscohost.com"],
        }
    )
    twin = VendorRule.model_validate(
        {
            "id": "twin",
            "title": "Twin",
            "url": "https://x.example.net/",
            "hosts": ["x.example.net"],
            "databases": [{"id": "asp", "title": "CINAHL", "url": "https://x.example.net/"}],
        }
    )
    problems = [p.message for p in check_ruleset([rule(), other, twin], is_public_suffix=no_suffix)]
    assert any("excluded by google's never_proxy 'ebscohost.com'" in p for p in problems)
    assert any("database id 'asp' is also in rule 'ebsco'" in p for p in problems)
    (title,) = title_collisions([rule(), twin])
    assert "/login/cinahl goes to ebsco/cinahl" in title.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("asp", "asp"),
        ("cinahl", "cinahl"),
        ("academic-search", "asp"),  # by title
        ("Academic Search", "asp"),
        ("ebsco", "asp"),  # the platform's id: its first database
        ("nope", None),
    ],
)
def test_login_names_pick_a_database(name: str, expected: str | None) -> None:
    """/login/<database id or title> finds the database (ids win over titles)."""
    found = RuleIndex.build([rule()]).database_named(name)
    assert (found[1].id if found else None) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://search.ebscohost.com/?db=cin", "cinahl"),
        ("https://search.ebscohost.com/?db=asp&x=1", "asp"),  # longest starting URL prefix
        ("https://search.ebscohost.com/other", None),  # the platform only
    ],
)
def test_a_starting_url_picks_its_database_for_statistics(url: str, expected: str | None) -> None:
    """/login?url= counts per database when the link says which, else per platform."""
    r = rule()
    db = RuleIndex.build([r]).database_for_url(r, url)
    assert (db.id if db else None) == expected


def test_the_anonymous_quota_is_per_address_and_per_window() -> None:
    """N requests per address per window; another address has its own; a new window resets."""
    quota = AddressQuota(per_window=2, window_seconds=60, max_addresses=2)
    assert [quota.admit("a", 0.0) for _ in range(3)] == [True, True, False]
    assert quota.admit("b", 1.0) and not quota.admit("c", 1.0)  # table full: fail closed
    assert quota.admit("a", 60.0)
