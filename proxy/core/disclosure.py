"""What the proxy sent to each vendor for one session: the transparency page's facts (#21).

Contract: ``Disclosures`` is an in-memory ledger keyed by session key, then vendor id: the
names of the request headers sent, the values of the harmless ones (``SHOWN_VALUES``), the
pseudonym header and value, and how many third-party references were blocked on that vendor's
pages. ``forget(session_key)`` (a session delete listener, like the cookie jars) drops it all:
it lives exactly as long as the session, is never written anywhere, and is bounded
(``MAX_VENDORS`` per session, ``MAX_HEADERS`` names per vendor).
Not here: deciding what to send (core/headers.py), the page (web/transparency.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

# Headers whose values the page shows: they say nothing about the patron beyond what any
# browser sends (RFC 9110 §12.5: content negotiation); the User-Agent is already reduced.
SHOWN_VALUES: Final = frozenset({"accept-language", "user-agent", "accept-encoding"})
MAX_VENDORS: Final = 256  # per session: the rule set bounds it anyway
MAX_HEADERS: Final = 64  # names remembered per vendor


@dataclass(slots=True)
class VendorDisclosure:
    """What one vendor received in this session."""

    header_names: set[str] = field(default_factory=set)
    shown_values: dict[str, str] = field(default_factory=dict)
    pseudonym: tuple[str, str] | None = None  # (header name, value)
    blocked_references: int = 0


class Disclosures:
    """Per session, per vendor: what was sent (in memory only; dies with the session)."""

    def __init__(self) -> None:
        self._by_session: dict[str, dict[str, VendorDisclosure]] = {}

    def _entry(self, session_key: str, vendor: str) -> VendorDisclosure | None:
        # get before setdefault: this runs on every relayed request, and setdefault would
        # build a new dict and a new VendorDisclosure each time only to throw them away.
        vendors = self._by_session.get(session_key)
        if vendors is None:
            vendors = self._by_session[session_key] = {}
        entry = vendors.get(vendor)
        if entry is None:
            if len(vendors) >= MAX_VENDORS:
                return None
            entry = vendors[vendor] = VendorDisclosure()
        return entry

    def sent(
        self,
        session_key: str,
        vendor: str,
        headers: Iterable[tuple[str, str]],
        pseudonym_header: str | None = None,
    ) -> None:
        """Record one upstream request's headers (values kept only for ``SHOWN_VALUES``)."""
        entry = self._entry(session_key, vendor)
        if entry is None:
            return
        for name, value in headers:
            lower = name.lower()
            if pseudonym_header and lower == pseudonym_header.lower():
                entry.pseudonym = (name, value)
            elif len(entry.header_names) < MAX_HEADERS:
                entry.header_names.add(lower)
                if lower in SHOWN_VALUES:
                    entry.shown_values[lower] = value

    def blocked(self, session_key: str, vendor: str, references: int) -> None:
        """Count third-party references blocked on this vendor's pages."""
        entry = self._entry(session_key, vendor)
        if entry is not None and references > 0:
            entry.blocked_references += references

    def of(self, session_key: str) -> dict[str, VendorDisclosure]:
        """This session's ledger (a copy of the mapping; vendors sorted by id)."""
        return dict(sorted(self._by_session.get(session_key, {}).items()))

    def forget(self, session_key: str) -> None:
        """The session ended."""
        self._by_session.pop(session_key, None)

    def __len__(self) -> int:
        return len(self._by_session)
