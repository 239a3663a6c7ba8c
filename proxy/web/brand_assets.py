"""The brand's files on the portal: ``/brand.css`` (colours) and ``/brand/<logo>``.

Contract: ``GET /brand.css?library=CODE`` is a stylesheet of CSS custom properties from the
brand (the library's colours over the consortium's; already checked for contrast), so pages
need no inline style and their CSP allows styles from the portal only. ``GET /brand/<name>``
serves a logo named in brand.yaml from the pages folder and nothing else (no path, no other
file: the name must be one the brand lists). Both may be cached briefly.
Not here: the brand's schema (core/brand.py), loading it (web/pages.py).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from proxy.web.errors import NotFound
from proxy.web.keys import PAGES

CACHE: Final = {"Cache-Control": "public, max-age=300"}
LOGO_TYPES: Final = {  # the only logo types a brand may name (core/brand.py LOGO_NAME)
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
}


async def brand_css(request: web.Request) -> web.Response:
    """The brand's colours as CSS custom properties."""
    brand = request.app[PAGES].current.brand
    colours = brand.for_library(request.query.get("library")).colours
    css = (
        f":root {{ --accent: {colours.accent}; --ink: {colours.ink}; --paper: {colours.paper}; }}\n"
    )
    return web.Response(text=css, content_type="text/css", headers=CACHE)


async def brand_logo(request: web.Request) -> web.FileResponse:
    """A logo the brand names, from the pages folder."""
    pages = request.app[PAGES].current
    name = request.match_info["name"]
    if pages.directory is None or name not in pages.brand.logos():
        raise NotFound()
    kind = LOGO_TYPES[name.rsplit(".", 1)[1].lower()]
    return web.FileResponse(pages.directory / name, headers={**CACHE, "Content-Type": kind})


def add_routes(app: web.Application) -> None:
    """Register the brand's stylesheet and logos."""
    app.router.add_get("/brand.css", brand_css)
    app.router.add_get("/brand/{name}", brand_logo)
