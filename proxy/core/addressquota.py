"""A per-client-address request quota for requests relayed without a session (#17).

Contract: ``AddressQuota.admit(address, now)`` counts one request for ``address`` in the
current fixed window and answers False once the address has used ``per_window`` requests
in it. Memory is bounded: at most ``max_addresses`` addresses are tracked per window, and a
new window forgets the old one entirely. Pure: the caller passes the time (seconds).
Hand-written because the throttles in core/throttle.py count failed logins per card, with
lockouts; this is a plain rate cap with nothing to unlock.
Not here: which requests are anonymous (core/decision.py), the client address (clientaddr).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

# A page's fonts, preflights and API calls: a few dozen per page view; 600 a minute per
# address leaves room for a library's NAT while stopping a loop or a scraper.
DEFAULT_PER_MINUTE: Final = 600
MAX_ADDRESSES: Final = 100_000  # bounds memory under a spray of source addresses


@dataclass(slots=True)
class AddressQuota:
    """Fixed-window counts per address."""

    per_window: int = DEFAULT_PER_MINUTE
    window_seconds: float = 60.0
    max_addresses: int = MAX_ADDRESSES
    _window: int = -1
    _counts: dict[str, int] = field(default_factory=dict)

    def admit(self, address: str, now: float) -> bool:
        """True when ``address`` may send one more request now (and count it)."""
        window = int(now // self.window_seconds)
        if window != self._window:
            self._window, self._counts = window, {}
        used = self._counts.get(address)
        if used is None:
            if len(self._counts) >= self.max_addresses:
                return False  # fail closed: a flood of new addresses gets no anonymous relay
            used = 0
        if used >= self.per_window:
            return False
        self._counts[address] = used + 1
        return True
