"""Accessibility of the portal's own pages, checked with axe-core in Chromium.

axe-core comes from the ``axe-playwright-python`` package, which ships ``axe.min.js`` and injects
it with ``page.evaluate``: nothing is fetched at run time. A page passes with no violation of
impact "serious" or "critical"; lesser ones are printed (``pytest -s``, or shown on failure).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

import pytest
from playwright.sync_api import Page, expect

from proxy.demo.pages import BIGDB, WWW
from tests.browser.conftest import Browsing, Stack, submit_login

pytestmark = pytest.mark.browser

BLOCKING: Final = frozenset({"serious", "critical"})


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


def signed_in(page: Page, stack: Stack, note: str, vendor_url: str = "") -> None:
    """Sign in with the demo card whose note starts with ``note``."""
    page.goto(stack.login_url(vendor_url) if vendor_url else f"{stack.portal}/login")
    submit_login(page, stack.card(note))
    page.wait_for_url(lambda url: "/login" not in url)


def login_page(page: Page, stack: Stack) -> None:
    page.goto(stack.login_url(f"{WWW}/"))
    expect(page.get_by_label("Library card number")).to_be_visible()


def login_error(page: Page, stack: Stack) -> None:
    login_page(page, stack)
    submit_login(page, stack.card("adult card"), "0000")
    expect(page.get_by_role("alert")).to_be_visible()


def menu(page: Page, stack: Stack) -> None:
    signed_in(page, stack, "adult card")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your databases")


def signed_out(page: Page, stack: Stack) -> None:
    menu(page, stack)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Signed out")


def not_found(page: Page, stack: Stack) -> None:
    response = page.goto(f"{stack.portal}/no-such-page")
    assert response is not None and response.status == 404


def forbidden(page: Page, stack: Stack) -> None:
    signed_in(page, stack, "logs in with last name")
    response = page.goto(stack.mapped(f"{BIGDB}/"))
    assert response is not None and response.status == 403


PAGES: Final[dict[str, Callable[[Page, Stack], None]]] = {
    "login": login_page,
    "login-error": login_error,
    "menu": menu,
    "signed-out": signed_out,
    "error-404": not_found,
    "error-403": forbidden,
}


@pytest.mark.parametrize("name", PAGES)
def test_portal_page_has_no_serious_violations(name: str, browsing: Browsing, stack: Stack) -> None:
    """The portal page has no axe-core violation of impact serious or critical."""
    browsing.step = name
    PAGES[name](browsing.page, stack)
    violations = axe_run(browsing.page)
    for violation in violations:
        print(f"axe {name}: {describe(violation)}")
    blocking = [describe(v) for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"{name}: serious or critical accessibility violations:\n" + "\n".join(
        blocking
    )
