"""Demo patron cards: valid barcodes for the demo libraries, imported into the demo registry.

Contract: ``demo_cards(libraries)`` returns the cards (valid check digits for each library's
scheme) and ``seed(registry, settings)`` imports them with ``--replace`` semantics, through
the same importer the ILS export uses. The demo prints these cards; they are fake.
Not here: the registry (stores/patrons.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from proxy.core.cards import make_check_digit
from proxy.core.settings import Settings
from proxy.stores.patron_import import ImportSummary, import_lines
from proxy.stores.patrons import PatronRegistry


@dataclass(frozen=True, slots=True)
class DemoCard:
    """One fake patron card."""

    library: str
    barcode: str
    secret: str
    ptype: str
    expires: date
    status: str
    note: str


# (library, serial, secret, ptype, days until expiry, status, what it shows)
DEMO_TABLE = (
    ("MAIN", 1, "1234", "adult", 365, "ok", "adult card: logs in, licensed for every database"),
    ("MAIN", 2, "2468", "student", 365, "ok", "student card"),
    ("MAIN", 3, "1111", "adult", -30, "ok", "expired card"),
    ("MAIN", 4, "2222", "adult", 365, "blocked", "blocked card"),
    ("MAIN", 5, "3333", "child", 365, "ok", "patron type without remote access"),
    ("WEST", 1, "Okafor", "faculty", 365, "ok", "logs in with last name; BigDB not licensed"),
    # #16: EAST's cards live in the demo ILS (proxy/demo/ils.py), checked over SIP2
    ("EAST", 1, "1357", "sip2", 365, "ok", "checked live over SIP2 by the demo ILS"),
    ("EAST", 2, "2468", "sip2", 365, "lost", "SIP2: card reported lost"),
    ("EAST", 3, "3579", "sip2", -30, "ok", "SIP2: expired card"),
)


def demo_cards(settings: Settings, today: date) -> list[DemoCard]:
    """The demo cards, with check digits valid for each library's scheme."""
    cards = []
    for code, serial, secret, ptype, days, status, note in DEMO_TABLE:
        library = settings.library(code)
        if library is None:
            continue
        body = library.prefix + str(serial).zfill(library.length - len(library.prefix) - 1)
        barcode = body + make_check_digit(body, library.check_digit)
        cards.append(
            DemoCard(code, barcode, secret, ptype, today + timedelta(days=days), status, note)
        )
    return cards


def seed(registry: PatronRegistry, settings: Settings, today: date) -> ImportSummary:
    """Import the demo cards (replacing whatever the demo registry held)."""
    lines = ["barcode,pin,last_name,library,ptype,expires,status"]  # registry libraries only
    for card in demo_cards(settings, today):
        lib = settings.library(card.library)
        if lib is not None and lib.auth.live:
            continue  # checked live (SIP2), never imported
        pin, last = (card.secret, "") if lib and lib.login_with == "pin" else ("", card.secret)
        lines.append(
            f"{card.barcode},{pin},{last},{card.library},{card.ptype},"
            f"{card.expires.isoformat()},{card.status}"
        )
    return import_lines(registry, lines, source="<demo cards>", settings=settings, replace=True)
