"""Patron pages as aiohttp responses: language, brand and security headers for one request.

Contract: ``page(request, name, status=..., library=..., **values)`` renders template ``name``
of the live ``PageSet`` in the request's language (web/i18n.py: the switcher's cookie on the
portal host, else Accept-Language) with the brand of ``library`` (the card's library once it
is known, else the consortium's), and returns a ``no-store`` HTML response whose
Content-Security-Policy only lets the page load styles and images from the portal and post
forms to the portal (a login redirects on to a mapped host, which form-action covers in
Chromium). ``frame-ancestors 'none'`` and the other page protections are added for every
page we write by web/edge_headers.py. The language switcher (``POST /language``) sets the
cookie and goes back to a local path only.
Not here: templates and the brand (web/pages.py), which page to show (handlers).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from proxy.core import csrf
from proxy.core.settings import Settings
from proxy.web.i18n import LANG_COOKIE, LANGUAGE_NAMES, LANGUAGES, choose_language, text_direction
from proxy.web.keys import PAGES, SETTINGS

ONE_YEAR_S: Final = 365 * 24 * 3600
# The signed-in patron's library, noted by the relay so that an error page it leads to (a
# refusal on a vendor host) wears that library's brand; None on the portal until known.
PAGE_LIBRARY: Final = web.RequestKey("clamshell_page_library", str)


def note_library(request: web.Request, library: str) -> None:
    """The patron's library is known for this request's pages."""
    request[PAGE_LIBRARY] = library


def language_of(request: web.Request) -> str:
    """The page language for this request."""
    settings = request.app[SETTINGS]
    cookie = request.cookies.get(LANG_COOKIE) if on_portal(request) else None
    return choose_language(
        cookie, request.headers.get("Accept-Language", ""), settings.pages.default_language
    )


def on_portal(request: web.Request) -> bool:
    """Whether the request came to the portal host (the switcher's cookie lives there)."""
    return request.host.split(":")[0].lower() == request.app[SETTINGS].proxy_host


def content_policy(settings: Settings) -> str:
    """Our pages load only the portal's CSS and images and post only to the proxy's hosts."""
    portal = settings.public_url
    mapped = f"{settings.public_scheme}://*.{settings.proxy_host}"
    if settings.proxy_port:
        mapped += f":{settings.proxy_port}"
    return (
        f"default-src 'none'; style-src {portal}; img-src {portal}; "
        f"form-action {portal} {mapped}; base-uri 'none'"
    )


def render(request: web.Request, name: str, *, library: str | None = None, **values: Any) -> str:
    """Template ``name`` with the common context of every page."""
    settings, pages = request.app[SETTINGS], request.app[PAGES].current
    language = language_of(request)
    library = library or request.get(PAGE_LIBRARY)
    look = pages.brand.for_library(library)
    return pages.render(
        name,
        language,
        direction=text_direction(language),
        consortium=pages.brand.consortium.name or settings.consortium_name,
        look=look,
        library=library if library in pages.brand.libraries else None,
        portal=settings.public_url,
        switcher=on_portal(request),
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        here=request.path_qs if on_portal(request) else "/",
        **values,
    )


def page(
    request: web.Request,
    name: str,
    *,
    status: int = 200,
    library: str | None = None,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> web.Response:
    """A rendered page as a never-cached HTML response with its CSP."""
    html = render(request, name, library=library, **values)
    return web.Response(
        status=status,
        text=html,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": content_policy(request.app[SETTINGS]),
            "Vary": "Accept-Language, Cookie",
            **(headers or {}),
        },
    )


def local_path(back: str) -> str:
    """``back`` if it is a path on this host ('/…', not '//…' nor '/\\…'), else '/'."""
    if back.startswith("/") and not back.startswith(("//", "/\\")) and "\n" not in back:
        return back
    return "/"


async def switch_language(request: web.Request) -> web.Response:
    """POST /language: remember the choice in a portal-host cookie and go back."""
    settings = request.app[SETTINGS]
    form = await request.post()
    wanted, back = str(form.get("lang", "")), local_path(str(form.get("back", "/")))
    response = web.Response(status=303, headers={"Location": back, "Cache-Control": "no-store"})
    cross = csrf.is_cross_site(
        request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"), settings.public_url
    )
    if wanted in LANGUAGES and not cross:
        response.set_cookie(
            LANG_COOKIE,
            wanted,
            max_age=ONE_YEAR_S,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=settings.public_scheme == "https",
        )
    return response
