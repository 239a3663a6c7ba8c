"""The per-session ledger behind the transparency page."""

from __future__ import annotations

from proxy.core.disclosure import MAX_HEADERS, MAX_VENDORS, Disclosures

SENT = [
    ("Host", "www.acme.test"),
    ("Accept-Language", "en"),
    ("Cookie", "sid=SECRET-VALUE"),
    ("X-Patron-Pseudonym", "pseudo123"),
]


def test_names_kept_values_only_for_harmless_headers() -> None:
    """Header names are kept; a cookie's value is not; the pseudonym is kept apart."""
    ledger = Disclosures()
    ledger.sent("s1", "acme", SENT, "x-patron-pseudonym")
    entry = ledger.of("s1")["acme"]
    assert entry.header_names == {"host", "accept-language", "cookie"}
    assert entry.shown_values == {"accept-language": "en"}
    assert entry.pseudonym == ("X-Patron-Pseudonym", "pseudo123")
    assert "SECRET-VALUE" not in repr(entry)


def test_sessions_are_apart_and_forgotten() -> None:
    """One session's ledger never shows in another's; forget drops it all."""
    ledger = Disclosures()
    ledger.sent("s1", "acme", SENT)
    ledger.blocked("s1", "acme", 3)
    assert ledger.of("s2") == {}
    assert ledger.of("s1")["acme"].blocked_references == 3
    ledger.forget("s1")
    assert ledger.of("s1") == {} and len(ledger) == 0


def test_bounded_per_session() -> None:
    """A session holds at most MAX_VENDORS vendors and MAX_HEADERS names per vendor."""
    ledger = Disclosures()
    for i in range(MAX_VENDORS + 5):
        ledger.sent("s", f"v{i}", [(f"h{j}", "x") for j in range(MAX_HEADERS + 5)])
    vendors = ledger.of("s")
    assert len(vendors) == MAX_VENDORS
    assert all(len(v.header_names) == MAX_HEADERS for v in vendors.values())
