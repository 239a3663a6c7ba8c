"""Aggregate usage counters: statistics without reading histories (DESIGN P3).

Contract: ``UsageCounters`` accumulates counts in memory keyed only by (day, vendor, member
library) — never by patron, session or URL — and hands them out as deltas with
``drain()``. Unique patrons per key are counted with a set of salted hashes whose salt is
random per day and never stored: at the end of the day the set and its salt are discarded,
so the count cannot be joined to anyone, even by us. Pure: values in, values out.
Not here: persistence (stores/stats.py), when to flush (the app's background task).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Final

# Content types counted as document downloads (full-text PDFs, e-books, office files).
DOWNLOAD_TYPES: Final = frozenset(
    {
        "application/pdf",
        "application/epub+zip",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/octet-stream",
        "application/zip",
        "application/x-research-info-systems",
        "application/x-bibtex",
    }
)
MAX_UNIQUE_PER_KEY: Final = 1_000_000  # bounds memory; beyond it the count saturates
# Unknown hosts are named by whoever sends a link: at most this many distinct hosts per
# flush, so a flood of made-up names cannot grow memory or the statistics file without bound.
MAX_UNKNOWN_HOSTS: Final = 1_000

UsageKey = tuple[date, str, str]  # (day, vendor id, member library code)


@dataclass(slots=True)
class UsageDelta:
    """Counts for one key since the last drain."""

    sessions: int = 0
    requests: int = 0
    bytes: int = 0
    downloads: int = 0
    uniques: int = 0  # the current unique count for the day (absolute, not a delta)


@dataclass(slots=True)
class Drained:
    """Everything accumulated since the last drain."""

    usage: dict[UsageKey, UsageDelta] = field(default_factory=dict)
    logins: Counter[tuple[date, str, str]] = field(default_factory=Counter)  # day, lib, outcome
    third_party: Counter[tuple[date, str, str, str]] = field(default_factory=Counter)
    # (day, vendor, host, "referenced" | "blocked")
    # #17: starting points followed, per database where the link says which (else the
    # platform's id twice): (day, rule id, database id, library)
    starts: Counter[tuple[date, str, str, str]] = field(default_factory=Counter)
    # #17 (EZproxy needhost): links to hosts no rule covers, per host per day; no patron data
    unknown_hosts: Counter[tuple[date, str]] = field(default_factory=Counter)
    patrons: dict[UsageKey, set[str]] = field(default_factory=dict)  # only with share_patrons

    def __bool__(self) -> bool:
        return bool(
            self.usage or self.logins or self.third_party or self.starts or self.unknown_hosts
        )


def is_download(content_type: str) -> bool:
    """True for document downloads (by media type, parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() in DOWNLOAD_TYPES


def is_download_answer(method: str, status: int, content_type: str) -> bool:
    """A document the vendor is sending: a full 200 answer to GET/POST, typed as one (an
    untyped redirect or a HEAD answer is not a download)."""
    return status == 200 and method != "HEAD" and is_download(content_type)


class UsageCounters:
    """In-memory aggregate counters; one per process."""

    def __init__(self, *, share_patrons: bool = False) -> None:
        """``share_patrons`` (#15, Redis): also hand out, per key, the patron ids seen since
        the last drain, so that the shell can count uniques across processes."""
        self._share_patrons = share_patrons
        self._pending = Drained()
        self._salt_day: date | None = None
        self._salt = b""
        self._seen: dict[UsageKey, set[bytes]] = {}
        self._sessions: dict[UsageKey, set[bytes]] = {}

    def request(
        self,
        day: date,
        vendor: str,
        library: str,
        *,
        patron: str,
        session: str,
        size: int,
        content_type: str = "",
        download: bool | None = None,
    ) -> None:
        """Count one relayed response (``patron`` and ``session`` are only hashed, in memory);
        ``download`` when the caller knows it (the relay: status and method), else by type."""
        key = (day, vendor, library)
        delta = self._delta(key)
        delta.requests += 1
        delta.bytes += size
        delta.downloads += is_download(content_type) if download is None else download
        before = len(self._sessions.get(key, ()))
        if self._remember(self._sessions, key, session) > before:
            delta.sessions += 1  # this session's first request to this vendor today
        delta.uniques = self._remember(self._seen, key, patron)
        if self._share_patrons:
            self._pending.patrons.setdefault(key, set()).add(patron)

    def login(self, day: date, library: str, outcome: str) -> None:
        """Count a login success (``ok``) or failure by reason."""
        self._pending.logins[(day, library, outcome)] += 1

    def third_party(
        self, day: date, vendor: str, host: str, *, blocked: bool, count: int = 1
    ) -> None:
        """Count references to a third-party host by a vendor's pages (or blocked ones)."""
        kind = "blocked" if blocked else "referenced"
        self._pending.third_party[(day, vendor, host, kind)] += count

    def start(self, day: date, vendor: str, database: str, library: str) -> None:
        """#17: a patron followed a starting point to ``database`` of ``vendor``."""
        self._pending.starts[(day, vendor, database, library)] += 1

    def unknown_host(self, day: date, host: str) -> None:
        """#17: a link led to ``host``, which no rule covers (EZproxy's needhost)."""
        key = (day, host)
        if key in self._pending.unknown_hosts or len(self._pending.unknown_hosts) < (
            MAX_UNKNOWN_HOSTS
        ):
            self._pending.unknown_hosts[key] += 1

    def drain(self) -> Drained:
        """Hand out everything since the last drain and start afresh."""
        drained, self._pending = self._pending, Drained()
        return drained

    def restore(self, drained: Drained) -> None:
        """Put back a drain that could not be written (the next flush retries it)."""
        for key, delta in drained.usage.items():
            mine = self._delta(key)
            mine.sessions += delta.sessions
            mine.requests += delta.requests
            mine.bytes += delta.bytes
            mine.downloads += delta.downloads
            mine.uniques = max(mine.uniques, delta.uniques)
        self._pending.logins.update(drained.logins)
        self._pending.third_party.update(drained.third_party)
        self._pending.starts.update(drained.starts)
        self._pending.unknown_hosts.update(drained.unknown_hosts)
        for key, patrons in drained.patrons.items():
            self._pending.patrons.setdefault(key, set()).update(patrons)

    def _delta(self, key: UsageKey) -> UsageDelta:
        delta = self._pending.usage.get(key)
        if delta is None:
            delta = self._pending.usage[key] = UsageDelta(uniques=len(self._seen.get(key, ())))
        return delta

    def _remember(self, table: dict[UsageKey, set[bytes]], key: UsageKey, who: str) -> int:
        day = key[0]
        if day != self._salt_day:  # a new day: forget yesterday's sets and salt entirely
            self._salt_day, self._salt = day, secrets.token_bytes(32)
            self._seen.clear()
            self._sessions.clear()
        seen = table.setdefault(key, set())
        if len(seen) < MAX_UNIQUE_PER_KEY:
            # Keyed BLAKE2b: a keyed hash like HMAC, several times cheaper per call.
            seen.add(hashlib.blake2b(who.encode(), key=self._salt, digest_size=8).digest())
        return len(seen)
