"""The patron pages in Chromium (#21): languages, a library's brand, phones, the transparency
page and error pages on vendor hosts.

Screenshots of the login page (Spanish, and the branded one) and of the transparency page are
saved in ``test-artifacts/`` (git-ignored) for people to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from proxy.demo.pages import BIGDB, WWW
from tests.browser.conftest import (
    ARTIFACTS,
    PROXY_HOST,
    REPO,
    Browsing,
    Certs,
    ServerThread,
    Stack,
    start_stack,
    stop_stack,
)

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
BRAND = """consortium:
  name: Minuteman Test Network
  colours: {accent: "#5a1d6e"}
  contact: Ask at any desk or call 555-0100
  logo: logo.png
  logo_alt: Minuteman Test Network logo
libraries:
  WEST:
    name: Westfield College Library
    colours: {accent: "#1d5e2b"}
"""
# The smallest valid PNG: one transparent pixel.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001"
    "0d0a2db40000000049454e44ae426082"
)


def fill_login(page: Page, barcode: str, secret: str) -> None:
    """Fill and submit the form by field ids (labels change with the language)."""
    page.locator("#card").fill(barcode)
    page.locator("#pin").fill(secret)
    page.locator('form[action="/login"] button[type=submit]').click()


def no_horizontal_scroll(page: Page) -> None:
    """The page fits the viewport's width."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url}: {widths[0]}px wide in a {widths[1]}px window"


def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"pages-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_switcher_turns_the_login_page_spanish_and_sign_in_works(
    browsing: Browsing, stack: Stack
) -> None:
    """The Español button re-renders the page in Spanish (lang="es"); signing in still works."""
    page = browsing.page
    page.goto(stack.login_url(f"{WWW}/"))
    page.get_by_role("button", name="Español").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_label("Número de tarjeta de la biblioteca")).to_be_visible()
    page.set_viewport_size(PHONE)
    shoot(page, "login-es-390px")
    card = stack.card("adult card")
    fill_login(page, card.barcode, card.secret)
    page.wait_for_url(stack.mapped(f"{WWW}/"))
    page.goto(f"{stack.portal}/menu")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sus bases de datos")


def test_accept_language_gives_portuguese(browser: Browser, stack: Stack) -> None:
    """A browser set to Brazilian Portuguese gets the pages in Portuguese and can sign in."""
    browsing = Browsing.open(browser, ignore_https_errors=True, locale="pt-BR")
    try:
        page = browsing.page
        page.goto(stack.login_url(f"{WWW}/"))
        expect(page.locator("html")).to_have_attribute("lang", "pt")
        expect(page.get_by_role("heading", level=1)).to_have_text("Entrar")
        card = stack.card("logs in with last name")
        expect(page.get_by_label("PIN ou sobrenome")).to_be_visible()
        fill_login(page, card.barcode, card.secret)
        page.wait_for_url(stack.mapped(f"{WWW}/"))
    finally:
        browsing.context.close()


def test_card_number_is_kept_after_an_error(browsing: Browsing, stack: Stack) -> None:
    """A wrong PIN keeps the card number in its field, clears the PIN, and the library's
    label follows the card (MAIN asks for a PIN with a numeric keypad)."""
    page, card = browsing.page, stack.card("adult card")
    page.goto(f"{stack.portal}/login")
    fill_login(page, card.barcode, "0000")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#card")).to_have_value(card.barcode)
    expect(page.locator("#pin")).to_have_value("")
    expect(page.locator("#pin")).to_have_attribute("inputmode", "numeric")
    expect(page.locator('label[for="pin"]')).to_have_text("PIN")
    expect(page.locator("#pin")).to_be_focused()


@pytest.mark.parametrize("path", ["/login", "/privacy", "/menu", "/no-such-page"])
def test_pages_fit_a_390px_phone(browsing: Browsing, stack: Stack, path: str) -> None:
    """At 390 px wide (a phone) no portal page scrolls sideways."""
    page = browsing.page
    page.set_viewport_size(PHONE)
    if path in ("/privacy", "/menu"):
        page.goto(stack.login_url(f"{WWW}/"))
        card = stack.card("student card")
        fill_login(page, card.barcode, card.secret)
        page.wait_for_url(stack.mapped(f"{WWW}/"))
        page.goto(stack.mapped(f"{BIGDB}/"))
    page.goto(f"{stack.portal}{path}")
    no_horizontal_scroll(page)


def test_transparency_page_after_two_vendors(browsing: Browsing, stack: Stack) -> None:
    """After Acme (cookie login) and BigDB, /privacy shows both with the headers and cookie
    names they got; "forget my cookies" works: Acme's next request carries no cookie."""
    page, card = browsing.page, stack.card("adult card")
    page.goto(stack.login_url(f"{WWW}/account"))
    fill_login(page, card.barcode, card.secret)
    page.wait_for_url(lambda url: "/account" in url)
    expect(page.locator("body")).to_contain_text("Signed in to Acme")
    page.goto(stack.mapped(f"{BIGDB}/"))
    page.goto(f"{stack.portal}/privacy")
    acme = page.locator("section.vendor", has_text="Acme Journal Archive")
    bigdb = page.locator("section.vendor", has_text="BigDB Search")
    expect(acme).to_contain_text("X-Patron-Pseudonym")
    expect(acme.locator("ul.headers")).to_contain_text("cookie")
    expect(acme.locator("ul.cookies")).to_contain_text("acme_session")
    expect(bigdb).to_contain_text("X-BigDB-User")
    expect(bigdb.locator("ul.headers")).to_contain_text("accept")
    page.set_viewport_size({"width": 900, "height": 900})
    shoot(page, "privacy-two-vendors")
    acme.get_by_role("button").click()
    expect(page.get_by_role("status")).to_be_visible()
    expect(page.locator("section.vendor", has_text="Acme Journal Archive")).to_have_count(1)
    expect(page.locator("ul.cookies", has_text="acme_session")).to_have_count(0)
    stack.vendor.clear()
    page.goto(stack.mapped(f"{WWW}/account"))
    first = stack.vendor.records[0]  # then Acme signs the browser in again, as at first
    assert first.host.startswith("www.acmejournals") and first.path == "/account"
    assert "cookie" not in {name.lower() for name, _ in first.headers}


def test_error_page_on_a_vendor_host_styles_itself_from_the_portal(
    browsing: Browsing, stack: Stack
) -> None:
    """An error on a mapped host loads its stylesheet from the portal and links home there."""
    page = browsing.page
    page.goto(f"https://nosuch-vendor-test.{PROXY_HOST}:{stack.port}/x")
    css = [u for u in browsing.urls if u.endswith("/static/portal.css")]
    assert css == [f"{stack.portal}/static/portal.css"]
    header = page.locator("header.site")
    expect(header).to_have_css("background-color", "rgb(11, 79, 138)")  # the portal's CSS
    expect(page.locator("a.brand")).to_have_attribute("href", f"{stack.portal}/")


@pytest.fixture(scope="module")
def branded(
    server: ServerThread, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The demo with a pages folder: brand.yaml, a logo and an overridden home page."""
    work = tmp_path_factory.mktemp("branded")
    folder = work / "pages"
    folder.mkdir()
    (folder / "brand.yaml").write_text(BRAND)
    (folder / "logo.png").write_bytes(PIXEL)
    (folder / "home.html").write_text(
        '{% extends "base.html" %}{% block title %}Welcome, readers{% endblock %}'
    )
    extra = {"pages": {"dir": str(folder)}}
    running = server.call(start_stack(server, work, certs, REPO / "vendor_rules", extra))
    yield running
    server.call(stop_stack(running))


def test_a_librarys_brand_and_template_override(browsing: Browsing, branded: Stack) -> None:
    """The brand's name, logo, colours and contact show; a library's own colour applies once
    the card's library is known; a template in the folder replaces the shipped one."""
    page = browsing.page
    page.goto(f"{branded.portal}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, readers")
    page.goto(branded.login_url(f"{WWW}/"))
    expect(page.locator("a.brand")).to_have_text("Minuteman Test Network")
    expect(page.get_by_role("img", name="Minuteman Test Network logo")).to_be_visible()
    expect(page.locator("header.site")).to_have_css("background-color", "rgb(90, 29, 110)")
    expect(page.locator("footer")).to_contain_text("555-0100")
    shoot(page, "login-branded")
    card = branded.card("logs in with last name")
    fill_login(page, card.barcode, card.secret)
    page.wait_for_url(branded.mapped(f"{WWW}/"))
    page.goto(f"{branded.portal}/menu")
    expect(page.locator("a.brand")).to_have_text("Westfield College Library")
    expect(page.locator("header.site")).to_have_css("background-color", "rgb(29, 94, 43)")
