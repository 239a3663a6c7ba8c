"""Staff in the admin console, in Chromium: a library-staff account signs in with its name and
password and sees its own library only; the pages pass axe-core with no violation (#20)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from proxy.core.usage import UsageCounters
from proxy.web.admin.auth import STAFF
from proxy.web.keys import STATS
from tests.browser.conftest import Browsing, Stack
from tests.browser.test_accessibility import axe_run, describe

pytestmark = pytest.mark.browser

PASSWORD = "a long staff password"
WEST_REQUESTS = 4_815_162  # only WEST has this: the MAIN account must never see it


async def seed(stack: Stack) -> None:
    """Requests for MAIN (acme) and for WEST (bigdb, with a canary count)."""
    counters = UsageCounters()
    today = datetime.now(UTC).date()
    for n in range(5):
        counters.request(today, "acme", "MAIN", patron="p", session=f"s{n}", size=10)
    drained = counters.drain()
    await asyncio.to_thread(stack.app[STATS].add, drained)
    west = UsageCounters()
    west.request(today, "bigdb", "WEST", patron="q", session="t", size=10)
    more = west.drain()
    for key in list(more.usage):
        more.usage[key].requests = WEST_REQUESTS
    await asyncio.to_thread(stack.app[STATS].add, more)


def add_account(stack: Stack, name: str) -> None:
    """A MAIN library-staff account, in the running admin app's store."""
    staff = stack.runners[0].app[STAFF]
    if name not in {a.name for a in staff.accounts()}:
        staff.add(name, "library-staff", ("MAIN",), PASSWORD, totp=False, now=datetime.now(UTC))


def assert_no_violations(browsing: Browsing, name: str) -> None:
    """axe-core finds nothing at all on the page."""
    violations = axe_run(browsing.page)
    assert not violations, f"{name}:\n" + "\n".join(describe(v) for v in violations)


def test_library_staff_signs_in_and_sees_only_their_library(
    browsing: Browsing, stack: Stack
) -> None:
    """Name and password lead to a dashboard scoped to MAIN, without consortium figures."""
    stack.server.call(seed(stack))
    add_account(stack, "main-desk")
    page = browsing.page
    browsing.step = "sign-in"
    page.goto(f"{stack.admin_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert_no_violations(browsing, "sign-in")
    page.get_by_label("Name").fill("main-desk")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    browsing.step = "library-dashboard"
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.get_by_text("Signed in as main-desk (library-staff for MAIN)")).to_be_visible()
    expect(page.locator("ul.legend")).to_contain_text("acme")
    body = page.locator("main").inner_text()
    assert f"{WEST_REQUESTS:,}" not in body and "active sessions" not in body
    expect(page.get_by_role("button", name="Reload rules")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    assert_no_violations(browsing, "library-dashboard")
    page.goto(f"{stack.admin_url}/api/stats?library=WEST")
    assert "does not cover this library" in page.content()


def test_wrong_password_is_refused_in_the_form(browsing: Browsing, stack: Stack) -> None:
    """A wrong password shows the sign-in form again with an alert, and no violation."""
    add_account(stack, "main-desk")
    page = browsing.page
    page.goto(f"{stack.admin_url}/login")
    page.get_by_label("Name").fill("main-desk")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("wrong")
    assert_no_violations(browsing, "sign-in-refused")
