"""The refusals a patron can meet at the portal, as the browser shows them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from babel.dates import format_date
from playwright.sync_api import expect

from proxy.core.cards import make_check_digit
from proxy.demo.pages import BIGDB, WWW
from proxy.demo.patrons import DemoCard
from tests.browser.conftest import Browsing, Stack, submit_login

pytestmark = pytest.mark.browser

UNRECOGNISED = "Card number or PIN not recognised. Please check both and try again."


def refused(browsing: Browsing, stack: Stack, vendor_url: str, card: DemoCard, secret: str) -> str:
    """Sign in to ``vendor_url`` and return the refusal the page announces (status 403)."""
    page = browsing.page
    page.goto(stack.login_url(vendor_url))
    with page.expect_response(f"{stack.portal}/login") as answer:
        submit_login(page, card, secret)
    assert answer.value.status == 403
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert not browsing.escaped(stack)
    return alert.inner_text()


def unknown_card(stack: Stack) -> DemoCard:
    """A well-formed Main Street card number that is not in the registry."""
    model = stack.card("adult card")
    body = model.barcode[:5] + "0" * 5 + "999"
    return replace(model, barcode=body + make_check_digit(body, "luhn"))


def test_wrong_pin_gets_the_generic_message(browsing: Browsing, stack: Stack) -> None:
    """A wrong PIN and an unknown card get the same message, so cards cannot be enumerated."""
    card = stack.card("adult card")
    wrong_pin = refused(browsing, stack, f"{WWW}/", card, "0000")
    assert wrong_pin == UNRECOGNISED
    assert refused(browsing, stack, f"{WWW}/", unknown_card(stack), "0000") == wrong_pin


def test_expired_card_shows_its_date(browsing: Browsing, stack: Stack) -> None:
    """An expired card with the right PIN is told the date it expired."""
    card = stack.card("expired card")
    message = refused(browsing, stack, f"{WWW}/", card, card.secret)
    written = format_date(card.expires, format="long", locale="en")  # #21: not ISO any more
    assert f"expired on {written}" in message


def test_vendor_not_licensed_to_the_library(browsing: Browsing, stack: Stack) -> None:
    """A Westfield patron asking for BigDB is told their library does not license it."""
    card = stack.card("logs in with last name")
    message = refused(browsing, stack, f"{BIGDB}/", card, card.secret)
    assert "does not license BigDB Search" in message


def test_unknown_database_address(browsing: Browsing, stack: Stack) -> None:
    """A starting URL no vendor rule covers gets a 404 page, never a redirect to it."""
    page = browsing.page
    response = page.goto(f"{stack.portal}/login?url=https://evil.example/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("not one of our licensed databases")
    assert page.url.startswith(stack.portal)
    assert not browsing.escaped(stack)
