"""Concurrent relayed requests per session and per address (R3)."""

from __future__ import annotations

from proxy.core.inflight import InFlight


def test_a_session_past_its_cap_is_refused_and_others_are_not() -> None:
    """R3: the session cap refuses that session only; leaving frees a slot."""
    book = InFlight()
    assert [book.enter("a", "192.0.2.1", 2, 10) for _ in range(2)] == [None, None]
    assert book.enter("a", "192.0.2.1", 2, 10) == "session"
    assert book.enter("b", "192.0.2.1", 2, 10) is None
    book.leave("a", "192.0.2.1")
    assert book.enter("a", "192.0.2.1", 2, 10) is None


def test_an_address_past_its_cap_is_refused() -> None:
    """R3: the address cap counts every session from one address."""
    book = InFlight()
    assert book.enter("a", "192.0.2.1", 5, 2) is None
    assert book.enter("b", "192.0.2.1", 5, 2) is None
    assert book.enter("c", "192.0.2.1", 5, 2) == "address"
    assert book.enter("c", "192.0.2.2", 5, 2) is None


def test_counters_vanish_when_nothing_is_in_flight() -> None:
    """Entries exist only while requests are in flight (memory bounded by connections)."""
    book = InFlight()
    book.enter("a", "192.0.2.1", 5, 5)
    book.enter("a", "192.0.2.1", 5, 5)
    book.leave("a", "192.0.2.1")
    assert book.held("a", "192.0.2.1") == (1, 1)
    book.leave("a", "192.0.2.1")
    assert book.held("a", "192.0.2.1") == (0, 0)
    assert not book._by_session and not book._by_address
