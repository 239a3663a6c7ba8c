"""Per-vendor pseudonyms: the one patron-derived value a vendor may receive (DESIGN P2).

Contract: ``derive(epoch_key, vendor_id, patron_key)`` is
``HMAC-SHA256(epoch_key, "clamshell-pseudonym-v1" || len(vendor) || vendor || len(patron) ||
patron)`` with 4-byte big-endian byte lengths of the UTF-8 strings, so ``("ab", "c")`` and
``("a", "bc")`` can never collide. The first 16 bytes (128 bits: ample against collisions and
guessing for any consortium's patron count) are written as lowercase RFC 4648 base32 without
padding: always 26 characters of ``[a-z2-7]``. Same inputs give the same value; a different
vendor or epoch key gives an unrelated value, so two vendors cannot link their users and one
vendor cannot link two epochs without the key.

``epoch_id(rotate, when)`` names the rotation period that contains ``when`` (UTC):
``daily:2026-11-29``, ``weekly:2026-W48`` (ISO week), ``monthly:2026-11``, ``never:0``;
``epoch_span(epoch_id)`` gives that period back as ``[start, end)`` (``end`` is None for never).
``rotate: session`` is not an epoch: its key is the session's own random ``pseudonym_key``.

Not here: where epoch keys come from or how they are destroyed (stores/epochkeys.py), which
header carries the pseudonym (vendor rules), sessions (stores/sessions.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

Rotation = Literal["daily", "weekly", "monthly", "never"]

DOMAIN: Final = b"clamshell-pseudonym-v1"  # domain separation: this HMAC key signs nothing else
DIGEST_BYTES: Final = 16  # 128 bits -> 26 base32 characters
PSEUDONYM_LENGTH: Final = 26
MIN_KEY_BYTES: Final = 16  # refuse keys too short to be secret; stores use 32 random bytes
NEVER_ID: Final = "never:0"
NEVER_START: Final = datetime(1970, 1, 1, tzinfo=UTC)


def derive(epoch_key: bytes, vendor_id: str, patron_key: str) -> str:
    """The pseudonym of one patron at one vendor under one epoch key.

    Raises:
        ValueError: the key is shorter than ``MIN_KEY_BYTES``.
    """
    if len(epoch_key) < MIN_KEY_BYTES:
        raise ValueError(f"epoch key must be at least {MIN_KEY_BYTES} bytes")
    message = DOMAIN + _length_prefixed(vendor_id) + _length_prefixed(patron_key)
    digest = hmac.new(epoch_key, message, hashlib.sha256).digest()[:DIGEST_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def _length_prefixed(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


# --- epochs ---------------------------------------------------------------------------


def _daily_id(day: date) -> str:
    return f"daily:{day.isoformat()}"


def _weekly_id(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"weekly:{year:04d}-W{week:02d}"


def _monthly_id(day: date) -> str:
    return f"monthly:{day.year:04d}-{day.month:02d}"


def _never_id(day: date) -> str:
    return NEVER_ID


def epoch_id(rotate: Rotation, when: datetime) -> str:
    """The id of the ``rotate`` period containing ``when`` (a timezone-aware instant, UTC days).

    Raises:
        ValueError: ``when`` is naive (a local wall-clock time would shift epochs by TZ).
    """
    if when.tzinfo is None:
        raise ValueError("epoch_id needs a timezone-aware datetime")
    return EPOCH_KINDS[rotate].name(when.astimezone(UTC).date())


def epoch_span(epoch: str) -> tuple[datetime, datetime | None]:
    """``[start, end)`` in UTC of an id made by ``epoch_id``; ``end`` is None for ``never:0``.

    Raises:
        ValueError: not an id that ``epoch_id`` produces (only the canonical spelling is taken).
    """
    kind, _, value = epoch.partition(":")
    rules = EPOCH_KINDS.get(kind)
    try:
        if rules is None:
            raise ValueError(kind)
        start, end = rules.span(value)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not an epoch id: {epoch!r}") from exc
    if rules.name(start) != epoch:
        raise ValueError(f"not an epoch id: {epoch!r}")
    return _midnight(start), None if end is None else _midnight(end)


def _daily_span(value: str) -> tuple[date, date | None]:
    start = date.fromisoformat(value)
    return start, start + timedelta(days=1)


def _weekly_span(value: str) -> tuple[date, date | None]:
    year, week = value.split("-W")
    start = date.fromisocalendar(int(year), int(week), 1)
    return start, start + timedelta(days=7)


def _monthly_span(value: str) -> tuple[date, date | None]:
    start = date.fromisoformat(value + "-01")
    return start, date(start.year + start.month // 12, start.month % 12 + 1, 1)


def _never_span(value: str) -> tuple[date, date | None]:
    return NEVER_START.date(), None


@dataclass(frozen=True, slots=True)
class _EpochKind:
    name: Callable[[date], str]  # the id of the period containing a UTC day
    span: Callable[[str], tuple[date, date | None]]  # the id's value -> [first day, end day)


EPOCH_KINDS: Final[Mapping[str, _EpochKind]] = {
    "daily": _EpochKind(_daily_id, _daily_span),
    "weekly": _EpochKind(_weekly_id, _weekly_span),
    "monthly": _EpochKind(_monthly_id, _monthly_span),
    "never": _EpochKind(_never_id, _never_span),
}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def trace(
    epoch_key: bytes, vendor_id: str, pseudonym: str, patron_keys: Iterable[str]
) -> str | None:
    """The patron key whose pseudonym this is, by recomputing over every candidate.

    Only possible while the epoch key exists: once it is destroyed there is nothing to
    recompute with (cryptographic erasure). Used to answer a vendor's abuse report.
    """
    wanted = pseudonym.strip().lower()
    for key in patron_keys:
        if hmac.compare_digest(derive(epoch_key, vendor_id, key), wanted):
            return key
    return None


class SessionPseudonyms:
    """Per-session pseudonyms, derived once per (session, vendor) instead of per request.

    A ``rotate: session`` pseudonym is fixed for the life of its session, so the relay keeps
    it here; ``forget(session_key)`` (called when the session ends) drops every value of that
    session, so nothing outlives it (DESIGN P5).
    """

    def __init__(self) -> None:
        self._by_session: dict[str, dict[str, str]] = {}

    def get(self, session_key: str, vendor_id: str, pseudonym_key: bytes) -> str:
        """The session's pseudonym for a vendor."""
        vendors = self._by_session.setdefault(session_key, {})
        value = vendors.get(vendor_id)
        if value is None:
            value = vendors[vendor_id] = derive(pseudonym_key, vendor_id, session_key)
        return value

    def forget(self, session_key: str) -> None:
        """The session ended."""
        self._by_session.pop(session_key, None)

    def __len__(self) -> int:
        return len(self._by_session)
