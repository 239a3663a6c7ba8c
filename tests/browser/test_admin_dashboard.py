"""The admin console in a browser: token sign-in, the SVG usage chart and the vendor table."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.sync_api import expect

from proxy.core.usage import UsageCounters
from proxy.web.admin.auth import COOKIE
from proxy.web.keys import STATS
from tests.browser.conftest import ARTIFACTS, Browsing, Stack

pytestmark = pytest.mark.browser

SCREENSHOT = ARTIFACTS / "admin-dashboard.png"


async def seed_usage(stack: Stack, today: date) -> None:
    """A week of aggregate requests for both demo vendors, written as the app's flush does."""
    counters = UsageCounters()
    for back in range(7):
        day = today - timedelta(days=back)
        for n in range(3 + back):
            for vendor in ("acme", "bigdb")[: 1 + back % 2]:
                counters.request(
                    day,
                    vendor,
                    "MAIN",
                    patron=f"p{n % 2}",
                    session=f"s{n}",
                    size=20_000,
                    content_type="text/html",
                )
    await asyncio.to_thread(stack.app[STATS].add, counters.drain())


def assert_dashboard(browsing: Browsing) -> None:
    """The dashboard is shown with a line per vendor in the chart and the vendor table."""
    page = browsing.page
    browsing.step = "dashboard"
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    assert chart.locator("polyline").count() >= 2, "one line per vendor with usage"
    expect(page.locator("ul.legend")).to_contain_text("acme")
    vendors = page.get_by_role("table").first
    expect(vendors.get_by_role("row")).to_have_count(3)  # header + acme + bigdb
    expect(vendors).to_contain_text("Acme Journal Archive")
    expect(vendors).to_contain_text("BigDB Search")


def test_token_form_signs_in_to_the_dashboard(browsing: Browsing, stack: Stack) -> None:
    """Pasting the token into the console's sign-in form leads to the dashboard."""
    stack.server.call(seed_usage(stack, datetime.now(UTC).date()))
    page = browsing.page
    page.goto(f"{stack.admin_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Admin token").fill(stack.admin_token)
    page.get_by_role("button", name="Sign in with the token").click()
    assert_dashboard(browsing)


def test_dashboard_renders_chart_and_vendor_table(browsing: Browsing, stack: Stack) -> None:
    """With the console's cookie already set, the dashboard renders its SVG chart and vendors."""
    stack.server.call(seed_usage(stack, datetime.now(UTC).date()))
    signed_in = browsing.context.request.post(  # the cookie holds a session id, not the token
        f"{stack.admin_url}/login",
        form={"token": stack.admin_token},
        headers={"Origin": stack.admin_url},
        max_redirects=0,
    )
    assert signed_in.status == 303
    assert any(c["name"] == COOKIE for c in browsing.context.cookies())
    browsing.page.goto(f"{stack.admin_url}/")
    assert_dashboard(browsing)
