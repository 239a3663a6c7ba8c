"""Third-party containment: on a ``third_party: block`` vendor the browser never calls the tracker.

"Never calls" means no request left the browser: the page still names the tracker, and a
request that Chromium refuses itself under the proxy's CSP is recorded (failure "csp") but
never resolved or sent (``Browsing.sent``).

Acme's article pages load ``https://stats.trackly.test/t.js`` and its shipped rule says
``third_party: block``; this module runs its own demo on the shipped rules and checks, first,
that the rule still says so. #18.8: with Acme's rule naming no ``third_party`` (the default,
now ``block``) the tracker is never requested and the journey still works.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from proxy.demo.pages import CDN, CDN_HOST, TRACKER_HOST, WWW, article_title
from tests.browser.conftest import (
    Browsing,
    Certs,
    ServerThread,
    Stack,
    rules_with,
    start_stack,
    stop_stack,
    submit_login,
)

pytestmark = pytest.mark.browser

ARTICLE = 2


@pytest.fixture(scope="module")
def blocking_stack(
    server: ServerThread, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The demo on the shipped rules, where Acme says ``third_party: block``."""
    work = tmp_path_factory.mktemp("third-party")
    rules = rules_with(work / "rules", "acme", ("third_party: block", "third_party: block"))
    running = server.call(start_stack(server, work, certs, rules))
    yield running
    server.call(stop_stack(running))


@pytest.fixture(scope="module")
def default_stack(
    server: ServerThread, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The demo with Acme's rule naming no third_party at all: the default applies."""
    work = tmp_path_factory.mktemp("third-party-default")
    rules = rules_with(work / "rules", "acme", ("third_party: block\n", ""))
    assert "third_party" not in (rules / "acme.yaml").read_text("utf-8")
    running = server.call(start_stack(server, work, certs, rules))
    yield running
    server.call(stop_stack(running))


def test_blocked_tracker_is_never_requested(browsing: Browsing, blocking_stack: Stack) -> None:
    """An Acme article page loads without the browser asking the tracker host for anything."""
    stack, page = blocking_stack, browsing.page
    page.goto(stack.login_url(f"{WWW}/article/{ARTICLE}"))
    submit_login(page, stack.card("adult card"))
    page.wait_for_url(stack.mapped(f"{WWW}/article/{ARTICLE}"))
    expect(page.get_by_role("heading", level=1)).to_have_text(article_title(ARTICLE))
    browsing.step = "article-page"
    page.wait_for_load_state("networkidle")
    tracked = [url for url in browsing.sent() if urlsplit(url).hostname == TRACKER_HOST]
    assert not tracked, f"the browser asked the blocked tracker for: {tracked}"
    assert not [r for r in stack.vendor.records if r.host == TRACKER_HOST]


def test_default_settings_never_request_the_tracker(
    browsing: Browsing, default_stack: Stack
) -> None:
    """#18.8: with no third_party key the tracker is never requested, and the journey (login,
    article with its CDN styles and figure, the PDF) still works."""
    stack, page = default_stack, browsing.page
    page.goto(stack.login_url(f"{WWW}/article/{ARTICLE}"))
    submit_login(page, stack.card("adult card"))
    page.wait_for_url(stack.mapped(f"{WWW}/article/{ARTICLE}"))
    expect(page.get_by_role("heading", level=1)).to_have_text(article_title(ARTICLE))
    browsing.step = "article-page"
    page.wait_for_load_state("networkidle")
    tracked = [url for url in browsing.sent() if urlsplit(url).hostname == TRACKER_HOST]
    assert not tracked, f"the browser asked the tracker for: {tracked}"
    assert not [r for r in stack.vendor.records if r.host == TRACKER_HOST]
    assert any(r.host == CDN_HOST for r in stack.vendor.records), "the CDN was not reached"
    figure = page.locator("figure img").first
    expect(figure).to_be_visible()
    assert figure.evaluate("img => img.naturalWidth") > 0, "the CDN figure did not load"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click(modifiers=["Alt"])
    assert download.value.url == stack.mapped(f"{CDN}/pdf/article-{ARTICLE}.pdf")
