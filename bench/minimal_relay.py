"""The floor cost of relaying HTTP in Python: the smallest honest aiohttp reverse proxy.

Contract: ``python -m bench.minimal_relay --port P --upstream http://127.0.0.1:U`` serves
127.0.0.1:P and relays every request to the upstream through one pooled ``ClientSession``
(no redirects followed, no decompression, no cookies), streaming the body back and copying
a few headers each way. It does no policy at all: no host mapping, no session, no header
allow-list, no cookie jar, no log line. ``bench/relay.py`` compares the proxy against it:
whatever the proxy costs beyond this is the price of its policy.
With ``--rewrite-regex PROXY_SUFFIX`` it also rewrites HTML the cheapest way one could: the
whole body read, then one compiled regex pass for ``https?://host`` with a dict lookup per
match (``host`` → ``host-with-dashes.PROXY_SUFFIX``): the reference row of issue 19. It
misses every other spelling (``//host``, ``\\/\\/``, percent-encoded…) and checks nothing.
With ``--rewrite-pywb PREFIX`` it rewrites HTML with pywb's ``HTMLRewriter`` instead (every
URL to ``PREFIX<timestamp>/<url>``, inline scripts and styles too), the same way
bench/rewrite_speed.py runs it: issue 19's "≥ 20× pywb" row. pywb is imported only then; it
pins an old ``redis`` and replaces ``brotli``, so it lives in a separate virtualenv (see
bench/relay.py's ``--pywb-python``), never in the project's.
Not here: anything a real proxy must do (see proxy/web/relay.py).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
from aiohttp import hdrs, web

REQUEST_HEADERS: Final = (hdrs.HOST, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT)
RESPONSE_HEADERS: Final = (
    hdrs.CONTENT_TYPE,
    hdrs.CONTENT_LENGTH,
    hdrs.CONTENT_ENCODING,
    hdrs.ETAG,
    hdrs.LAST_MODIFIED,
    hdrs.CACHE_CONTROL,
)
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("client", aiohttp.ClientSession)  # noqa: TID251
UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)
REWRITE: web.AppKey[str] = web.AppKey("rewrite", str)  # proxy suffix; "" = no rewriting
PYWB: web.AppKey[str] = web.AppKey("pywb", str)  # archival prefix; "" = not pywb
URL: Final = re.compile(rb"https?://([a-z0-9.-]+)")


def regex_pass(body: bytes, suffix: str, cache: dict[bytes, bytes]) -> bytes:
    """One compiled regex over the body; a dict lookup per match."""

    def mapped(match: re.Match[bytes]) -> bytes:
        host = match[1]
        found = cache.get(host)
        if found is None:
            found = cache[host] = b"http://" + host.replace(b".", b"-") + suffix.encode()
        return found

    return URL.sub(mapped, body)


MAPPED: dict[bytes, bytes] = {}
CHUNK: Final = 64 * 1024  # pywb is fed in chunks, as bench/rewrite_speed.py does


def pywb_pass(body: bytes, prefix: str) -> bytes:
    """pywb's HTML rewriter (with its JS and CSS rewriters) over the body, str in, str out."""
    from pywb.rewrite.html_rewriter import HTMLRewriter  # only in the pywb virtualenv
    from pywb.rewrite.url_rewriter import UrlRewriter

    urls = UrlRewriter("20240101000000/https://www.acmejournals.test/", prefix)
    text, rewriter = body.decode("latin-1"), HTMLRewriter(urls)
    out = [rewriter.rewrite(text[i : i + CHUNK]) for i in range(0, len(text), CHUNK)]
    return ("".join(out) + rewriter.close()).encode("latin-1")


async def relay(request: web.Request) -> web.StreamResponse:
    """Forward the request as is and stream the answer back."""
    headers = {name: request.headers[name] for name in REQUEST_HEADERS if name in request.headers}
    async with request.app[CLIENT].request(
        request.method,
        request.app[UPSTREAM] + request.raw_path,
        headers=headers,
        data=request.content if request.body_exists else None,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name in RESPONSE_HEADERS:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        suffix, prefix = request.app[REWRITE], request.app[PYWB]
        if (suffix or prefix) and upstream.content_type == "text/html":
            raw = await upstream.read()
            body = pywb_pass(raw, prefix) if prefix else regex_pass(raw, suffix, MAPPED)
            response.headers[hdrs.CONTENT_LENGTH] = str(len(body))
            await response.prepare(request)
            await response.write(body)
            await response.write_eof()
            return response
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def client_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one ClientSession, pooled like the proxy's (keep-alive, 100 per host)."""
    app[CLIENT] = aiohttp.ClientSession(  # noqa: TID251 (a separate benchmark program)
        connector=aiohttp.TCPConnector(limit=256, limit_per_host=100),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=(hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
    )
    yield
    await app[CLIENT].close()


def build_app(upstream: str, rewrite: str = "", pywb: str = "") -> web.Application:
    """The relay application."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app[REWRITE] = rewrite
    app[PYWB] = pywb
    app.cleanup_ctx.append(client_ctx)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="origin, e.g. http://127.0.0.1:9001")
    help_text = "rewrite HTML with one regex pass, e.g. .proxy.localhost:8080"
    parser.add_argument("--rewrite-regex", default="", metavar="PROXY_SUFFIX", help=help_text)
    help_text = "rewrite HTML with pywb's HTMLRewriter, e.g. http://proxy.localhost:8080/web/"
    parser.add_argument("--rewrite-pywb", default="", metavar="PREFIX", help=help_text)
    args = parser.parse_args(argv)
    web.run_app(
        build_app(args.upstream, args.rewrite_regex, args.rewrite_pywb),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
