"""#17: the database menu as a pure function: licence, A–Z, hide, filter, broken entries."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.core.databases import Database
from proxy.core.menu import build_menu
from proxy.core.rules import VendorRule

RULES = tuple(
    VendorRule.model_validate(r)
    for r in [
        {
            "id": "ebsco",
            "hosts": ["search.ebscohost.com"],
            "databases": [
                {
                    "id": "cinahl",
                    "title": "CINAHL",
                    "url": "https://search.ebscohost.com/c",
                    "description": "Nursing and allied health",
                    "libraries": ["NURSE"],
                },
                {"id": "asp", "title": "academic Search", "url": "https://search.ebscohost.com/a"},
                {
                    "id": "hidden",
                    "title": "Admin",
                    "url": "https://search.ebscohost.com/h",
                    "hide": True,
                },
            ],
        },
        {
            "id": "broken",
            "title": "Broken",
            "url": "https://b.example.org/",
            "hosts": ["b.example.org"],
        },
        {
            "id": "jstor",
            "title": "JSTOR",
            "url": "https://www.jstor.org/",
            "hosts": ["www.jstor.org"],
            "libraries": ["MAIN"],
        },
    ]
)


def link(rule: VendorRule, db: Database) -> str:
    """The link, except for the broken rule, whose starting URL cannot be proxied."""
    if rule.id == "broken":
        raise ValueError("excluded by a never_proxy")
    return f"/login/{db.id}"


@pytest.mark.parametrize(
    ("library", "query", "titles"),
    [
        ("MAIN", "", ["academic Search", "JSTOR"]),  # A–Z, case-insensitive; hidden left out
        ("NURSE", "", ["academic Search", "CINAHL"]),
        (None, "", ["academic Search", "CINAHL", "JSTOR"]),  # the public menu: every one
        ("NURSE", "nursing", ["CINAHL"]),  # the description counts
        ("NURSE", "HEALTH allied", ["CINAHL"]),  # every word, any order and case
        ("MAIN", "zzz", []),
    ],
)
def test_the_menu_lists_licensed_databases_a_to_z(
    library: str | None, query: str, titles: list[str]
) -> None:
    """Per library, sorted by title, filtered by every word of the query."""
    menu = build_menu(RULES, library=library, ptype=None, link_for=link, query=query)
    assert [e.title for e in menu.entries] == titles


def test_a_broken_entry_is_skipped_and_named_never_fatal() -> None:
    """The database whose link cannot be built is left out and reported; the rest stay."""
    menu = build_menu(RULES, library="MAIN", ptype=None, link_for=link)
    assert ("broken", "excluded by a never_proxy") in menu.skipped
    assert [e.link for e in menu.entries] == ["/login/asp", "/login/jstor"]


def test_descriptions_reach_the_entries() -> None:
    """Each entry carries its database's description."""
    kw: dict[str, Any] = {"library": "NURSE", "ptype": None, "link_for": link}
    (cinahl,) = build_menu(RULES, query="cinahl", **kw).entries
    assert (cinahl.rule_id, cinahl.database_id, cinahl.description) == (
        "ebsco",
        "cinahl",
        "Nursing and allied health",
    )
