"""#17 in a real browser: a vendor page whose JSON API needs a CORS preflight and whose web
font is fetched cookieless (crossorigin=anonymous) loads both through the proxy.

Browsers never send cookies with a preflight, nor with a font fetched in CORS mode without
credentials; before #17 the proxy answered both with a login redirect and the page broke.
The demo vendor's ``/cors`` page writes what loaded into ``#api`` and ``#font``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from proxy.demo.pages import API_HOST, CDN_HOST, WWW
from tests.browser.conftest import Browsing, Stack, submit_login

pytestmark = pytest.mark.browser


def test_preflighted_api_and_anonymous_font_load(browsing: Browsing, stack: Stack) -> None:
    """The API answers after its preflight and the font loads; neither carried a cookie."""
    page = browsing.page
    stack.vendor.clear()
    page.goto(stack.login_url(f"{WWW}/cors"))
    submit_login(page, stack.card("adult card"))
    page.wait_for_url(stack.mapped(f"{WWW}/cors"))
    browsing.step = "cors-page"
    expect(page.locator("#api")).to_have_text("api: 2 results", timeout=10_000)
    expect(page.locator("#font")).to_have_text("font: 200 64 bytes", timeout=10_000)
    preflights = [r for r in stack.vendor.records if r.method == "OPTIONS"]
    assert [r.host for r in preflights] == [API_HOST]
    fonts = [r for r in stack.vendor.records if r.host == CDN_HOST and "/fonts/" in r.path]
    assert fonts, "the font was never relayed"
    for record in (*preflights, *fonts):
        names = {name.lower() for name, _ in record.headers}
        assert "cookie" not in names and "x-patron-pseudonym" not in names
