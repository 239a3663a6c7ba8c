"""Answering a vendor's abuse report without identifying anyone.

Contract: ``block_by_pseudonym(...)`` takes what a vendor reports — its service (a rule id),
a pseudonym it received and the date — recomputes pseudonyms over the registry with that
period's epoch key, puts the matching card on the local block list (stores/blocks.py: apart
from the ILS status, so the next ``patrons import`` cannot undo it, #18) with the case number,
reason, who and optional expiry of ``BlockDetails``, and returns only the member library, the
case number and the card's patron key (for ending its sessions; staff never see it). It fails
clearly when the rule gives per-session pseudonyms (untraceable by design), when the
period's key was destroyed (cryptographic erasure), or when nothing matches.
Not here: ending the sessions (the caller owns the session store), printing (proxy/cli/block.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from proxy.core import pseudonym
from proxy.core.ruleset import RuleIndex
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.stores.blocks import Block, BlockList
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.patrons import PatronRegistry

log = get_logger("abuse_report")

REASON_MAX: Final = 200  # a reason is a short note for staff (never a name or card number)


class CannotTrace(ClamshellError):
    """The report cannot be traced to a card; the message says why."""

    status_hint = 404

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.public_message = message


@dataclass(frozen=True, slots=True)
class BlockResult:
    """What staff may see: the member library and a case number. ``patron_key`` is internal."""

    library: str
    case: str
    patron_key: str


@dataclass(frozen=True, slots=True)
class BlockDetails:
    """What the block list records besides the card: case, reason, who, when, until when."""

    now: datetime
    by: str = "cli"
    case: str | None = None  # None: a new case number is made up
    reason: str = ""  # "": "abuse report from <vendor>"
    expires: datetime | None = None  # None: until lifted


def block_expiry(last_day: date | None) -> datetime | None:
    """A block that ends after ``last_day`` (UTC) ends at the next midnight; None: never."""
    if last_day is None:
        return None
    return datetime.combine(last_day, time(0), UTC) + timedelta(days=1)


def block_by_pseudonym(
    *,
    registry: PatronRegistry,
    epochs: EpochKeyStore,
    blocks: BlockList,
    index: RuleIndex,
    vendor_id: str,
    reported: str,
    day: date,
    details: BlockDetails,
    may_block: Callable[[str], bool] | None = None,
) -> BlockResult:
    """Trace the reported pseudonym to a card and block that card.

    ``may_block(library)`` (#20): library staff may block only their own libraries' cards; a
    card of another library is answered like no match, so it reveals nothing about it.
    """
    rule = index.by_id.get(vendor_id)
    if rule is None:
        raise CannotTrace(f"no vendor rule with id {vendor_id!r}")
    if rule.pseudonym is None:
        raise CannotTrace(f"{vendor_id} receives no pseudonym, so there is nothing to trace")
    if rule.pseudonym.rotate == "session":
        raise CannotTrace(
            f"{vendor_id} gets per-session pseudonyms: they cannot be traced to a "
            "card, by design; ask the vendor for the time and block nothing"
        )
    epoch = pseudonym.epoch_id(rule.pseudonym.rotate, datetime.combine(day, time(12), UTC))
    key = epochs.existing(epoch)
    if key is None:
        raise CannotTrace(
            f"the key for {epoch} no longer exists (retention): pseudonyms of "
            "that period can no longer be traced to anyone"
        )
    patron_key = pseudonym.trace(key, vendor_id, reported, registry.card_hashes())
    library = None if patron_key is None else registry.library_of(patron_key) or "unknown"
    if patron_key is None or library is None or (may_block and not may_block(library)):
        raise CannotTrace("no card in the registry matches that pseudonym for that date")
    case = details.case or f"CASE-{day:%Y%m%d}-{secrets.token_hex(4).upper()}"
    reason = (details.reason or f"abuse report from {vendor_id}")[:REASON_MAX]
    blocks.add(Block(patron_key, library, case, reason, details.by, details.now, details.expires))
    log.warning("patron_blocked_by_report", vendor=vendor_id, library=library, case=case)
    return BlockResult(library, case, patron_key)
