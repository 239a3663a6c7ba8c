"""WCAG contrast of brand colours, and the brand's per-library look."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from proxy.core.brand import Brand
from proxy.core.contrast import contrast_ratio, parse_hex


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [
        ("#000000", "#ffffff", 21.0),  # the extremes (WCAG 2.2 definition)
        ("#fff", "#ffffff", 1.0),
        ("#0b4f8a", "#ffffff", 8.4),  # the default accent on white
        ("#767676", "#ffffff", 4.54),  # the classic lightest AA grey on white
    ],
)
def test_contrast_ratio(a: str, b: str, ratio: float) -> None:
    """Known pairs give WCAG's ratio, whichever colour comes first."""
    assert contrast_ratio(a, b) == pytest.approx(ratio, abs=0.05)
    assert contrast_ratio(b, a) == pytest.approx(ratio, abs=0.05)


@pytest.mark.parametrize("bad", ["0b4f8a", "#0b4f8", "#ggg", "red", "#0b4f8a00"])
def test_only_hex_colours_parse(bad: str) -> None:
    """Anything but #rgb / #rrggbb is refused."""
    with pytest.raises(ValueError, match="not a colour"):
        parse_hex(bad)


@pytest.mark.parametrize(
    ("colours", "pair"),
    [
        ({"accent": "#f5b400"}, "white on accent"),
        ({"ink": "#999999"}, "ink on paper"),
        ({"accent": "#0b4f8a", "paper": "#0b4f8a", "ink": "#ffffff"}, "accent on paper"),
    ],
)
def test_low_contrast_colours_are_refused(colours: dict[str, str], pair: str) -> None:
    """Each pair the pages use must reach AA (4.5:1)."""
    with pytest.raises(ValidationError, match=pair):
        Brand.model_validate({"consortium": {"colours": colours}})


def test_a_librarys_look_falls_back_to_the_consortiums() -> None:
    """A library's values replace the consortium's; what it leaves out is inherited."""
    brand = Brand.model_validate(
        {
            "consortium": {"name": "Net", "contact": "555", "colours": {"accent": "#5a1d6e"}},
            "libraries": {"WEST": {"name": "West"}},
        }
    )
    west = brand.for_library("WEST")
    assert (west.name, west.contact, west.colours.accent) == ("West", "555", "#5a1d6e")
    assert brand.for_library("NOPE") == brand.consortium == brand.for_library(None)


@pytest.mark.parametrize("logo", ["../x.png", "a/b.png", "logo.svg", ".hidden.png"])
def test_logo_must_be_a_plain_raster_file_name(logo: str) -> None:
    """No paths, no SVG (script on the portal origin)."""
    with pytest.raises(ValidationError, match="logo"):
        Brand.model_validate({"consortium": {"logo": logo}})
