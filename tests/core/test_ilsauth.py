"""#16: the pure back-end decision (core/ilsauth.py) and `libraries[].auth` (authconfig)."""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from decimal import Decimal
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from proxy.core.authconfig import LdapSettings, LibraryAuth
from proxy.core.ilsauth import (
    NEVER_EXPIRES,
    SIP2_DENIAL_STATUS,
    Known,
    LdapResult,
    NotKnown,
    Unavailable,
    ldap_answer,
    settle,
    sip2_answer,
)
from proxy.core.login import CardFacts
from proxy.core.settings import Library
from proxy.core.sip2 import Denial, PatronAnswer, Sip2Settings, Sip2Verdict, judge

TODAY = date(2026, 12, 3)
SIP2 = Sip2Settings(
    host="ils",
    deny_if=("invalid_patron", "expired", "card_reported_lost", "excessive_fines"),
    max_fines=Decimal("10"),
)


def verdict(**answer: Any) -> Sip2Verdict:
    """A judged answer: a valid patron with a confirmed PIN unless overridden."""
    base: dict[str, Any] = {
        "valid_patron": True,
        "valid_password": True,
        "flags": frozenset(),
        "fee_amount": None,
        "expiry": None,
        "had_screen_message": False,
    }
    return judge(PatronAnswer(**{**base, **answer}), SIP2, today=TODAY)


@pytest.mark.parametrize(
    ("answer", "status", "expires"),
    [
        ({}, "ok", NEVER_EXPIRES),
        ({"flags": frozenset({"card_reported_lost"})}, "lost", NEVER_EXPIRES),
        ({"flags": frozenset({"excessive_fines"})}, "fines", NEVER_EXPIRES),
        ({"fee_amount": Decimal("10.01")}, "fines", NEVER_EXPIRES),
        ({"fee_amount": Decimal("10.00")}, "ok", NEVER_EXPIRES),
        ({"flags": frozenset({"too_many_items_overdue"})}, "ok", NEVER_EXPIRES),  # not in deny_if
        ({"expiry": date(2026, 12, 2)}, "ok", date(2026, 12, 2)),
        ({"expiry": date(2027, 1, 1)}, "ok", NEVER_EXPIRES),
        ({"flags": frozenset({"card_reported_lost", "excessive_fines"})}, "lost", NEVER_EXPIRES),
    ],
)
def test_sip2_verdicts_become_card_facts(
    answer: dict[str, Any], status: str, expires: date
) -> None:
    """A confirmed PIN gives facts whose status/expiry decide_login turns into the refusal."""
    result = sip2_answer(verdict(**answer), library="EAST", ptype="sip2", patron_key="k")
    assert isinstance(result, Known)
    assert result.facts == CardFacts("EAST", "sip2", expires, status, "k")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "answer",
    [
        {"valid_password": False},
        {"valid_password": None},
        {"valid_patron": False, "valid_password": False},
        {"valid_patron": False, "valid_password": True},
        {"valid_password": False, "flags": frozenset({"card_reported_lost"})},
    ],
)
def test_unknown_card_and_wrong_pin_are_one_answer(answer: dict[str, Any]) -> None:
    """Whatever else the ILS said, an unconfirmed PIN or invalid patron is NotKnown."""
    assert sip2_answer(verdict(**answer), library="E", ptype="p", patron_key="k") == NotKnown(
        "sip2", "the ILS did not confirm this card and PIN"
    )


def test_every_configurable_denial_has_a_status() -> None:
    """The table covers every SIP2 denial except the two that mean "not known" and expiry."""
    assert set(get_args(Denial)) - set(SIP2_DENIAL_STATUS) == {
        "invalid_password",
        "invalid_patron",
        "expired",
    }


def test_no_type_has_a_field_for_personal_data() -> None:
    """The parsed SIP2/LDAP values have no name, address, e-mail, phone or birth-date field."""
    personal = {"name", "address", "email", "phone", "birth_date", "card", "barcode", "pin"}
    for kind in (PatronAnswer, Sip2Verdict, LdapResult, Known, NotKnown, Unavailable):
        assert not {f.name for f in fields(kind)} & personal


LDAP = LdapSettings(url="ldaps://dir", bind_dn_template="uid={card}", ptype_map={"S": "student"})


@pytest.mark.parametrize(
    ("result", "ptype"),
    [
        (LdapResult(True, True, "S"), "student"),
        (LdapResult(True, True, "X"), "ldap"),
        (LdapResult(True, True, None), "ldap"),
        (LdapResult(True, False, "S"), ""),
    ],
)
def test_ldap_results_become_facts(result: LdapResult, ptype: str) -> None:
    """A bind gives facts; unmet conditions give a patron type with no remote access."""
    answer = ldap_answer(result, LDAP, library="U", patron_key="k")
    assert isinstance(answer, Known) and answer.facts.ptype == ptype


def test_settle_prefers_known_then_unavailable() -> None:
    """First Known wins; an outage beats "not known"; only NotKnowns give NotKnown."""
    facts = CardFacts("L", "p", TODAY, "ok", "k")
    known, down, nope = Known("registry", facts, ""), Unavailable("sip2", "E"), NotKnown("sip2", "")
    assert settle([down, known]) is known
    assert settle([nope, down]) is down
    assert settle([down, NotKnown("registry", "")]) is down
    assert settle([nope]) is nope


@pytest.mark.parametrize(
    ("raw", "use"),
    [("registry", ("registry",)), (["registry"], ("registry",)), ({}, ("registry",))],
)
def test_auth_shorthands(raw: Any, use: tuple[str, ...]) -> None:
    """``auth: registry`` and ``auth: [registry]`` mean the default."""
    assert LibraryAuth.model_validate(raw).use == use


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"use": ["sip2"]}, "no sip2"),
        ({"use": ["registry"], "sip2": {"host": "h"}}, "sip2"),
        ({"use": ["registry", "registry"]}, "at most once"),
        ({"use": []}, "at least one"),
        ({"use": ["registry"], "fallback": "registry"}, "live back-end"),
        ({"use": ["sip2"], "sip2": {"host": "h", "password": "x"}}, "Extra inputs"),
        ("sip3", "sip3"),
    ],
)
def test_auth_config_errors(raw: Any, problem: str) -> None:
    """Incoherent auth sections are refused with a message naming the problem."""
    with pytest.raises(ValidationError, match=problem):
        LibraryAuth.model_validate(raw)


def test_library_defaults_to_the_registry() -> None:
    """A library without ``auth`` keeps today's registry check (no network call)."""
    library = Library(code="A", name="A")
    assert library.auth.use == ("registry",) and not library.auth.live
