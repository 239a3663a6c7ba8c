"""Accessibility of the portal's own pages, checked with axe-core in Chromium.

axe-core comes from the ``axe-playwright-python`` package, which ships ``axe.min.js`` and injects
it with ``page.evaluate``: nothing is fetched at run time. Every page, in every shipped language
(chosen by the browser's locale, i.e. Accept-Language), passes with no violation at all (#21).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

import pytest
from playwright.sync_api import Browser, Page, expect

from proxy.demo.pages import BIGDB, WWW
from proxy.demo.patrons import DemoCard
from proxy.web.i18n import LANGUAGES
from tests.browser.conftest import PROXY_HOST, Browsing, Stack

pytestmark = pytest.mark.browser


def axe_run(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` (CI: the package missing is a failure, not a skip)."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        reason = "axe-playwright-python is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    violations: list[dict[str, Any]] = Axe().run(page).response["violations"]
    return violations


def describe(violation: dict[str, Any]) -> str:
    """One line per violation: id, impact, help text and the elements it names."""
    targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
    return f"{violation['id']} ({violation['impact']}): {violation['help']} — {targets}"


def fill_login(page: Page, card: DemoCard, secret: str | None = None) -> None:
    """Submit the sign-in form by its field ids (the labels change with the language)."""
    page.locator("#card").fill(card.barcode)
    page.locator("#pin").fill(card.secret if secret is None else secret)
    page.locator('form[action="/login"] button[type=submit]').click()


def signed_in(page: Page, stack: Stack, note: str, vendor_url: str = "") -> None:
    """Sign in with the demo card whose note starts with ``note``."""
    page.goto(stack.login_url(vendor_url) if vendor_url else f"{stack.portal}/login")
    fill_login(page, stack.card(note))
    page.wait_for_url(lambda url: "/login" not in url)


def home(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.portal}/")
    expect(page.locator("h1")).to_be_visible()


def login_page(page: Page, stack: Stack) -> None:
    page.goto(stack.login_url(f"{WWW}/"))
    expect(page.locator("#card")).to_be_visible()


def login_error(page: Page, stack: Stack) -> None:
    login_page(page, stack)
    fill_login(page, stack.card("adult card"), "0000")
    expect(page.get_by_role("alert")).to_be_visible()


def menu(page: Page, stack: Stack) -> None:
    signed_in(page, stack, "adult card")
    expect(page.locator("ul.databases")).to_be_visible()


def logout_page(page: Page, stack: Stack) -> None:
    signed_in(page, stack, "student card")
    page.goto(f"{stack.portal}/logout")
    expect(page.locator('main form[action="/logout"]')).to_be_visible()


def signed_out(page: Page, stack: Stack) -> None:
    menu(page, stack)
    page.locator('main form[action="/logout"] button').click()
    expect(page.locator('main a[href$="/login"]')).to_be_visible()


def privacy(page: Page, stack: Stack) -> None:
    signed_in(page, stack, "adult card", f"{WWW}/")
    page.goto(stack.mapped(f"{BIGDB}/"))
    page.goto(f"{stack.portal}/privacy")
    expect(page.locator("section.vendor").first).to_be_visible()


def not_found(page: Page, stack: Stack) -> None:
    response = page.goto(f"{stack.portal}/no-such-page")
    assert response is not None and response.status == 404


def vendor_host_error(page: Page, stack: Stack) -> None:
    response = page.goto(f"https://nosuch-vendor-test.{PROXY_HOST}:{stack.port}/x")
    assert response is not None and response.status >= 400


def forbidden(page: Page, stack: Stack) -> None:
    signed_in(page, stack, "logs in with last name")
    response = page.goto(stack.mapped(f"{BIGDB}/"))
    assert response is not None and response.status == 403


PAGES: Final[dict[str, Callable[[Page, Stack], None]]] = {
    "home": home,
    "login": login_page,
    "login-error": login_error,
    "menu": menu,
    "logout": logout_page,
    "signed-out": signed_out,
    "privacy": privacy,
    "error-404": not_found,
    "error-on-vendor-host": vendor_host_error,
    "error-403": forbidden,
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PAGES)
def test_portal_page_has_no_violations(
    name: str, language: str, browser: Browser, stack: Stack
) -> None:
    """The page, in each shipped language, has no axe-core violation at all."""
    browsing = Browsing.open(browser, ignore_https_errors=True, locale=language)
    browsing.step = f"{name}-{language}"
    try:
        check_page(browsing, stack, name, language)
    finally:
        browsing.context.close()


def check_page(browsing: Browsing, stack: Stack, name: str, language: str) -> None:
    """Open page ``name`` in ``language`` and run axe-core on it."""
    PAGES[name](browsing.page, stack)
    assert browsing.page.locator("html").get_attribute("lang") == language
    violations = axe_run(browsing.page)
    found = [describe(v) for v in violations]
    assert not found, f"{name} ({language}): accessibility violations:\n" + "\n".join(found)
