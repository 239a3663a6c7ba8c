"""The login decision table."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from proxy.core.login import CardFacts, LoginAccepted, LoginRefused, Refusal, decide_login
from proxy.core.rules import VendorRule
from proxy.core.settings import Library

TODAY = date(2026, 11, 29)
MAIN = Library(code="MAIN", name="Main", remote_ptypes=("adult",))
RULE = VendorRule.model_validate(
    {
        "id": "acme",
        "title": "Acme Archive",
        "url": "https://www.acme.org/",
        "hosts": ["www.acme.org"],
        "libraries": ["MAIN"],
    }
)
OTHER = VendorRule.model_validate(
    {
        "id": "big",
        "title": "BigDB",
        "url": "https://big.org/",
        "hosts": ["big.org"],
        "libraries": ["WEST"],
    }
)


def card(**changes: Any) -> CardFacts:
    """A valid adult card of MAIN, with changes."""
    base: dict[str, Any] = {
        "library": "MAIN",
        "ptype": "adult",
        "expires": date(2027, 1, 1),
        "status": "ok",
        "patron_key": "k",
    }
    return CardFacts(**{**base, **changes})


@pytest.mark.parametrize(
    ("facts", "secret_ok", "throttled", "rule", "reason"),
    [
        (None, False, False, None, Refusal.UNRECOGNISED),
        (card(), False, False, None, Refusal.UNRECOGNISED),
        (card(), True, True, None, Refusal.UNRECOGNISED),
        (card(expires=date(2026, 11, 28)), True, False, None, Refusal.EXPIRED),
        (card(expires=date(2026, 11, 28)), False, False, None, Refusal.UNRECOGNISED),
        (card(status="blocked"), True, False, None, Refusal.BLOCKED),
        (card(status="lost"), True, False, None, Refusal.BLOCKED),
        (card(status="fines"), True, False, None, Refusal.BLOCKED),
        (card(ptype="child"), True, False, None, Refusal.NO_REMOTE),
        (card(), True, False, OTHER, Refusal.NOT_LICENSED),
    ],
)
def test_refusals(
    facts: CardFacts | None,
    secret_ok: bool,
    throttled: bool,
    rule: VendorRule | None,
    reason: Refusal,
) -> None:
    """Each failed check refuses with its reason; details only after a correct secret."""
    result = decide_login(
        facts, secret_ok=secret_ok, throttled=throttled, today=TODAY, library=MAIN, target_rule=rule
    )
    assert isinstance(result, LoginRefused) and result.reason is reason


def test_messages_are_actionable() -> None:
    """Expired names the date; not licensed names the database."""
    expired = decide_login(
        card(expires=date(2026, 1, 2)),
        secret_ok=True,
        throttled=False,
        today=TODAY,
        library=MAIN,
        target_rule=None,
    )
    assert isinstance(expired, LoginRefused) and "2026-01-02" in expired.message
    refused = decide_login(
        card(), secret_ok=True, throttled=False, today=TODAY, library=MAIN, target_rule=OTHER
    )
    assert isinstance(refused, LoginRefused) and "BigDB" in refused.message


def test_accepted_card_expiring_today() -> None:
    """A card valid through today, licensed for the target, is accepted."""
    result = decide_login(
        card(expires=TODAY),
        secret_ok=True,
        throttled=False,
        today=TODAY,
        library=MAIN,
        target_rule=RULE,
    )
    assert result == LoginAccepted("MAIN", "adult", "k")
