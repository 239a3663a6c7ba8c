"""Patron pages: templates, override folder, brand, languages and the login form's UX (#21)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from proxy.errors import ConfigError
from proxy.server import reload_now
from proxy.web.i18n import LANGUAGES, LOCALES_DIR, choose_language, untranslated
from proxy.web.i18n_extract import public_texts
from proxy.web.keys import PAGES
from proxy.web.page_response import local_path
from proxy.web.pages import Pages, load_pages
from tests.web.conftest import PORTAL, PUBLIC, REPO, Stack, StackFactory
from tests.web.helpers import HOST, post_login

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
WWW = f"www-acmejournals-test.{PORTAL}"
GOOD_BRAND = """consortium:
  name: Minuteman Test Network
  colours: {accent: "#5a1d6e"}
  contact: Call 555-0100
  logo: logo.png
libraries:
  WEST:
    name: Westfield College Library
    colours: {accent: "#1d5e2b"}
    contact: westfield-help@example.edu
"""


def test_every_message_is_translated_in_every_language() -> None:
    """Each message of the template catalogue has a non-fuzzy translation in es and pt."""
    assert untranslated() == []


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_translations_keep_every_placeholder(language: str) -> None:
    """A translation names exactly the %(…)s values of its message (else rendering breaks)."""
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1])) | (set() if len(ids) == 1 else {"num"})
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) <= wanted | {"num"}, (language, ids[0])
            assert set(PLACEHOLDER.findall(text)) >= set(PLACEHOLDER.findall(ids[0])) - {"num"}


@pytest.mark.parametrize(
    ("cookie", "accept", "default", "chosen"),
    [
        (None, "es-MX,es;q=0.9,en;q=0.5", "en", "es"),
        (None, "pt-BR", "en", "pt"),
        (None, "fr-CA, de", "en", "en"),
        (None, "fr", "es", "es"),
        ("pt", "es", "en", "pt"),  # the switcher's choice wins
        ("xx", "es", "en", "es"),  # an unknown cookie value is ignored
        (None, "en;q=0.2, pt;q=0.8", "en", "pt"),
        (None, "es;q=0, pt;q=abc", "en", "en"),  # q=0 means "not this"; junk skipped
    ],
)
def test_language_choice(cookie: str | None, accept: str, default: str, chosen: str) -> None:
    """Cookie, then Accept-Language by quality, then the configured default."""
    assert choose_language(cookie, accept, default) == chosen


@pytest.mark.parametrize(
    ("back", "kept"),
    [
        ("/login?url=x", "/login?url=x"),
        ("//evil.test/", "/"),
        ("/\\evil.test", "/"),
        ("https://evil.test/", "/"),
        ("", "/"),
    ],
)
def test_switcher_goes_back_only_to_local_paths(back: str, kept: str) -> None:
    """The language switcher is not an open redirect."""
    assert local_path(back) == kept


async def test_accept_language_gives_a_spanish_login_page(stack: Stack) -> None:
    """Accept-Language: es → Spanish words, lang="es" dir="ltr"."""
    resp = await stack.client.get("/login", headers={**HOST, "Accept-Language": "es-US,en;q=0.5"})
    html = await resp.text()
    assert '<html lang="es" dir="ltr">' in html
    assert "Número de tarjeta de la biblioteca" in html and "Iniciar sesión" in html
    assert "Vary" in resp.headers and "Accept-Language" in resp.headers["Vary"]


async def test_switcher_sets_a_portal_cookie_and_wins_over_accept_language(stack: Stack) -> None:
    """POST /language from the portal sets clamshell_lang; a cross-site post sets nothing."""
    hostile = await stack.client.post(
        "/language",
        data={"lang": "pt", "back": "/login"},
        headers={**HOST, "Origin": f"http://{WWW}"},
        allow_redirects=False,
    )
    assert hostile.status == 303 and "clamshell_lang" not in hostile.cookies
    resp = await stack.client.post(
        "/language",
        data={"lang": "pt", "back": "/login"},
        headers={**HOST, "Origin": PUBLIC},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    morsel = resp.cookies["clamshell_lang"]
    assert morsel.value == "pt" and not morsel["domain"]  # host-only: the portal's
    page = await stack.client.get(
        "/login", headers={**HOST, "Accept-Language": "es", "Cookie": "clamshell_lang=pt"}
    )
    assert '<html lang="pt"' in await page.text()


async def test_card_number_is_kept_after_an_error_but_never_the_pin(stack: Stack) -> None:
    """After a refusal the card field holds what was typed; the secret field is empty."""
    card = stack.card("adult card")
    resp = await post_login(stack.client, card.barcode, "9999")
    html = await resp.text()
    assert f'name="card" value="{card.barcode}"' in html
    assert "9999" not in html


async def test_typed_card_is_escaped(stack: Stack) -> None:
    """Autoescape: markup typed into the card field comes back as text."""
    resp = await post_login(stack.client, '"><script>alert(1)</script>', "1")
    html = await resp.text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


async def test_label_and_keypad_follow_the_library(stack: Stack) -> None:
    """?lib=WEST asks for the last name (text keypad); MAIN for a PIN (numeric keypad)."""
    west = await (await stack.client.get("/login?lib=WEST", headers=HOST)).text()
    main = await (await stack.client.get("/login?lib=MAIN", headers=HOST)).text()
    assert '<label for="pin">Last name</label>' in west and 'inputmode="text"' in west
    assert '<input type="hidden" name="lib" value="WEST">' in west  # kept for the next try
    assert '<label for="pin">PIN</label>' in main
    assert 'id="pin" name="pin" inputmode="numeric"' in main
    either = await (await stack.client.get("/login", headers=HOST)).text()
    assert '<label for="pin">PIN or last name</label>' in either


async def test_expired_date_is_formatted_for_the_language(stack: Stack) -> None:
    """The expiry date reads as a date in the page's language, not ISO."""
    card = stack.card("expired card")
    resp = await post_login(stack.client, card.barcode, card.secret, **{"Accept-Language": "es"})
    html = await resp.text()
    assert card.expires.isoformat() not in html
    assert f"venció el {card.expires.day} de " in html


async def test_error_page_on_a_vendor_host_uses_the_portal(stack: Stack) -> None:
    """A 404 on a mapped host links CSS and home to the portal by absolute URL."""
    resp = await stack.client.get("/x", headers={"Host": f"nosuch-vendor-test.{PORTAL}"})
    html = await resp.text()
    assert resp.status >= 400
    assert f'href="{PUBLIC}/static/portal.css"' in html
    assert f'<a class="brand" href="{PUBLIC}/">' in html
    assert f"style-src {PUBLIC}" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Server"] == "clamshell"


def write_folder(folder: Path, brand: str = GOOD_BRAND, **templates: str) -> Path:
    """A pages folder with brand.yaml, a logo and the given templates."""
    folder.mkdir(exist_ok=True)
    (folder / "brand.yaml").write_text(brand)
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for name, text in templates.items():
        (folder / name).write_text(text)
    return folder


async def test_brand_and_override_folder(make_stack: StackFactory, tmp_path: Path) -> None:
    """brand.yaml names the pages, colours /brand.css per library, serves only its logo;
    a template in the folder replaces the shipped one."""
    folder = write_folder(
        tmp_path / "pages",
        **{"home.html": '{% extends "base.html" %}{% block title %}Welcome{% endblock %}'},
    )
    (folder / "secret.txt").write_text("not for serving")
    stack = await make_stack(pages={"dir": str(folder)})
    home = await (await stack.client.get("/", headers=HOST)).text()
    assert "Minuteman Test Network" in home and "<h1>Welcome</h1>" in home
    assert f'src="{PUBLIC}/brand/logo.png"' in home and "Call 555-0100" in home
    css = await (await stack.client.get("/brand.css", headers=HOST)).text()
    west = await (await stack.client.get("/brand.css?library=WEST", headers=HOST)).text()
    assert "#5a1d6e" in css and "#1d5e2b" in west
    assert (await stack.client.get("/brand/logo.png", headers=HOST)).status == 200
    assert (await stack.client.get("/brand/secret.txt", headers=HOST)).status == 404
    assert (await stack.client.get("/brand/..%2Fbrand.yaml", headers=HOST)).status == 404


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A broken template is refused at load with file:line."""
    folder = write_folder(tmp_path / "p", **{"menu.html": "ok\n{% if %}\n"})
    with pytest.raises(ConfigError) as caught:
        load_pages(folder)
    assert f"{folder / 'menu.html'}:2: template error" in str(caught.value.problems[0])


def test_low_contrast_brand_is_refused_with_its_line(tmp_path: Path) -> None:
    """Colours below WCAG AA are refused, naming brand.yaml's line and key."""
    folder = write_folder(tmp_path / "p", brand='consortium:\n  colours:\n    accent: "#ffff66"\n')
    with pytest.raises(ConfigError) as caught:
        load_pages(folder)
    problem = str(caught.value.problems[0])
    assert "brand.yaml:2: consortium.colours" in problem and "below WCAG AA" in problem


def test_reload_keeps_the_old_templates_on_error(tmp_path: Path) -> None:
    """A reload with a broken template keeps the running set and says why."""
    folder = write_folder(tmp_path / "p", **{"home.html": "v1 {{ language }}"})
    pages = Pages(load_pages(folder))
    (folder / "home.html").write_text("v2 {% endif %}")
    assert pages.reload() is False and pages.problems
    assert pages.current.render("home.html", "en") == "v1 en"
    (folder / "home.html").write_text("v3 {{ language }}")
    assert pages.reload() is True and pages.current.render("home.html", "es") == "v3 es"


async def test_shipped_pages_render_in_every_language(stack: Stack) -> None:
    """Home, login, logout, privacy and a 404 render in each language without errors."""
    for language in LANGUAGES:
        for path in ("/", "/login", "/logout", "/privacy", "/nope"):
            resp = await stack.client.get(path, headers={**HOST, "Accept-Language": language})
            assert f'<html lang="{language}"' in await resp.text(), (language, path)
    assert stack.app[PAGES].current.directory is None


async def test_lockout_says_when_to_try_again_without_telling_cards_apart(stack: Stack) -> None:
    """A locked card number is told the wait and whom to ask, in the same words whether the
    card exists or not (locks count typed numbers, not cards)."""
    known, unknown = stack.card("adult card").barcode, "21234999999999"
    pages = []
    for barcode in (known, unknown):
        for _ in range(stack.settings.throttle.card_attempts):
            await post_login(stack.client, barcode, "0000")
        locked = await post_login(stack.client, barcode, "0000", **{"Accept-Language": "es"})
        pages.append(await locked.text())
    assert "dentro de 15 minutos" in pages[0] and "Pregunte en su biblioteca" in pages[0]
    mask = re.compile(r'name="(?:csrf|card)" value="[^"]+"')
    assert mask.sub("", pages[0]) == mask.sub("", pages[1])


def test_catalogue_template_is_up_to_date(tmp_path: Path) -> None:
    """messages.pot holds exactly what extraction finds today (run catalogues.sh extract)."""
    out = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "proxy/locales/babel.cfg",
            "-k",
            "_",
            "-k",
            "N_",
            "--no-location",
            "-o",
            str(out),
            ".",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    with out.open("rb") as fresh, (LOCALES_DIR / "messages.pot").open("rb") as committed:
        assert {m.id for m in read_po(fresh)} == {m.id for m in read_po(committed)}


def test_extraction_finds_patron_facing_constants() -> None:
    """public_message values, *_MESSAGE constants and Deny texts are extracted; others not."""
    source = (
        'class E:\n    public_message = "Shown to patrons."\n'
        'BUSY_MESSAGE: Final = ("Busy " "now.")\n'
        'X = Deny(404, "Not ours.", "no_rule")\n'
        'log.info("not for patrons")\n'
    )
    found = {text for _, text in public_texts(ast.parse(source))}
    assert found == {"Shown to patrons.", "Busy now.", "Not ours."}


async def test_vendor_host_errors_are_translated(stack: Stack) -> None:
    """A refusal on a mapped host shows its title and message in the browser's language."""
    resp = await stack.client.get(
        "/x", headers={"Host": f"nosuch-vendor-test.{PORTAL}", "Accept-Language": "pt-BR"}
    )
    html = await resp.text()
    assert '<html lang="pt"' in html
    assert "Este endereço não é de nenhuma das nossas bases de dados licenciadas." in html


async def test_refusal_on_a_vendor_host_wears_the_patrons_library_brand(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """WEST's patron refused BigDB (not licensed) sees Westfield's name and colours."""
    folder = write_folder(tmp_path / "pages")
    stack = await make_stack(pages={"dir": str(folder)})
    card = stack.card("logs in with last name")
    login = await post_login(stack.client, card.barcode, card.secret)
    auth = {"Cookie": f"clamshell_session={login.cookies['clamshell_session'].value}"}
    resp = await stack.client.get("/", headers={"Host": f"search-bigdb-test.{PORTAL}", **auth})
    html = await resp.text()
    assert resp.status == 403
    assert '<a class="brand" href="http://proxy.localhost:8080/">Westfield College Library' in html
    assert "/brand.css?library=WEST" in html


async def test_sighup_reload_swaps_pages_and_keeps_them_on_error(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """The SIGHUP reload picks up an edited template; a broken edit leaves the last good one."""
    folder = write_folder(tmp_path / "pages", **{"home.html": "one"})
    stack = await make_stack(pages={"dir": str(folder)})
    (folder / "home.html").write_text("two")
    assert await (await stack.client.get("/", headers=HOST)).text() == "one"  # compiled once
    await reload_now(stack.app, stack.settings, None)
    assert await (await stack.client.get("/", headers=HOST)).text() == "two"
    (folder / "home.html").write_text("{% if %}")
    await reload_now(stack.app, stack.settings, None)
    assert await (await stack.client.get("/", headers=HOST)).text() == "two"
    assert stack.app[PAGES].problems[0].startswith(f"{folder / 'home.html'}:1:")


def test_texts_held_in_variables_are_escaped_when_translated() -> None:
    """``|tr`` translates a variable's text and leaves it to autoescaping (not marked safe)."""
    pages = load_pages(None)
    html = pages.render(
        "error.html",
        "es",
        direction="ltr",
        consortium="C",
        look=pages.brand.consortium,
        library=None,
        portal="http://p",
        switcher=False,
        languages=[],
        here="/",
        title="Not found",
        message="<b>It's</b>",
    )
    assert "Página no encontrada" in html and "&lt;b&gt;It&#39;s&lt;/b&gt;" in html
