"""The demo vendors as one aiohttp app: "Acme Journal Archive" (4 hosts), "BigDB Search", a tracker.

Contract:
- `build_vendor_app()` serves every demo host from one port and tells them apart by the Host header
  (port stripped, lowercased); an unknown Host gets 404 "unknown demo host". Routes are the
  `ROUTES` table: host -> (methods, path regex, handler).
- Pages link only to the vendors' canonical https origins (`https://www.acmejournals.test/...`):
  the proxy reaches this app over plain http through a config override, and pages do not care
  which port they are on.
- HTML/CSS/JS/JSON are gzip-compressed with `gzip.compress(mtime=0)` when Accept-Encoding allows
  it, so the bytes are deterministic; aiohttp's `enable_compression` is deliberately not used.
- With a `RequestRecorder`, every request (any host, any path, 404s included) is recorded by a
  middleware before it is handled.
- Auth is a cookie dance, not a password: `/login` on the auth host always succeeds (as for an
  IP-authenticated institution) and sets a `.acmejournals.test` domain cookie.

Not here: page content and host names (`proxy.demo.pages`), PDF bytes (`proxy.demo.pdf`), TLS.
Run standalone with `python -m proxy.demo.vendor --port 9001` (binds 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote_plus, urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from proxy.demo import pages
from proxy.demo.pages import (
    ACME_HOSTS,
    API_HOST,
    AUTH_HOST,
    BIGDB_HOST,
    BIGDB_HOSTS,
    CDN_HOST,
    TRACKER_HOST,
    WWW,
    WWW_HOST,
)
from proxy.demo.pdf import pdf_bytes

SESSION_COOKIE: Final = "acme_session"
LOGIN_FOR_ACCOUNT: Final = f"https://{AUTH_HOST}/login?return={quote(WWW + '/account', safe='')}"
MAX_SLOW_SECONDS: Final = 30.0
CLIENT_MAX_SIZE: Final = 16 * 1024 * 1024  # POST-relay tests may exceed aiohttp's 1 MiB default
GZIP_CODINGS: Final = ("gzip", "x-gzip", "*")  # most specific first; RFC 9110 §12.5.3
ISSUED_TOKENS: Final = web.AppKey("issued_tokens", set[str])

Params = Mapping[str, str]
Handler = Callable[[web.Request, Params], Awaitable[web.StreamResponse]]
NextHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- recorder


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the vendor received it (headers in order, duplicates kept)."""

    method: str
    host: str
    path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    peer: str | None

    def places(self, needle: str) -> list[str]:
        """Parts of this request holding `needle`, case-insensitively, raw or %-decoded."""
        wanted = needle.casefold()
        found = [f"header name {name!r}" for name, _ in self.headers if wanted in name.casefold()]
        found += [f"header {name!r}" for name, value in self.headers if wanted in value.casefold()]
        parts = {
            "path": self.path,
            "query": self.query_string,
            "body": self.body.decode("utf-8", "replace"),
        }
        found += [
            part
            for part, text in parts.items()
            if wanted in text.casefold() or wanted in unquote_plus(text).casefold()
        ]
        return found


@dataclass(slots=True)
class RequestRecorder:
    """Every request the demo app received, oldest first."""

    records: list[RecordedRequest] = field(default_factory=list)

    def find(self, needle: str) -> list[str]:
        """Where `needle` appears, e.g. "#3 GET www.acmejournals.test/x: header 'Cookie'"."""
        return [
            f"#{i} {r.method} {r.host}{r.path}: {place}"
            for i, r in enumerate(self.records)
            for place in r.places(needle)
        ]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.records.clear()


async def snapshot(request: web.Request) -> RecordedRequest:
    """Freeze what arrived; reading the body here keeps it readable for the handler (cached)."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        body = b""  # still record the request; a handler that reads the body answers 413
    return RecordedRequest(
        method=request.method,
        host=request_host(request),
        path=request.path,
        query_string=request.query_string,
        headers=tuple(request.headers.items()),
        body=body,
        peer=request.remote,
    )


def recording_middleware(recorder: RequestRecorder) -> Middleware:
    """A middleware appending every request to `recorder` before handling it."""

    @web.middleware
    async def record(request: web.Request, handler: NextHandler) -> web.StreamResponse:
        recorder.records.append(await snapshot(request))
        return await handler(request)

    return record


# ---------------------------------------------------------------- HTTP helpers


def request_host(request: web.Request) -> str:
    """The Host header without its port, lowercased ('' if absent)."""
    host = request.headers.get(hdrs.HOST, "").strip().lower()
    if host.startswith("["):  # IPv6 literal: "[::1]:8080"
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]


def _coding_weight(item: str) -> tuple[str, float]:
    """("gzip", 0.5) from "gzip;q=0.5"; a malformed q counts as 0."""
    coding, *params = (part.strip() for part in item.split(";"))
    weight = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
    return coding.lower(), weight


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip (explicit q=0 refuses; `*` counts)."""
    weights = dict(_coding_weight(item) for item in accept_encoding.split(",") if item.strip())
    return next((weights[c] for c in GZIP_CODINGS if c in weights), 0.0) > 0


def text_response(
    request: web.Request,
    text: str,
    content_type: str,
    *,
    headers: Mapping[str, str] | None = None,
    vary: Iterable[str] = (),
) -> web.Response:
    """UTF-8 text, gzip'd deterministically when the client accepts it."""
    body = text.encode()
    out = dict(headers or {})
    out[hdrs.CONTENT_TYPE] = f"{content_type}; charset=utf-8"
    out[hdrs.VARY] = ", ".join((*vary, "Accept-Encoding"))
    if accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
        body = gzip.compress(body, mtime=0)
        out[hdrs.CONTENT_ENCODING] = "gzip"
    return web.Response(body=body, headers=out)


def html(
    request: web.Request, page: str, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An HTML page (see `text_response`)."""
    return text_response(request, page, "text/html", headers=headers)


def redirect(location: str, *, cookies: Iterable[str] = ()) -> web.Response:
    """A 302 carrying `Set-Cookie` lines written out literally (attribute order as real vendors)."""
    response = web.Response(status=302, text="Found", headers={hdrs.LOCATION: location})
    for cookie in cookies:
        response.headers.add(hdrs.SET_COOKIE, cookie)
    return response


def not_found() -> web.Response:
    """The vendor's plain 404."""
    return web.Response(status=404, text="not found")


def article_number(params: Params) -> int | None:
    """The `n` path parameter if it names an existing article."""
    n = int(params["n"])
    return n if 1 <= n <= pages.ARTICLE_COUNT else None


def ranged_response(request: web.Request, data: bytes, content_type: str) -> web.Response:
    """`data` whole (200) or one `Range: bytes=a-b` slice (206 / 416).

    The bytes live in memory (`pdf_bytes` is cached), so slicing them beats `web.FileResponse`,
    which would need a temp file with an owner and cleanup. aiohttp's `request.http_range` parses
    the header; a malformed or multi-range header is ignored (RFC 9110 §14.2 allows it): 200.
    If-Range is not supported: the bytes never change.
    """
    headers = {hdrs.CONTENT_TYPE: content_type, hdrs.ACCEPT_RANGES: "bytes"}
    try:
        wanted = request.http_range if hdrs.RANGE in request.headers else None
    except ValueError:
        wanted = None
    if wanted is None:
        return web.Response(body=data, headers=headers)
    start, stop, _ = wanted.indices(len(data))
    if start >= stop:
        headers[hdrs.CONTENT_RANGE] = f"bytes */{len(data)}"
        return web.Response(status=416, headers=headers)
    headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{len(data)}"
    return web.Response(status=206, body=data[start:stop], headers=headers)


# ---------------------------------------------------------------- www host


async def www_home(request: web.Request, params: Params) -> web.StreamResponse:
    """Home page."""
    return html(request, pages.home_page())


async def www_search(request: web.Request, params: Params) -> web.StreamResponse:
    """Search results for ?q= (reflected, escaped by the template)."""
    return html(request, pages.search_page(request.query.get("q", "")))


async def www_article(request: web.Request, params: Params) -> web.StreamResponse:
    """Article pages 1..20."""
    n = article_number(params)
    return not_found() if n is None else html(request, pages.article_page(n))


async def www_headers(request: web.Request, params: Params) -> web.StreamResponse:
    """The request headers as received, for a person to eyeball."""
    return html(request, pages.headers_page(request.remote, request.headers.items()))


async def www_headers_json(request: web.Request, params: Params) -> web.StreamResponse:
    """The request headers as received, as JSON pairs (duplicates kept)."""
    body = {
        "method": request.method,
        "path": request.path_qs,
        "remote": request.remote,
        "headers": [[name, value] for name, value in request.headers.items()],
    }
    return text_response(request, json.dumps(body, indent=2), "application/json")


async def www_form(request: web.Request, params: Params) -> web.StreamResponse:
    """GET: the form; POST: the fields received, escaped."""
    if request.method != hdrs.METH_POST:
        return html(request, pages.form_page())
    posted = await request.post()
    fields = [(name, field_text(value)) for name, value in posted.items()]
    return html(request, pages.form_echo_page(fields))


def field_text(value: str | bytes | bytearray | web.FileField) -> str:
    """A posted value as text (a file upload is shown by name)."""
    if isinstance(value, web.FileField):
        return f"(file {value.filename})"
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


async def www_account(request: web.Request, params: Params) -> web.StreamResponse:
    """The account page, only with a session cookie this app issued."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if token not in request.app[ISSUED_TOKENS]:
        return redirect(LOGIN_FOR_ACCOUNT)
    return html(request, pages.account_page(), headers={hdrs.CACHE_CONTROL: "private, no-store"})


async def www_redirect_to(request: web.Request, params: Params) -> web.StreamResponse:
    """302 to any absolute http(s) URL given as ?to= (an open redirect, on purpose)."""
    target = request.query.get("to", "")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return web.Response(status=400, text="to= must be an absolute http(s) URL")
    return redirect(target)


async def www_slow(request: web.Request, params: Params) -> web.StreamResponse:
    """Answer after ?seconds= (capped at 30)."""
    try:
        seconds = min(max(float(request.query.get("seconds", "1")), 0.0), MAX_SLOW_SECONDS)
    except ValueError:
        return web.Response(status=400, text="seconds must be a number")
    await asyncio.sleep(seconds)
    return text_response(request, f"slept {seconds:g} s\n", "text/plain")


async def www_big(request: web.Request, params: Params) -> web.StreamResponse:
    """~100 KB of HTML dense with absolute links."""
    return html(request, pages.big_page())


async def www_small(request: web.Request, params: Params) -> web.StreamResponse:
    """~2 KB of HTML."""
    return html(request, pages.small_page())


# ---------------------------------------------------------------- cdn host

STYLESHEETS: Final = {"site": pages.SITE_CSS, "print": pages.PRINT_CSS}
ASSET_CACHING: Final[Mapping[str, str]] = {hdrs.CACHE_CONTROL: "public, max-age=3600"}


async def cdn_css(request: web.Request, params: Params) -> web.StreamResponse:
    """site.css and print.css."""
    css = STYLESHEETS[params["name"]]
    return text_response(request, css, "text/css", headers=ASSET_CACHING)


async def cdn_js(request: web.Request, params: Params) -> web.StreamResponse:
    """app.js, holding absolute URLs of the Acme hosts."""
    return text_response(request, pages.APP_JS, "text/javascript", headers=ASSET_CACHING)


async def cdn_png(request: web.Request, params: Params) -> web.StreamResponse:
    """Any /img/*.png: the same tiny valid PNG."""
    return web.Response(body=pages.TINY_PNG, content_type="image/png", headers=ASSET_CACHING)


# A stand-in web font (bytes with the WOFF2 signature; the browser test fetches it in CORS
# mode without credentials, as @font-face and crossorigin=anonymous do).
FONT_BYTES: Final = b"wOF2" + bytes(60)


async def cdn_font(request: web.Request, params: Params) -> web.StreamResponse:
    """/fonts/*.woff2: fonts are fetched cookieless in CORS mode, so allow any origin."""
    headers = {**ASSET_CACHING, hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*"}
    return web.Response(body=FONT_BYTES, content_type="font/woff2", headers=headers)


async def www_cors(request: web.Request, params: Params) -> web.StreamResponse:
    """A page that calls the JSON API with a custom header (a CORS preflight first) and
    fetches a web font cookieless; it writes what loaded into #api and #font."""
    return html(request, pages.cors_page())


async def cdn_pdf(request: web.Request, params: Params) -> web.StreamResponse:
    """The ~3 MB article PDF, with Range support."""
    n = article_number(params)
    if n is None:
        return not_found()
    data = await asyncio.to_thread(pdf_bytes, n)  # first build is ~30 ms of CPU
    return ranged_response(request, data, "application/pdf")


# ---------------------------------------------------------------- auth host


def safe_return(url: str) -> str:
    """`url` if it is an http(s) URL on an Acme host, else the www home page."""
    parts = urlsplit(url)
    if (
        parts.scheme in ("http", "https")
        and "\\" not in url
        and (parts.hostname or "") in ACME_HOSTS
    ):
        return url
    return f"{WWW}/"


def session_cookie(token: str, *, expire: bool = False) -> str:
    """The `acme_session` domain cookie (or its expiry)."""
    max_age = "; Max-Age=0" if expire else ""
    return (
        f"{SESSION_COOKIE}={token}; Domain=.acmejournals.test; Path=/{max_age}; "
        "HttpOnly; Secure; SameSite=None"
    )


async def auth_login(request: web.Request, params: Params) -> web.StreamResponse:
    """Issue a session token and go back to ?return= (Acme hosts only)."""
    token = secrets.token_urlsafe(24)
    request.app[ISSUED_TOKENS].add(token)
    cookies = (session_cookie(token), "auth_seen=1; Path=/; Secure")
    return redirect(safe_return(request.query.get("return", "")), cookies=cookies)


async def auth_logout(request: web.Request, params: Params) -> web.StreamResponse:
    """Revoke the session token, expire the cookie, go back to ?return= (or www home)."""
    request.app[ISSUED_TOKENS].discard(request.cookies.get(SESSION_COOKIE, ""))
    cookies = (session_cookie("", expire=True),)
    return redirect(safe_return(request.query.get("return", "")), cookies=cookies)


# ---------------------------------------------------------------- api host


def cors_headers(request: web.Request) -> dict[str, str]:
    """Credentialed CORS for whatever Origin asked (as many vendor APIs do)."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return {}
    return {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin, hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true"}


async def api_search(request: web.Request, params: Params) -> web.StreamResponse:
    """JSON search results with absolute article URLs."""
    body = pages.search_results_json(request.query.get("q", ""))
    return text_response(
        request, body, "application/json", headers=cors_headers(request), vary=("Origin",)
    )


async def api_preflight(request: web.Request, params: Params) -> web.StreamResponse:
    """CORS preflight: 204 allowing the usual methods and whatever headers were asked for."""
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "Content-Type")
    headers = {
        **cors_headers(request),
        hdrs.VARY: "Origin",
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, OPTIONS",
        hdrs.ACCESS_CONTROL_ALLOW_HEADERS: asked,
        hdrs.ACCESS_CONTROL_MAX_AGE: "600",
    }
    return web.Response(status=204, headers=headers)


# ---------------------------------------------------------------- bigdb and tracker


async def bigdb_home(request: web.Request, params: Params) -> web.StreamResponse:
    """BigDB's search form."""
    return html(request, pages.bigdb_home_page())


async def bigdb_search(request: web.Request, params: Params) -> web.StreamResponse:
    """BigDB results, linking to Acme articles."""
    return html(request, pages.bigdb_results_page(request.query.get("q", "")))


async def tracker_js(request: web.Request, params: Params) -> web.StreamResponse:
    """The third-party tracking script."""
    return text_response(request, pages.TRACKER_JS, "text/javascript")


async def tracker_beacon(request: web.Request, params: Params) -> web.StreamResponse:
    """The tracker's beacon: nothing to say back."""
    return web.Response(status=204)


# ---------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class Route:
    """Methods (HEAD counts as GET) and a full-match path regex with named groups."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler


def route(methods: str, pattern: str, handler: Handler) -> Route:
    """A `Route` from "GET POST" and a regex."""
    return Route(frozenset(methods.split()), re.compile(pattern), handler)


ROUTES: Final[Mapping[str, tuple[Route, ...]]] = {
    WWW_HOST: (
        route("GET", r"/", www_home),
        route("GET", r"/search", www_search),
        route("GET", r"/article/(?P<n>[0-9]{1,4})", www_article),
        route("GET", r"/headers", www_headers),
        route("GET", r"/headers\.json", www_headers_json),
        route("GET POST", r"/form", www_form),
        route("GET", r"/account", www_account),
        route("GET", r"/redirect-to", www_redirect_to),
        route("GET", r"/slow", www_slow),
        route("GET", r"/big\.html", www_big),
        route("GET", r"/page-2k\.html", www_small),
        route("GET", r"/cors", www_cors),
    ),
    CDN_HOST: (
        route("GET", r"/css/(?P<name>site|print)\.css", cdn_css),
        route("GET", r"/js/app\.js", cdn_js),
        route("GET", r"/img/[A-Za-z0-9_-]+\.png", cdn_png),
        route("GET", r"/pdf/article-(?P<n>[0-9]{1,4})\.pdf", cdn_pdf),
        route("GET", r"/fonts/[a-z0-9-]+\.woff2", cdn_font),
    ),
    AUTH_HOST: (
        route("GET", r"/login", auth_login),
        route("GET POST", r"/logout", auth_logout),
    ),
    API_HOST: (
        route("GET", r"/v1/search", api_search),
        route("OPTIONS", r"/v1/.*", api_preflight),
    ),
    BIGDB_HOST: (
        route("GET", r"/", bigdb_home),
        route("GET", r"/search", bigdb_search),
    ),
    TRACKER_HOST: (
        route("GET", r"/t\.js", tracker_js),
        route("GET", r"/p\.gif", tracker_beacon),
    ),
}


def match_route(routes: Iterable[Route], method: str, path: str) -> tuple[Route, Params] | set[str]:
    """The route and its parameters, or the methods allowed on `path` (empty: no such path)."""
    method = hdrs.METH_GET if method == hdrs.METH_HEAD else method
    allowed: set[str] = set()
    for candidate in routes:
        found = candidate.pattern.fullmatch(path)
        if found and method in candidate.methods:
            return candidate, found.groupdict()
        if found:
            allowed |= candidate.methods
    return allowed


async def dispatch(request: web.Request) -> web.StreamResponse:
    """The single aiohttp handler: pick the vendor host, then the route."""
    routes = ROUTES.get(request_host(request))
    if routes is None:
        return web.Response(status=404, text="unknown demo host")
    found = match_route(routes, request.method, request.path)
    if isinstance(found, tuple):
        chosen, params = found
        return await chosen.handler(request, params)
    if found:
        return web.Response(status=405, headers={hdrs.ALLOW: ", ".join(sorted(found))})
    return not_found()


def build_vendor_app(recorder: RequestRecorder | None = None) -> web.Application:
    """The demo vendors' app; with `recorder`, every request is recorded first."""
    middlewares = [recording_middleware(recorder)] if recorder is not None else []
    app = web.Application(middlewares=middlewares, client_max_size=CLIENT_MAX_SIZE)
    app[ISSUED_TOKENS] = set()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def start_vendor(
    host: str = "127.0.0.1", port: int = 0, recorder: RequestRecorder | None = None
) -> tuple[web.AppRunner, int]:
    """Start the app on `host:port` (0: any free port); the caller owns `runner.cleanup()`."""
    runner = web.AppRunner(build_vendor_app(recorder), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


def main(argv: list[str] | None = None) -> None:
    """`python -m proxy.demo.vendor --port 9001`: serve the demo vendors on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args(argv)
    hosts = ", ".join((*ACME_HOSTS, *BIGDB_HOSTS, TRACKER_HOST))
    print(f"demo vendor hosts (send them as Host:): {hosts}")
    web.run_app(build_vendor_app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
