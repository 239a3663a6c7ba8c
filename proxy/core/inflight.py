"""Concurrent relayed requests per session and per client address (R3).

Contract: ``InFlight.enter(session, address, per_session, per_address)`` counts one request
in flight and returns None, or — when the session or the address already holds its cap —
counts nothing and names the cap that refused it; every successful ``enter`` must be
paired with ``leave`` (in a ``finally``). Two dicts of integers: an entry exists only while
a request is in flight, so memory is bounded by open connections. Keys are opaque (session
key, client address) and never leave the process. Pure; no locks (one event loop).
Not here: what a refused request gets (web/relay.py), the limits (settings.relay).
"""

from __future__ import annotations

from typing import Literal

CapName = Literal["session", "address"]


def _decrement(table: dict[str, int], key: str) -> None:
    left = table.get(key, 0) - 1
    if left > 0:
        table[key] = left
    else:
        table.pop(key, None)


class InFlight:
    """Counters of requests being relayed now."""

    __slots__ = ("_by_address", "_by_session")

    def __init__(self) -> None:
        self._by_session: dict[str, int] = {}
        self._by_address: dict[str, int] = {}

    def enter(
        self, session: str, address: str, per_session: int, per_address: int
    ) -> CapName | None:
        """Count one request, or name the cap that refuses it (nothing counted then)."""
        held = self._by_session.get(session, 0)
        if held >= per_session:
            return "session"
        from_address = self._by_address.get(address, 0)
        if from_address >= per_address:
            return "address"
        self._by_session[session] = held + 1
        self._by_address[address] = from_address + 1
        return None

    def leave(self, session: str, address: str) -> None:
        """The request is over (served, refused or failed)."""
        _decrement(self._by_session, session)
        _decrement(self._by_address, address)

    def held(self, session: str = "", address: str = "") -> tuple[int, int]:
        """How many requests a session and an address have in flight."""
        return self._by_session.get(session, 0), self._by_address.get(address, 0)
