"""What the vendor review observed: upstream requests, responses, and the findings about them.

Contract: frozen plain values, built by the mitmproxy addon or from a saved capture, that every
review detector takes (``ObservedRequest``, ``ObservedFlow``) or returns (``Finding``), and
``request_parts``, the places in a request a detector searches. A ``Finding`` never holds a
canary's value, only its label.
Not here: the detectors (the modules ``proxy.core.review`` re-exports), mitmproxy types
(proxy/review/addon.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Header = tuple[str, str]
Invariant = Literal["P1", "P2", "P6"]


@dataclass(frozen=True, slots=True)
class ObservedRequest:
    """One upstream request as the vendor received it."""

    method: str
    host: str  # from the Host header, lowercase, no port
    path: str
    query: str
    headers: tuple[Header, ...]
    body: bytes = b""

    def values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive)."""
        lower = name.lower()
        return [v for n, v in self.headers if n.lower() == lower]


@dataclass(frozen=True, slots=True)
class ObservedFlow:
    """A request and what the vendor answered (HTML kept only as a bounded prefix)."""

    request: ObservedRequest
    status: int | None = None
    response_headers: tuple[Header, ...] = ()
    content_type: str = ""
    html: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """A failure of an invariant; ``what`` and ``where`` never hold a canary's value."""

    invariant: Invariant
    what: str
    where: str
    host: str


def request_parts(request: ObservedRequest) -> list[tuple[str, str]]:
    """(where, text) for every header, the path, the query and the body of a request."""
    parts = [(f"header {name}", value) for name, value in request.headers]
    parts += [("path", request.path), ("query", request.query)]
    if request.body:
        parts.append(("body", request.body.decode("utf-8", "replace")))
    return parts
