"""Languages of the patron pages: which one a request gets, and its gettext catalogue.

Contract: ``LANGUAGES`` is the closed set shipped (English, Spanish, Portuguese).
``choose_language(cookie, accept_language, default)`` is the page's language: an explicit
choice (the ``clamshell_lang`` cookie on the portal host, set by the switcher) wins, then the
best ``Accept-Language`` match (babel's RFC 4647 lookup), then the configured default.
``load_catalogues()`` compiles the shipped ``proxy/locales/<lang>/LC_MESSAGES/messages.po``
in memory at start-up: no ``.mo`` files are built or committed, so a catalogue can never be
stale against its ``.po`` and installing needs no build step (a few ms for three small files).
``text_direction`` gives ``ltr``/``rtl`` from CLDR for the ``dir`` attribute.
Not here: rendering (web/pages.py), extracting messages (scripts/catalogues.sh).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR: Final = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES: Final = ("en", "es", "pt")  # English is the source language (no catalogue)
LANGUAGE_NAMES: Final = {"en": "English", "es": "Español", "pt": "Português"}  # endonyms
LANG_COOKIE: Final = "clamshell_lang"
DOMAIN: Final = "messages"


def choose_language(cookie: str | None, accept_language: str, default: str) -> str:
    """Cookie choice, else the best Accept-Language match, else ``default``."""
    if cookie in LANGUAGES:
        return cookie
    wanted = [tag for tag, _ in parse_accept_language(accept_language)]
    match = Locale.negotiate(wanted, LANGUAGES, sep="-") if wanted else None
    return match.language if match is not None else default


def parse_accept_language(value: str) -> list[tuple[str, float]]:
    """``es-MX,es;q=0.9,en;q=0.5`` → [(tag, q)] best first; malformed items are skipped."""
    out: list[tuple[str, float]] = []
    for item in value.split(",")[:32]:  # a browser sends a handful; bound the work
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and q > 0:
            out.append((tag.strip(), q))
    return sorted(out, key=lambda pair: -pair[1])


def text_direction(language: str) -> str:
    """``rtl`` for right-to-left scripts, else ``ltr`` (from CLDR's character order)."""
    try:
        order = Locale.parse(language).character_order
    except (UnknownLocaleError, ValueError):
        return "ltr"
    return "rtl" if order == "right-to-left" else "ltr"


def compile_po(po_file: Path, language: str) -> Translations:
    """A ``.po`` file compiled to a catalogue in memory."""
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def load_catalogues(
    directory: Path = LOCALES_DIR,
) -> Mapping[str, NullTranslations]:
    """Every shipped language's catalogue (English: the messages as written)."""
    catalogues: dict[str, NullTranslations] = {"en": NullTranslations()}
    for language in LANGUAGES[1:]:
        catalogues[language] = compile_po(
            directory / language / "LC_MESSAGES" / f"{DOMAIN}.po", language
        )
    return catalogues


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown (``_(…)``)."""
    return message


def untranslated(directory: Path = LOCALES_DIR) -> list[str]:
    """``lang: msgid`` for every message of the template catalogue a language lacks
    (empty, fuzzy or missing); ``scripts/catalogues.sh check`` and the tests use it."""
    with (directory / f"{DOMAIN}.pot").open("rb") as handle:
        wanted = [m.id for m in read_po(handle) if m.id]
    out = []
    for language in LANGUAGES[1:]:
        with (directory / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as handle:
            catalog = read_po(handle, locale=language)
        for msgid in wanted:
            message = catalog.get(msgid)
            strings = message.string if message is not None else ""
            filled = all(strings) if isinstance(strings, tuple) else bool(strings)
            if message is None or message.fuzzy or not filled:
                out.append(f"{language}: {msgid if isinstance(msgid, str) else msgid[0]}")
    return out
