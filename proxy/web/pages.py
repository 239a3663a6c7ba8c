"""The patron pages' templates and brand: loaded, validated, rendered (jinja2, autoescape on).

Contract: ``load_pages(directory)`` builds a ``PageSet``: one jinja2 environment per shipped
language (gettext from web/i18n.py, autoescaping every value), whose loader looks first in the
library's override folder (``pages.dir`` in proxy.yaml) and then in the shipped
``proxy/web/templates``, plus the ``Brand`` from ``<dir>/brand.yaml`` (defaults without it).
Every template is compiled up front: a syntax error, a brand.yaml problem or a missing logo
raises ``ConfigError`` naming file:line, so a broken folder is refused at start and
``Pages.reload`` keeps the running set (the old templates stay on error).
``PageSet.render(name, language, **values)`` returns HTML text.
Not here: aiohttp (web/page_response.py builds responses), which page to show (handlers),
the brand's schema (core/brand.py), vendor pages (never rendered by us).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import jinja2
from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_decimal
from babel.support import NullTranslations
from pydantic import ValidationError

from proxy.core.brand import Brand
from proxy.errors import ConfigError, Problem
from proxy.logconfig import get_logger
from proxy.rules_loader import validation_problems
from proxy.web.i18n import LANGUAGES, load_catalogues
from proxy.yamlsource import load_yaml, read_limited

SHIPPED_TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
BRAND_FILE: Final = "brand.yaml"
TEMPLATE_SUFFIX: Final = ".html"
log = get_logger("pages")


@dataclass(frozen=True, slots=True)
class PageSet:
    """One validated set of templates and brand; replaced whole on reload."""

    environments: Mapping[str, jinja2.Environment]
    brand: Brand
    directory: Path | None

    def render(self, name: str, language: str, **values: Any) -> str:
        """Render template ``name`` in ``language`` (falls back to English)."""
        env = self.environments.get(language) or self.environments["en"]
        return env.get_template(name).render(language=language, **values)


def make_environment(
    directory: Path | None, language: str, translations: NullTranslations
) -> jinja2.Environment:
    """An environment for one language: override folder first, then the shipped templates."""
    folders = [str(directory)] if directory else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*folders, str(SHIPPED_TEMPLATES)]),
        autoescape=True,  # every value is escaped, in every template, whatever its name
        undefined=jinja2.StrictUndefined,  # a typo in a variable name is an error, not blank
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # compiled once at load: an edit shows only after a good reload
        cache_size=-1,  # never evicted, so never re-read from a folder being edited
    )
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["date"] = lambda value: format_date(value, format="long", locale=language)
    env.filters["datetime"] = lambda value: format_datetime(value, format="short", locale=language)
    # A text held in a variable (an error's public_message) is translated with ``|tr``, which
    # returns a plain str that autoescaping then escapes: ``_(variable)`` would mark it safe.
    env.filters["tr"] = lambda value: str(translations.gettext(str(value)))
    env.filters["number"] = lambda value: format_decimal(value, locale=language)
    env.filters["duration"] = lambda value: format_timedelta(
        value, threshold=1.1, format="long", locale=language
    )
    env.filters["isodate"] = lambda value: format_date(
        date.fromisoformat(value), format="long", locale=language
    )
    return env


def template_names(directory: Path | None) -> list[str]:
    """Every template the set can render (shipped ones and the folder's own)."""
    names = {p.name for p in SHIPPED_TEMPLATES.glob(f"*{TEMPLATE_SUFFIX}")}
    if directory is not None:
        names |= {p.name for p in directory.glob(f"*{TEMPLATE_SUFFIX}")}
    return sorted(names)


def compile_all(env: jinja2.Environment, names: list[str]) -> list[Problem]:
    """Compile every template; a syntax error becomes a file:line problem."""
    problems = []
    for name in names:
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or name
            problems.append(Problem(where, exc.lineno, "", f"template error: {exc.message}"))
    return problems


def load_brand(directory: Path | None) -> Brand:
    """``<directory>/brand.yaml`` validated (the defaults when there is none)."""
    if directory is None or not (directory / BRAND_FILE).is_file():
        return Brand()
    path = directory / BRAND_FILE
    data, lines = load_yaml(read_limited(path), str(path))
    try:
        brand = Brand.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, str(path), lines)) from None
    missing = sorted(n for n in brand.logos() if not (directory / n).is_file())
    if missing:
        raise ConfigError([Problem(str(path), None, "logo", f"no such file: {missing[0]}")])
    return brand


def load_pages(directory: Path | str | None) -> PageSet:
    """Load and validate the folder's templates and brand over the shipped defaults."""
    folder = Path(directory) if directory else None
    if folder is not None and not folder.is_dir():
        raise ConfigError([Problem(str(folder), None, "pages.dir", "not a folder")])
    problems: list[Problem] = []
    try:
        brand = load_brand(folder)
    except ConfigError as exc:  # reported with the templates' problems, all at once
        brand, problems = Brand(), list(exc.problems)
    catalogues = load_catalogues()
    envs = {lang: make_environment(folder, lang, catalogues[lang]) for lang in LANGUAGES}
    names = template_names(folder)
    problems += compile_all(envs["en"], names)
    for env in envs.values():  # each language compiles its own copy now, not on first use
        problems = problems or compile_all(env, names)
    if problems:
        raise ConfigError(problems)
    return PageSet(envs, brand, folder)


@dataclass(slots=True)
class Pages:
    """The live ``PageSet`` and its reload (the old set stays when the new one is broken)."""

    current: PageSet
    problems: tuple[str, ...] = field(default=())

    def reload(self) -> bool:
        """Load the folder again; keep the running set (and log why) when it is broken."""
        try:
            self.current = load_pages(self.current.directory)
        except ConfigError as exc:
            self.problems = tuple(str(p) for p in exc.problems)
            log.error("pages_reload_failed", problems=list(self.problems))  # file:line: what
            return False
        self.problems = ()
        log.info("pages_reloaded")
        return True
