"""A consortium's and its member libraries' branding (``brand.yaml``) as frozen values.

Contract: ``Brand.model_validate(raw)`` turns brand.yaml's plain data into immutable values or
raises pydantic's ``ValidationError`` (the loader names file:line:key). Colours are checked for
WCAG AA contrast (4.5:1) in the pairs the pages use: text on the page, white header text and
button labels on the accent colour, and links (accent) on the page. ``Brand.for_library(code)``
is the look a page uses once the card's library is known: the library's own values over the
consortium's. Logo names are plain file names in the pages folder (PNG, JPEG, WebP or GIF;
no SVG, which could carry script on the portal's origin).
Not here: reading the file (web/pages_loader.py), rendering (web/pages.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from proxy.core.contrast import AA_NORMAL_TEXT, contrast_ratio, parse_hex

LOGO_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}\.(?:png|jpe?g|webp|gif)$")
WHITE: Final = "#ffffff"
HTTP_URL: Final = re.compile(r"^https?://[^\s\"'<>]+$")


def _colour(value: str) -> str:
    parse_hex(value)
    return value.lower()


def _logo(value: str) -> str:
    if not LOGO_NAME.match(value):
        raise ValueError("logo must be a file name in the pages folder ending .png/.jpg/.webp/.gif")
    return value


def _url(value: str) -> str:
    if not HTTP_URL.match(value):
        raise ValueError(f"must be an http(s) URL (got {value!r})")
    return value


Colour = Annotated[str, AfterValidator(_colour)]
LogoName = Annotated[str, AfterValidator(_logo)]
Url = Annotated[str, AfterValidator(_url)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Colours(_Frozen):
    """The three colours the stylesheet takes from the brand."""

    accent: Colour = "#0b4f8a"  # header, buttons, links
    ink: Colour = "#1a1a1a"  # body text
    paper: Colour = "#ffffff"  # page background

    @model_validator(mode="after")
    def _contrast(self) -> Colours:
        pairs = (  # (foreground, background, where the pair is used)
            (self.ink, self.paper, "ink on paper (body text)"),
            (WHITE, self.accent, "white on accent (header and buttons)"),
            (self.accent, self.paper, "accent on paper (links)"),
        )
        for fg, bg, where in pairs:
            ratio = contrast_ratio(fg, bg)
            if ratio < AA_NORMAL_TEXT:
                raise ValueError(
                    f"{where}: contrast {ratio:.2f}:1 is below WCAG AA {AA_NORMAL_TEXT}:1"
                )
        return self


class Look(_Frozen):
    """What a page shows of a brand (the consortium's, or a library's over it)."""

    name: str = ""
    logo: LogoName | None = None
    logo_alt: str = ""
    colours: Colours = Colours()
    help: str = ""  # a short paragraph under the login form
    contact: str = ""  # e.g. "Ask at any desk, or call 555-0100"
    contact_url: Url | None = None
    privacy_policy: Url | None = None


class LibraryLook(_Frozen):
    """A member library's overrides; unset fields fall back to the consortium's."""

    name: str | None = None
    logo: LogoName | None = None
    logo_alt: str | None = None
    colours: Colours | None = None
    help: str | None = None
    contact: str | None = None
    contact_url: Url | None = None
    privacy_policy: Url | None = None


class Brand(_Frozen):
    """brand.yaml: the consortium's look and each member library's overrides."""

    consortium: Look = Look()
    libraries: dict[str, LibraryLook] = Field(default_factory=dict)

    def for_library(self, code: str | None) -> Look:
        """The consortium's look with the library's own values over it."""
        own = self.libraries.get(code or "")
        if own is None:
            return self.consortium
        update = {k: v for k, v in own.model_dump(exclude_none=True).items()}
        if own.colours is not None:
            update["colours"] = own.colours
        return self.consortium.model_copy(update=update)

    def logos(self) -> frozenset[str]:
        """Every logo file the brand names (the only files /brand/ serves)."""
        named = [self.consortium.logo, *(lib.logo for lib in self.libraries.values())]
        return frozenset(n for n in named if n)
