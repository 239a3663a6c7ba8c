"""The database menu (EZproxy's /menu): which databases a patron may pick, A–Z.

Contract: ``build_menu(rules, library=, ptype=, link_for=, query=)`` lists every database of
every rule that the library (and patron type) licenses — all of them for the public menu
(``library`` None) — except hidden ones (``hide``, EZproxy ``Title -Hide``), sorted by title
case-insensitively, filtered by ``query`` (every word in the title or description). A
database whose link cannot be built (``link_for`` raises ``ValueError``: its starting URL is
excluded by a never_proxy, or no rule covers it any more) is left out and named in
``Menu.skipped``: one broken entry never takes the page down. Pure.
Not here: HTML (web/pages.py), where the links lead (web/login.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from proxy.core.databases import Database
from proxy.core.rules import VendorRule

MAX_QUERY: Final = 200  # a filter longer than any title is cut, not refused


@dataclass(frozen=True, slots=True)
class MenuEntry:
    """One database on the menu."""

    rule_id: str
    database_id: str
    title: str
    description: str
    link: str


@dataclass(frozen=True, slots=True)
class Menu:
    """The entries to show and the ones left out because their link could not be built."""

    entries: tuple[MenuEntry, ...]
    skipped: tuple[tuple[str, str], ...]  # (database id, why) for the log


def build_menu(
    rules: Iterable[VendorRule],
    *,
    library: str | None,
    ptype: str | None,
    link_for: Callable[[VendorRule, Database], str],
    query: str = "",
) -> Menu:
    """The patron's menu (or the public one when ``library`` is None)."""
    words = query[:MAX_QUERY].casefold().split()
    entries: list[MenuEntry] = []
    skipped: list[tuple[str, str]] = []
    for rule in rules:
        for db in rule.all_databases():
            if db.hide or not _offered(db, library, ptype) or not _matches(db, words):
                continue
            try:
                link = link_for(rule, db)
            except ValueError as exc:
                skipped.append((db.id, str(exc) or type(exc).__name__))
                continue
            entries.append(MenuEntry(rule.id, db.id, db.title, db.description, link))
    entries.sort(key=lambda e: (e.title.casefold(), e.database_id))
    return Menu(tuple(entries), tuple(skipped))


def _offered(db: Database, library: str | None, ptype: str | None) -> bool:
    return library is None or db.licensed_to(library, ptype)


def _matches(db: Database, words: list[str]) -> bool:
    text = f"{db.title} {db.description}".casefold()
    return all(word in text for word in words)
