"""What a card-check back-end's answer means for the login: the ILS answer → facts or nothing.

Contract: every back-end's answer becomes one ``Answer``: ``Known`` (the secret matched; the
``CardFacts`` that core/login.py's ``decide_login`` judges, so expiry, blocks, remote access
and licences are told only after a correct secret), ``NotKnown`` (unknown card *or* wrong
secret: one value for both, so the patron's answer cannot tell them apart) or ``Unavailable``
(the back-end could not be asked). ``sip2_answer`` maps a judged SIP2 verdict through the
``SIP2_DENIAL_STATUS`` table; ``ldap_answer`` maps an ``LdapResult`` (bound? conditions met?
the patron-type attribute's value) through ``ptype_map``. ``settle`` combines the answers of a
chain asked in order: the first ``Known`` wins, else an ``Unavailable`` (we cannot say "no"
when a back-end that might know the card was down), else ``NotKnown``. ``why`` strings are for
staff (``patrons check``) and logs: never a card, secret or anything the ILS said verbatim.
Not here: asking the back-ends (proxy/ilsauth/), the login decision (core/login.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from proxy.core.authconfig import BackendName, LdapSettings
from proxy.core.login import CardFacts, CardStatus
from proxy.core.sip2 import Denial, Sip2Verdict

NO_REMOTE_PTYPE: Final = ""  # a patron type no library lists: decide_login says NO_REMOTE
NEVER_EXPIRES: Final = date.max  # SIP2 without PA, and LDAP: the ILS alone decides validity

# SIP2 denial -> the card status decide_login refuses with (its BLOCKED message for all: the
# patron is asked to contact the library; never the ILS's own screen message, SIP2 2.00 AF).
# invalid_password/invalid_patron are not here: they make the answer NotKnown (same as unknown).
SIP2_DENIAL_STATUS: Final[dict[Denial, CardStatus]] = {
    "card_reported_lost": "lost",
    "excessive_fines": "fines",
    "excessive_fees": "fines",
    "fines_over_limit": "fines",
    "charge_privileges_denied": "blocked",
    "renewal_privileges_denied": "blocked",
    "recall_privileges_denied": "blocked",
    "hold_privileges_denied": "blocked",
    "too_many_items_charged": "blocked",
    "too_many_items_overdue": "blocked",
    "too_many_renewals": "blocked",
    "too_many_claims_of_items_returned": "blocked",
    "too_many_items_lost": "blocked",
    "recall_overdue": "blocked",
    "too_many_items_billed": "blocked",
}
NOT_KNOWN_DENIALS: Final[frozenset[Denial]] = frozenset({"invalid_password", "invalid_patron"})
STATUS_ORDER: Final[tuple[CardStatus, ...]] = ("lost", "fines", "blocked")  # most telling first


@dataclass(frozen=True, slots=True)
class Known:
    """The back-end confirmed the card and its secret; ``facts`` decide the rest."""

    backend: BackendName
    facts: CardFacts
    why: str


@dataclass(frozen=True, slots=True)
class NotKnown:
    """Unknown card or wrong secret (deliberately one answer)."""

    backend: BackendName
    why: str


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The back-end could not be asked: ``error`` is an exception type name only."""

    backend: BackendName
    error: str


Answer = Known | NotKnown | Unavailable


@dataclass(frozen=True, slots=True)
class LdapResult:
    """What a directory said: nothing personal, only the decision's inputs."""

    bound: bool
    conditions_met: bool
    ptype_value: str | None


def sip2_answer(
    verdict: Sip2Verdict, *, library: str, ptype: str, patron_key: str
) -> Known | NotKnown:
    """A judged SIP2 verdict as an ``Answer`` for ``library``."""
    if verdict.denials & NOT_KNOWN_DENIALS:
        return NotKnown("sip2", "the ILS did not confirm this card and PIN")
    statuses = {SIP2_DENIAL_STATUS[d] for d in verdict.denials if d in SIP2_DENIAL_STATUS}
    status: CardStatus = next((s for s in STATUS_ORDER if s in statuses), "ok")
    expires = verdict.expiry if "expired" in verdict.denials and verdict.expiry else NEVER_EXPIRES
    reasons = ", ".join(sorted(verdict.denials)) or "nothing denies"
    facts = CardFacts(library, ptype, expires, status, patron_key)
    return Known("sip2", facts, f"the ILS confirmed card and PIN; {reasons}")


def ldap_answer(
    result: LdapResult, settings: LdapSettings, *, library: str, patron_key: str
) -> Known | NotKnown:
    """A directory's result as an ``Answer`` for ``library``."""
    if not result.bound:
        return NotKnown("ldap", "the directory did not accept this user and password")
    if not result.conditions_met:
        facts = CardFacts(library, NO_REMOTE_PTYPE, NEVER_EXPIRES, "ok", patron_key)
        return Known("ldap", facts, "bound, but the group/attribute conditions are not met")
    ptype = settings.ptype_map.get(result.ptype_value or "", settings.ptype)
    facts = CardFacts(library, ptype, NEVER_EXPIRES, "ok", patron_key)
    return Known("ldap", facts, f"bound; conditions met; patron type {ptype!r}")


def settle(answers: Sequence[Answer]) -> Answer:
    """The chain's answer: first Known, else first Unavailable, else the last NotKnown."""
    for kind in (Known, Unavailable):
        found = next((a for a in answers if isinstance(a, kind)), None)
        if found is not None:
            return found
    if not answers:
        raise ValueError("no back-end was asked")
    return answers[-1]
