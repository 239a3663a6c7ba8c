"""The patron's journey through the demo in a real browser, over HTTPS, contained in the proxy.

The journey runs in ``pinned_browser`` (the proxy's certificate is accepted by its pinned key,
never by ignoring errors). After every step, every URL the browser requested so far must be on
``https://proxy.localhost:<port>`` or one label below it; the first step that lets a request
escape (a vendor host, a tracker, a CDN) fails the test and names the URLs.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Error, expect

from proxy.demo.pages import API, CDN, WWW, article_title
from proxy.demo.pdf import pdf_bytes
from tests.browser.conftest import Browsing, Stack, submit_login

pytestmark = pytest.mark.browser

HOME = f"{WWW}/"
FIRST, SEARCH, FOUND, RELATED = 1, "climate", 3, 5  # article 3 is about climate; so is 5


def enter(browsing: Browsing, step: str) -> None:
    """Name the step (screenshots of a failure carry it)."""
    browsing.step = step


def assert_contained(browsing: Browsing, stack: Stack) -> None:
    """Once the page is idle, no request so far has left the proxy."""
    browsing.page.wait_for_load_state("networkidle")
    escaped = browsing.escaped(stack)
    assert not escaped, (
        f"step {browsing.step!r}: the browser requested URLs outside {stack.portal} and its "
        f"mapped hosts (a link not rewritten, or a third party not contained):\n  "
        + "\n  ".join(escaped)
    )


def sign_in(browsing: Browsing, stack: Stack) -> None:
    """Start from the library's link and sign in with the adult demo card."""
    page, card = browsing.page, stack.card("adult card")
    enter(browsing, "login-page")
    page.goto(stack.login_url(HOME))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator("main")).to_contain_text("Acme Journal Archive")
    assert_contained(browsing, stack)
    enter(browsing, "sign-in")
    submit_login(page, card)
    page.wait_for_url(stack.mapped(HOME))
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Journal Archive")
    assert_contained(browsing, stack)


def read_and_search(browsing: Browsing, stack: Stack) -> None:
    """Follow an article link, then search with the page's form and open a result."""
    page = browsing.page
    enter(browsing, "article-link")
    page.get_by_role("link", name=article_title(FIRST)).click()
    page.wait_for_url(stack.mapped(f"{WWW}/article/{FIRST}"))
    expect(page.get_by_role("heading", level=1)).to_have_text(article_title(FIRST))
    assert_contained(browsing, stack)
    enter(browsing, "search-form")
    page.get_by_role("searchbox", name="Search").fill(SEARCH)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(stack.mapped(f"{WWW}/search?q={SEARCH}"))
    expect(page.locator("main")).to_contain_text(f"results for “{SEARCH}”")
    assert_contained(browsing, stack)
    enter(browsing, "search-result")
    page.get_by_role("link", name=article_title(FOUND)).click()
    page.wait_for_url(stack.mapped(f"{WWW}/article/{FOUND}"))
    assert_contained(browsing, stack)


def related_and_pdf(browsing: Browsing, stack: Stack) -> None:
    """The article's CORS fetch to the API host renders, and its PDF downloads intact."""
    page = browsing.page
    enter(browsing, "cors-fetch")
    expect(page.locator("#related-list")).to_contain_text(article_title(RELATED))
    expect(page.locator("#related")).to_have_attribute("data-loaded", re.compile(r"^[1-9]"))
    assert_contained(browsing, stack)
    enter(browsing, "pdf-download")
    # Alt+click is Chromium's "download link": a plain click opens its PDF viewer, and the
    # ``download`` attribute app.js adds is ignored because the PDF is on another (CDN) host.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click(modifiers=["Alt"])
    assert download.value.url == stack.mapped(f"{CDN}/pdf/article-{FOUND}.pdf")
    assert download.value.failure() is None
    with open(download.value.path(), "rb") as file:
        assert file.read() == pdf_bytes(FOUND), "the PDF's bytes differ from the vendor's"
    assert_contained(browsing, stack)


def test_patron_journey(pinned_browsing: Browsing, stack: Stack) -> None:
    """A patron signs in, reads, searches, downloads and signs out without leaving the proxy."""
    page = pinned_browsing.page
    sign_in(pinned_browsing, stack)
    read_and_search(pinned_browsing, stack)
    related_and_pdf(pinned_browsing, stack)
    enter(pinned_browsing, "api-host-used")
    assert any(url.startswith(stack.mapped(f"{API}/v1/search")) for url in pinned_browsing.urls)
    enter(pinned_browsing, "logout")
    page.goto(f"{stack.portal}/logout")  # a link to /logout shows a button (R21)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign out")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Signed out")
    enter(pinned_browsing, "after-logout")
    page.goto(stack.mapped(HOME))
    page.wait_for_url(re.compile(re.escape(f"{stack.portal}/login?")))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert_contained(pinned_browsing, stack)


def test_browser_without_the_pin_refuses_the_proxy(browser: Browser, stack: Stack) -> None:
    """Chromium really checks the proxy's certificate: without the pin the dev CA is untrusted."""
    context = browser.new_context(ignore_https_errors=False)
    try:
        with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
            context.new_page().goto(f"{stack.portal}/login")
    finally:
        context.close()
