"""The demo vendor app: host dispatch, pages, gzip, PDF + Range, cookie dance, CORS, recorder."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from proxy.demo.pages import (
    ACME_HOSTS,
    API_HOST,
    AUTH_HOST,
    BIGDB_HOST,
    BIGDB_HOSTS,
    CDN_HOST,
    TRACKER_HOST,
    WWW_HOST,
)
from proxy.demo.pdf import build_pdf, pdf_bytes
from proxy.demo.vendor import RequestRecorder, accepts_gzip, build_vendor_app, start_vendor

Client = TestClient[Any, Any]
PDF_1_SHA256 = "2bb66ce1c7556ca58f8c7fd4841ccc63ce6962953f144e0bf2104a3308d08adc"


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    """A test client for a fresh vendor app without a recorder."""
    return await aiohttp_client(build_vendor_app())


async def get(client: Client, host: str, path: str, **kwargs: Any) -> ClientResponse:
    """GET `path` with an explicit Host header (plus any extra headers), no redirects followed."""
    headers = {"Host": host, **kwargs.pop("headers", {})}
    return await client.get(path, headers=headers, allow_redirects=False, **kwargs)


def set_cookies(response: ClientResponse) -> list[str]:
    """The raw Set-Cookie lines of a response."""
    return response.headers.getall("Set-Cookie", [])


# ---------------------------------------------------------------- host dispatch


def test_host_constants_name_every_demo_host() -> None:
    """The exported host constants list Acme's four hosts, BigDB's one and the tracker."""
    assert ACME_HOSTS == (WWW_HOST, CDN_HOST, AUTH_HOST, API_HOST)
    assert all(h.endswith(".acmejournals.test") for h in ACME_HOSTS)
    assert BIGDB_HOSTS == (BIGDB_HOST,) == ("search.bigdb.test",)
    assert TRACKER_HOST == "stats.trackly.test"


@pytest.mark.parametrize(
    ("host", "path", "content_type", "snippet"),
    [
        (WWW_HOST, "/", "text/html", "<title>Acme Journal Archive</title>"),
        (WWW_HOST, "/search?q=climate", "text/html", "Climate Models and Regional Rainfall"),
        (WWW_HOST, "/article/20", "text/html", "Public Health Records and Consent"),
        (CDN_HOST, "/css/site.css", "text/css", "url(https://cdn.acmejournals.test/img/bg.png)"),
        (CDN_HOST, "/css/print.css", "text/css", "@media print"),
        (CDN_HOST, "/js/app.js", "text/javascript", '"https://api.acmejournals.test/v1/search"'),
        (API_HOST, "/v1/search?q=ocean", "application/json", '"query": "ocean"'),
        (BIGDB_HOST, "/", "text/html", '<form class="search" action="/search" method="get">'),
        (TRACKER_HOST, "/t.js", "text/javascript", "https://stats.trackly.test/p.gif"),
    ],
)
async def test_each_host_serves_its_pages(
    client: Client, host: str, path: str, content_type: str, snippet: str
) -> None:
    """Each demo host answers its own paths with the right type and content."""
    response = await get(client, host, path)
    assert response.status == 200
    assert response.content_type == content_type
    assert snippet in await response.text()


async def test_host_header_port_and_case_are_ignored(client: Client) -> None:
    """The vendor is chosen from the Host header with any port stripped and case folded."""
    response = await get(client, "WWW.AcmeJournals.TEST:8443", "/")
    assert response.status == 200
    assert "Acme Journal Archive" in await response.text()


async def test_unknown_host_is_404(client: Client) -> None:
    """A Host that is not a demo host gets 404 "unknown demo host"."""
    response = await get(client, "evil.example", "/")
    assert response.status == 404
    assert await response.text() == "unknown demo host"


async def test_same_path_differs_by_host(client: Client) -> None:
    """`/search` on BigDB is BigDB's page, on the cdn host it does not exist."""
    bigdb = await get(client, BIGDB_HOST, "/search?q=baltic")
    assert "BigDB Search" in await bigdb.text()
    assert (await get(client, CDN_HOST, "/search?q=baltic")).status == 404


async def test_unknown_path_is_404_and_wrong_method_is_405(client: Client) -> None:
    """An unknown path is 404; a known path with the wrong method is 405 with Allow."""
    assert (await get(client, WWW_HOST, "/nope")).status == 404
    response = await client.delete("/article/1", headers={"Host": WWW_HOST})
    assert response.status == 405
    assert response.headers["Allow"] == "GET"


async def test_head_is_answered_like_get_without_body(client: Client) -> None:
    """HEAD on a page gives GET's status and headers and no body."""
    response = await client.head("/", headers={"Host": WWW_HOST})
    assert response.status == 200
    assert await response.read() == b""


# ---------------------------------------------------------------- www pages


@pytest.mark.parametrize(
    "snippet",
    [
        'href="https://www.acmejournals.test/"',
        'href="https://cdn.acmejournals.test/css/site.css"',
        'href="https://auth.acmejournals.test/login?return=',
        'href="https://api.acmejournals.test/v1/search?q=',
        'src="//cdn.acmejournals.test/js/app.js"',
        'href="//cdn.acmejournals.test/img/fig1-2x.png"',
        'href="/article/4"',
        'href="../search?q=',
        'srcset="https://cdn.acmejournals.test/img/fig1-1x.png 1x, '
        'https://cdn.acmejournals.test/img/fig1-2x.png 2x"',
        '<link rel="stylesheet" href="https://cdn.acmejournals.test/css/site.css">',
        "url(https://cdn.acmejournals.test/img/bg.png)",
        'var siteHost = "www.acmejournals.test";',
        '"https:\\/\\/api.acmejournals.test\\/v1\\/search"',
        '"https%3A%2F%2Fwww.acmejournals.test%2Farticle%2F3"',
        '<script src="https://stats.trackly.test/t.js"',
        '<a href="https://cdn.acmejournals.test/pdf/article-3.pdf">Download PDF</a>',
        "fetch('https://api.acmejournals.test/v1/search?q=' + ",
    ],
)
async def test_article_page_holds_every_kind_of_url(client: Client, snippet: str) -> None:
    """An article page carries absolute, protocol-relative, relative, escaped and encoded URLs."""
    text = await (await get(client, WWW_HOST, "/article/3")).text()
    assert snippet in text


async def test_article_json_ld_names_the_article_url(client: Client) -> None:
    """The JSON-LD block is valid JSON holding the canonical article URL."""
    text = await (await get(client, WWW_HOST, "/article/7")).text()
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)
    assert block is not None
    assert json.loads(block.group(1))["url"] == "https://www.acmejournals.test/article/7"


@pytest.mark.parametrize("path", ["/article/0", "/article/21", "/article/9999"])
async def test_missing_articles_are_404(client: Client, path: str) -> None:
    """Only articles 1..20 exist."""
    assert (await get(client, WWW_HOST, path)).status == 404


async def test_search_results_link_articles_and_escape_the_query(client: Client) -> None:
    """The search page lists matching articles and escapes the reflected query."""
    response = await get(client, WWW_HOST, "/search", params={"q": 'baltic <script>"'})
    text = await response.text()
    assert "<script>" not in text.split("</head>")[1]
    assert "baltic &lt;script&gt;&quot;" in text
    assert "0 results" in text
    hits = await (await get(client, WWW_HOST, "/search?q=baltic")).text()
    assert 'href="https://www.acmejournals.test/article/2"' in hits
    assert 'href="https://www.acmejournals.test/article/8"' in hits


async def test_headers_page_echoes_what_the_vendor_received(client: Client) -> None:
    """`/headers` shows each header received (escaped); `/headers.json` keeps duplicates."""
    extra = [("Host", WWW_HOST), ("X-Probe", "<one>"), ("X-Probe", "two")]
    page = await (await client.get("/headers", headers=extra)).text()
    assert "<th>X-Probe</th><td>&lt;one&gt;</td>" in page
    data = await (await client.get("/headers.json", headers=extra)).json()
    assert [v for k, v in data["headers"] if k == "X-Probe"] == ["<one>", "two"]
    assert data["remote"] == "127.0.0.1"


async def test_form_get_shows_a_post_form(client: Client) -> None:
    """GET /form is a form that posts back to /form."""
    text = await (await get(client, WWW_HOST, "/form")).text()
    assert '<form method="post" action="/form">' in text


async def test_form_post_echoes_fields_escaped(client: Client) -> None:
    """A urlencoded POST is echoed field by field, with markup escaped."""
    fields = {"name": "Ada", "message": "<script>alert(1)</script>"}
    response = await client.post("/form", data=fields, headers={"Host": WWW_HOST})
    text = await response.text()
    assert "<th>name</th><td>Ada</td>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert(1)" not in text


async def test_redirect_to_answers_302_to_the_given_url(client: Client) -> None:
    """`/redirect-to?to=URL` is a 302 to exactly that URL; a non-absolute one is 400."""
    target = "http://127.0.0.1:1/internal?x=1"
    response = await get(client, WWW_HOST, "/redirect-to", params={"to": target})
    assert response.status == 302
    assert response.headers["Location"] == target
    assert (await get(client, WWW_HOST, "/redirect-to?to=/relative")).status == 400


async def test_slow_waits_then_answers(client: Client) -> None:
    """`/slow?seconds=N` answers after about N seconds; a non-number is 400."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await get(client, WWW_HOST, "/slow?seconds=0.2")
    assert response.status == 200
    assert loop.time() - started >= 0.2
    assert (await get(client, WWW_HOST, "/slow?seconds=soon")).status == 400


async def test_benchmark_pages_have_their_sizes(client: Client) -> None:
    """`/big.html` is ~100 KB dense with absolute links; `/page-2k.html` is ~2 KB."""
    big = await (await get(client, WWW_HOST, "/big.html")).read()
    small = await (await get(client, WWW_HOST, "/page-2k.html")).read()
    assert 100_000 <= len(big) <= 110_000
    assert big.count(b"https://") > 500
    assert 1_500 <= len(small) <= 2_600


# ---------------------------------------------------------------- gzip


@pytest.mark.parametrize(
    ("host", "path"),
    [
        (WWW_HOST, "/article/1"),
        (WWW_HOST, "/big.html"),
        (CDN_HOST, "/css/site.css"),
        (CDN_HOST, "/js/app.js"),
        (API_HOST, "/v1/search?q=climate"),
    ],
)
async def test_gzip_body_decompresses_to_the_identity_body(
    client: Client, host: str, path: str
) -> None:
    """With gzip accepted, text is gzip'd with a matching Content-Length and Vary."""
    zipped = await get(
        client, host, path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    plain = await get(
        client, host, path, headers={"Accept-Encoding": "identity"}, auto_decompress=False
    )
    raw = await zipped.read()
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) == len(raw)
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(raw) == await plain.read()


async def test_gzip_bytes_are_deterministic(client: Client) -> None:
    """Two gzip'd responses for the same page are byte-identical (mtime=0)."""
    bodies = [
        await (
            await get(
                client,
                WWW_HOST,
                "/page-2k.html",
                auto_decompress=False,
                headers={"Accept-Encoding": "gzip"},
            )
        ).read()
        for _ in range(2)
    ]
    assert bodies[0] == bodies[1]


async def test_binary_responses_are_never_gzipped(client: Client) -> None:
    """PNG is served as-is even when gzip is accepted."""
    response = await get(
        client,
        CDN_HOST,
        "/img/fig1-1x.png",
        auto_decompress=False,
        headers={"Accept-Encoding": "gzip"},
    )
    assert "Content-Encoding" not in response.headers
    assert (await response.read()).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("accept_encoding", "allowed"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("*;q=0", False),
        ("identity", False),
        ("", False),
        ("gzip;q=0, *", False),
        ("*;q=0, gzip", True),
        ("gzip;q=nonsense", False),
        ("GZIP", True),
    ],
)
def test_accepts_gzip_reads_accept_encoding(accept_encoding: str, allowed: bool) -> None:
    """Accept-Encoding allows gzip when gzip (or else `*`) has a non-zero q."""
    assert accepts_gzip(accept_encoding) is allowed


# ---------------------------------------------------------------- PDF


async def test_pdf_downloads_are_stable(client: Client) -> None:
    """Two downloads of a PDF are the same ~3 MB of bytes as `pdf_bytes`."""
    first = await get(client, CDN_HOST, "/pdf/article-1.pdf")
    second = await get(client, CDN_HOST, "/pdf/article-1.pdf")
    body = await first.read()
    assert first.content_type == "application/pdf"
    assert int(first.headers["Content-Length"]) == len(body)
    assert 2_900_000 <= len(body) <= 3_100_000
    assert body == await second.read() == pdf_bytes(1)


def test_pdf_bytes_are_pinned_across_processes() -> None:
    """Article 1's PDF hashes to a pinned value, so every process builds the same bytes."""
    assert hashlib.sha256(build_pdf(1)).hexdigest() == PDF_1_SHA256
    assert build_pdf(2) != build_pdf(1)


def test_pdf_xref_offsets_point_at_their_objects() -> None:
    """Every xref entry points at "N 0 obj" and startxref at the xref table."""
    data = build_pdf(5)
    assert data.startswith(b"%PDF-1.7\n") and data.endswith(b"%%EOF\n")
    startxref = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert data[startxref:].startswith(b"xref\n0 7\n")
    entries = data[startxref:].split(b"\n")[3:9]
    for number, entry in enumerate(entries, start=1):
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % number)


async def test_pdf_range_request_gets_206(client: Client) -> None:
    """`Range: bytes=a-b` gets 206 with Content-Range and exactly those bytes."""
    response = await get(
        client, CDN_HOST, "/pdf/article-2.pdf", headers={"Range": "bytes=1000-1999"}
    )
    total = len(pdf_bytes(2))
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 1000-1999/{total}"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert await response.read() == pdf_bytes(2)[1000:2000]


@pytest.mark.parametrize(
    ("range_header", "status", "expected"),
    [
        ("bytes=-100", 206, slice(-100, None)),
        ("bytes=3000000-", 206, slice(3_000_000, None)),
        ("bytes=99999999-", 416, slice(0, 0)),
        ("bytes=5-1", 200, slice(None)),
        ("bytes=0-1,5-6", 200, slice(None)),
    ],
)
async def test_pdf_range_edge_cases(
    client: Client, range_header: str, status: int, expected: slice
) -> None:
    """Suffix and open ranges are served, past-the-end is 416, malformed ranges are ignored."""
    response = await get(client, CDN_HOST, "/pdf/article-2.pdf", headers={"Range": range_header})
    assert response.status == status
    assert await response.read() == pdf_bytes(2)[expected]


async def test_missing_pdf_is_404(client: Client) -> None:
    """Only article 1..20 PDFs exist."""
    assert (await get(client, CDN_HOST, "/pdf/article-21.pdf")).status == 404


# ---------------------------------------------------------------- cookie dance


async def login(client: Client, return_url: str) -> tuple[ClientResponse, str]:
    """Log in through the auth host; returns the response and the session token."""
    response = await get(client, AUTH_HOST, "/login", params={"return": return_url})
    session = next(c for c in set_cookies(response) if c.startswith("acme_session="))
    return response, session.split(";")[0].split("=", 1)[1]


async def test_login_sets_domain_cookie_and_redirects_back(client: Client) -> None:
    """`/login` sets the .acmejournals.test session cookie and a host-only one, then 302s back."""
    back = "https://www.acmejournals.test/account"
    response, token = await login(client, back)
    assert response.status == 302
    assert response.headers["Location"] == back
    assert (
        f"acme_session={token}; Domain=.acmejournals.test; Path=/; HttpOnly; Secure; SameSite=None"
    ) in set_cookies(response)
    assert any(c.startswith("auth_seen=1;") and "Domain" not in c for c in set_cookies(response))


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example/",
        "https://www.acmejournals.test@evil.example/",
        "javascript:alert(1)",
        "",
        "//evil.example/",
    ],
)
async def test_login_refuses_to_return_off_acme(client: Client, return_url: str) -> None:
    """A return URL that is not on an Acme host sends the patron to the www home page."""
    response, _ = await login(client, return_url)
    assert response.headers["Location"] == "https://www.acmejournals.test/"


async def test_account_needs_the_issued_session_cookie(client: Client) -> None:
    """`/account` redirects to login without a valid cookie and greets with one."""
    anonymous = await get(client, WWW_HOST, "/account")
    assert anonymous.status == 302
    assert anonymous.headers["Location"] == (
        "https://auth.acmejournals.test/login?return=https%3A%2F%2Fwww.acmejournals.test%2Faccount"
    )
    forged = await get(client, WWW_HOST, "/account", headers={"Cookie": "acme_session=forged"})
    assert forged.status == 302
    _, token = await login(client, "https://www.acmejournals.test/account")
    signed_in = await get(client, WWW_HOST, "/account", headers={"Cookie": f"acme_session={token}"})
    assert signed_in.status == 200
    assert "Signed in to Acme" in await signed_in.text()


async def test_logout_expires_and_revokes_the_session(client: Client) -> None:
    """`/logout` expires the cookie (Max-Age=0) and the old token no longer works."""
    _, token = await login(client, "https://www.acmejournals.test/")
    cookie = {"Cookie": f"acme_session={token}"}
    response = await get(client, AUTH_HOST, "/logout", headers=cookie)
    assert response.status == 302
    assert any("Max-Age=0" in c and c.startswith("acme_session=") for c in set_cookies(response))
    assert (await get(client, WWW_HOST, "/account", headers=cookie)).status == 302


# ---------------------------------------------------------------- api / CORS


async def test_api_search_returns_absolute_article_urls(client: Client) -> None:
    """`/v1/search` answers {query, results[{title, url}]} with canonical article URLs."""
    data = await (await get(client, API_HOST, "/v1/search?q=ocean")).json()
    assert data["query"] == "ocean"
    assert {r["url"] for r in data["results"]} == {
        f"https://www.acmejournals.test/article/{n}" for n in (1, 8, 13)
    }


async def test_api_cors_reflects_origin_with_credentials(client: Client) -> None:
    """With an Origin the API allows exactly it, with credentials, and varies on Origin."""
    origin = "https://www.acmejournals.test"
    response = await get(client, API_HOST, "/v1/search?q=x", headers={"Origin": origin})
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.headers["Vary"]
    bare = await get(client, API_HOST, "/v1/search?q=x")
    assert "Access-Control-Allow-Origin" not in bare.headers


async def test_api_preflight_is_204_with_allowed_methods_and_headers(client: Client) -> None:
    """An OPTIONS preflight gets 204 allowing the methods and the requested headers."""
    headers = {
        "Host": API_HOST,
        "Origin": "https://www.acmejournals.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-requested-with",
    }
    response = await client.options("/v1/search", headers=headers)
    assert response.status == 204
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-requested-with"
    assert response.headers["Access-Control-Allow-Origin"] == "https://www.acmejournals.test"


# ---------------------------------------------------------------- cdn, bigdb, tracker


async def test_cdn_css_and_js_hold_absolute_acme_urls(client: Client) -> None:
    """site.css imports print.css by absolute URL and app.js names every Acme host."""
    css = await (await get(client, CDN_HOST, "/css/site.css")).text()
    assert '@import url("https://cdn.acmejournals.test/css/print.css")' in css
    js = await (await get(client, CDN_HOST, "/js/app.js")).text()
    assert all(f"https://{host}" in js for host in ACME_HOSTS)


async def test_bigdb_results_link_to_acme_articles(client: Client) -> None:
    """BigDB's results link across vendors to absolute Acme article URLs."""
    text = await (await get(client, BIGDB_HOST, "/search?q=climate")).text()
    assert 'href="https://www.acmejournals.test/article/3"' in text
    assert 'href="https://search.bigdb.test/"' in text


# ---------------------------------------------------------------- recorder


async def test_recorder_records_every_request(aiohttp_client: AiohttpClient) -> None:
    """Every request is recorded, unknown hosts and 404s included, with duplicate headers kept."""
    recorder = RequestRecorder()
    client = await aiohttp_client(build_vendor_app(recorder))
    await get(client, WWW_HOST, "/article/1?x=1")
    await get(client, "nowhere.test", "/gone")
    await client.get("/nope", headers=[("Host", CDN_HOST), ("X-Dup", "a"), ("X-Dup", "b")])
    await client.post("/form", data={"k": "v"}, headers={"Host": WWW_HOST})
    seen = [(r.method, r.host, r.path, r.query_string) for r in recorder.records]
    assert seen == [
        ("GET", WWW_HOST, "/article/1", "x=1"),
        ("GET", "nowhere.test", "/gone", ""),
        ("GET", CDN_HOST, "/nope", ""),
        ("POST", WWW_HOST, "/form", ""),
    ]
    assert [v for k, v in recorder.records[2].headers if k == "X-Dup"] == ["a", "b"]
    assert recorder.records[3].body == b"k=v"
    assert recorder.records[0].peer == "127.0.0.1"


async def test_recorder_find_locates_a_canary(aiohttp_client: AiohttpClient) -> None:
    """`find` reports a planted canary in a header, the query and a (url-encoded) body."""
    recorder = RequestRecorder()
    client = await aiohttp_client(build_vendor_app(recorder))
    canary = "Canary 7f3a@example.org"
    await get(client, WWW_HOST, "/", headers={"X-Patron": canary})
    await get(client, WWW_HOST, "/search", params={"q": canary})
    await client.post("/form", data={"email": canary}, headers={"Host": WWW_HOST})
    found = recorder.find(canary.lower())
    assert found == [
        "#0 GET www.acmejournals.test/: header 'X-Patron'",
        "#1 GET www.acmejournals.test/search: query",
        "#2 POST www.acmejournals.test/form: body",
    ]
    assert recorder.find("never-sent") == []
    recorder.clear()
    assert recorder.records == []


# ---------------------------------------------------------------- standalone


async def test_start_vendor_serves_on_a_real_port() -> None:
    """`start_vendor` binds loopback, returns the real port, and answers by Host."""
    runner, port = await start_vendor()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: search.bigdb.test\r\nConnection: close\r\n\r\n")
        reply = await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        await runner.cleanup()
    assert port > 0
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert b"BigDB Search" in reply
