"""The login decision: given what the registry knows about a card, may this patron in?

Contract: ``decide_login`` is pure: facts in, ``LoginAccepted`` or ``LoginRefused`` out. The
refusals are a closed set, each with the message a person can act on. An unknown card and a
wrong PIN give the *same* refusal (so card numbers cannot be enumerated), and so does a
throttled attempt; details (expired, blocked, not licensed) are told only after the PIN (or
last name) matched. ``apply_block`` is the back-end-independent step after any back-end's
decision: a card on the local block list (stores/blocks.py, keyed by the card's hash) is
refused as ``BLOCKED`` once its secret matched, with the same words as a blocked ILS status.
Not here: looking cards up or hashing (stores/patrons), throttle counting (core/throttle),
HTTP and pages (web/login).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final, Literal

from proxy.core.rules import VendorRule
from proxy.core.settings import Library

CardStatus = Literal["ok", "blocked", "lost", "fines"]


class Refusal(StrEnum):
    """Why a login was refused (also the stats/log reason)."""

    UNRECOGNISED = "unrecognised"
    EXPIRED = "expired"
    BLOCKED = "blocked"
    NO_REMOTE = "no_remote_access"
    NOT_LICENSED = "not_licensed"
    TOO_MANY = "too_many_logins"  # R11: told only after the PIN matched, like the others


MESSAGES: Final[dict[Refusal, str]] = {
    Refusal.UNRECOGNISED: "Card number or PIN not recognised. Please check both and try again.",
    Refusal.EXPIRED: "Your library card expired on {expired}. Please contact your library "
    "to renew it.",
    Refusal.BLOCKED: "Your card cannot be used for remote access at the moment. Please "
    "contact your library.",
    Refusal.NO_REMOTE: "Your card type does not include remote access to databases. Please "
    "contact your library.",
    Refusal.NOT_LICENSED: "Your library does not license {title}.",
    Refusal.TOO_MANY: "This card has signed in too many times in the last minute. Please "
    "wait a minute and try again.",
}


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What the registry holds for a card (never the barcode, PIN or name)."""

    library: str
    ptype: str
    expires: date
    status: CardStatus
    patron_key: str


@dataclass(frozen=True, slots=True)
class LoginAccepted:
    """The patron may in; the session holds exactly these."""

    library: str
    ptype: str
    patron_key: str


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """The patron may not in, and why, in words they can act on."""

    reason: Refusal
    message: str
    details: tuple[tuple[str, str], ...] = ()  # #21: the message's values, for translations


def decide_login(
    card: CardFacts | None,
    *,
    secret_ok: bool,
    throttled: bool,
    today: date,
    library: Library | None,
    target_rule: VendorRule | None,
) -> LoginAccepted | LoginRefused:
    """Apply the checks in order; the first that fails decides."""
    if throttled or card is None or not secret_ok or library is None:
        return refuse(Refusal.UNRECOGNISED)
    if card.expires < today:
        return refuse(Refusal.EXPIRED, expired=card.expires.isoformat())
    if card.status != "ok":
        return refuse(Refusal.BLOCKED)
    if card.ptype not in library.remote_ptypes:
        return refuse(Refusal.NO_REMOTE)
    if target_rule is not None and not target_rule.licensed_to(card.library, card.ptype):
        return refuse(Refusal.NOT_LICENSED, title=target_rule.title)
    return LoginAccepted(card.library, card.ptype, card.patron_key)


def refuse(reason: Refusal, **details: str) -> LoginRefused:
    """A refusal with its message filled in."""
    return LoginRefused(reason, MESSAGES[reason].format(**details), tuple(details.items()))


def apply_block(
    decision: LoginAccepted | LoginRefused, *, blocked: bool
) -> LoginAccepted | LoginRefused:
    """The local block list (#18): a listed card is refused as BLOCKED whatever its back-end
    said, but an attempt that was not recognised stays so (nothing more is revealed)."""
    if not blocked or (
        isinstance(decision, LoginRefused) and decision.reason is Refusal.UNRECOGNISED
    ):
        return decision
    return refuse(Refusal.BLOCKED)
