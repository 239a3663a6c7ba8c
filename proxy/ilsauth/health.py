"""How each library's live back-ends are doing, in memory, for the admin console.

Contract: ``BackendHealth.record(library, backend, ok=..., latency=..., now=..., error=...)``
is called once per back-end call; ``rows()`` returns one frozen ``HealthRow`` per (library,
back-end) that has been asked: last success, last failure and its error type, the last and
the mean latency, counts. Nothing about the card or patron is recorded. One process's view
(each worker keeps its own); it starts empty at every start.
Not here: the checks themselves (backends.py), rendering (web/admin).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class HealthRow:
    """One back-end of one library."""

    library: str
    backend: str
    checks: int = 0
    failures: int = 0
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    last_latency_ms: float | None = None
    total_latency_ms: float = 0.0

    @property
    def mean_latency_ms(self) -> float | None:
        """Mean latency of all checks so far."""
        return self.total_latency_ms / self.checks if self.checks else None


class BackendHealth:
    """The registry of ``HealthRow``s (single event loop: no locking needed)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], HealthRow] = {}

    def record(
        self,
        library: str,
        backend: str,
        *,
        ok: bool,
        latency: float,
        now: datetime,
        error: str | None = None,
    ) -> None:
        """Count one call: ``latency`` in seconds, ``error`` an exception type name."""
        row = self._rows.get((library, backend)) or HealthRow(library, backend)
        ms = latency * 1000
        row = replace(
            row,
            checks=row.checks + 1,
            last_latency_ms=ms,
            total_latency_ms=row.total_latency_ms + ms,
        )
        if ok:
            row = replace(row, last_success=now)
        else:
            row = replace(row, failures=row.failures + 1, last_failure=now, last_error=error)
        self._rows[(library, backend)] = row

    def rows(self) -> tuple[HealthRow, ...]:
        """Every row, by library then back-end."""
        return tuple(self._rows[key] for key in sorted(self._rows))
