"""The relay on loopback: real proxy, real demo vendor, real SQLite, per-session cookie jars."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from proxy.demo.pdf import pdf_bytes
from tests.web.conftest import PORTAL, PUBLIC, REPO, Stack, StackFactory
from tests.web.helpers import post_login, session_of

WWW = f"www-acmejournals-test.{PORTAL}"
AUTH = f"auth-acmejournals-test.{PORTAL}"
CDN = f"cdn-acmejournals-test.{PORTAL}"
BIGDB = f"search-bigdb-test.{PORTAL}"


async def signed_in(stack: Stack, note: str = "adult card") -> dict[str, str]:
    """Log a demo card in; return the Cookie header for proxy hosts."""
    card = stack.card(note)
    return session_of(await post_login(stack.client, card.barcode, card.secret))


async def test_without_session_redirects_to_login_with_qurl(stack: Stack) -> None:
    """A mapped URL without a session goes to /login?qurl=<the vendor URL>."""
    resp = await stack.client.get(
        "/article/2?x=1&y=2", headers={"Host": WWW}, allow_redirects=False
    )
    assert resp.status == 302
    vendor = "https://www.acmejournals.test/article/2?x=1&y=2"
    assert resp.headers["Location"] == f"{PUBLIC}/login?qurl={quote(vendor, safe='')}"
    assert stack.vendor.records == []


async def test_page_is_rewritten_and_recompressed(stack: Stack) -> None:
    """An HTML page is decoded, its vendor links mapped to proxy hosts, and gzip-encoded again."""
    auth = await signed_in(stack)
    resp = await stack.client.get(
        "/article/1",
        headers={"Host": WWW, **auth, "Accept-Encoding": "gzip"},
        auto_decompress=False,
    )
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    wire = await resp.read()
    # Read whole before the headers (#19): the rewritten length, never the vendor's.
    assert int(resp.headers["Content-Length"]) == len(wire)
    html = gzip.decompress(wire).decode()
    assert "Acme Journal Archive" in html
    assert f"http://{CDN}/css/site.css" in html
    assert "https://www.acmejournals.test" not in html
    assert "https://stats.trackly.test/t.js" in html  # third parties are left as they are


async def test_identity_client_gets_an_unencoded_rewritten_page(stack: Stack) -> None:
    """A client that accepts no coding gets the rewritten page without Content-Encoding."""
    auth = await signed_in(stack)
    resp = await stack.client.get(
        "/article/1",
        headers={"Host": WWW, **auth, "Accept-Encoding": "identity"},
        auto_decompress=False,
    )
    assert "Content-Encoding" not in resp.headers
    assert f"http://{WWW}/" in await resp.text()


async def test_not_licensed_vendor_is_403_naming_it(stack: Stack) -> None:
    """A WEST patron on BigDB's mapped host gets a 403 page naming the database."""
    auth = await signed_in(stack, "logs in with last name")
    resp = await stack.client.get("/", headers={"Host": BIGDB, **auth})
    assert resp.status == 403
    assert "does not license BigDB Search" in await resp.text()
    assert stack.vendor.records == []


async def test_cookie_dance_is_held_server_side(stack: Stack) -> None:
    """Vendor cookies are kept by the proxy: the browser never sees them, the vendor gets them."""
    auth = await signed_in(stack)
    first = await stack.client.get("/account", headers={"Host": WWW, **auth}, allow_redirects=False)
    assert first.status == 302
    location = first.headers["Location"]
    assert location.startswith(f"http://{AUTH}/login?return=")
    login = await stack.client.get(
        location.split(PORTAL, 1)[1], headers={"Host": AUTH, **auth}, allow_redirects=False
    )
    assert login.status == 302
    assert "Set-Cookie" not in login.headers
    assert login.headers["Location"] == f"http://{WWW}/account"
    account = await stack.client.get("/account", headers={"Host": WWW, **auth})
    assert "Signed in to Acme" in await account.text()


async def test_two_patrons_never_share_vendor_cookies(stack: Stack) -> None:
    """Interleaved requests of two patrons: only the one who signed in to Acme is signed in."""
    alice = await signed_in(stack, "adult card")
    bob = await signed_in(stack, "student card")
    first = await stack.client.get(
        "/account", headers={"Host": WWW, **alice}, allow_redirects=False
    )
    path = first.headers["Location"].split(PORTAL, 1)[1]
    await stack.client.get(path, headers={"Host": AUTH, **alice}, allow_redirects=False)
    bob_page = await stack.client.get(
        "/account", headers={"Host": WWW, **bob}, allow_redirects=False
    )
    alice_page = await stack.client.get("/account", headers={"Host": WWW, **alice})
    assert bob_page.status == 302
    assert "Signed in to Acme" in await alice_page.text()


async def test_logout_deletes_the_vendor_cookie_jar(stack: Stack) -> None:
    """After logout and a new login, the vendor's cookies from the old session are gone."""
    auth = await signed_in(stack)
    first = await stack.client.get("/account", headers={"Host": WWW, **auth}, allow_redirects=False)
    await stack.client.get(
        first.headers["Location"].split(PORTAL, 1)[1],
        headers={"Host": AUTH, **auth},
        allow_redirects=False,
    )
    from proxy.web.keys import JARS

    assert len(stack.app[JARS]) >= 1
    from proxy.web.keys import PSEUDONYMS

    assert len(stack.app[PSEUDONYMS]) == 1  # the session's Acme pseudonym, derived once
    await stack.client.post("/logout", headers={"Host": PORTAL, "Origin": PUBLIC, **auth})
    assert len(stack.app[JARS]) == 0
    assert len(stack.app[PSEUDONYMS]) == 0
    again = await signed_in(stack)
    page = await stack.client.get("/account", headers={"Host": WWW, **again}, allow_redirects=False)
    assert page.status == 302


async def test_pdf_is_byte_identical_and_ranges_work(stack: Stack) -> None:
    """The PDF passes through unchanged; a Range request gets 206 with the right bytes."""
    auth = await signed_in(stack)
    resp = await stack.client.get("/pdf/article-1.pdf", headers={"Host": CDN, **auth})
    assert resp.status == 200
    assert await resp.read() == pdf_bytes(1)
    part = await stack.client.get(
        "/pdf/article-1.pdf", headers={"Host": CDN, **auth, "Range": "bytes=100-199"}
    )
    assert part.status == 206
    assert await part.read() == pdf_bytes(1)[100:200]


async def test_form_post_is_relayed(stack: Stack) -> None:
    """A urlencoded POST reaches the vendor with its fields."""
    auth = await signed_in(stack)
    resp = await stack.client.post(
        "/form", data={"topic": "tides", "note": "<b>x</b>"}, headers={"Host": WWW, **auth}
    )
    assert resp.status == 200
    html = await resp.text()
    assert "tides" in html and "&lt;b&gt;x&lt;/b&gt;" in html


async def test_vendor_redirect_to_internal_address_is_not_followed(stack: Stack) -> None:
    """R22: a vendor 302 to 127.0.0.1 is not followed, and not handed to the browser: a 502 page."""
    auth = await signed_in(stack)
    resp = await stack.client.get(
        "/redirect-to?to=http://127.0.0.1:1/secret",
        headers={"Host": WWW, **auth},
        allow_redirects=False,
    )
    assert resp.status == 502
    assert "Location" not in resp.headers
    assert "127.0.0.1:1" not in await resp.text()
    assert [r.path for r in stack.vendor.records] == ["/redirect-to"]


async def test_vendor_redirect_across_its_hosts_is_mapped(stack: Stack) -> None:
    """A vendor 302 to another of its hosts comes back mapped to that host's proxy form."""
    auth = await signed_in(stack)
    target = quote("https://cdn.acmejournals.test/css/site.css", safe="")
    resp = await stack.client.get(
        f"/redirect-to?to={target}", headers={"Host": WWW, **auth}, allow_redirects=False
    )
    assert resp.headers["Location"] == f"http://{CDN}/css/site.css"


async def test_slow_vendor_gets_a_504_page(stack: Stack) -> None:
    """A vendor slower than first_byte gets a friendly 504 page."""
    auth = await signed_in(stack)
    resp = await stack.client.get("/slow?seconds=5", headers={"Host": WWW, **auth})
    assert resp.status == 504
    html = await resp.text()
    assert "Test Consortium" in html and "Traceback" not in html


async def test_unreachable_vendor_gets_a_502_page(make_stack: StackFactory) -> None:
    """A vendor whose server refuses connections gets a friendly 502 page."""
    stack: Stack = await make_stack()
    from proxy.demo.pages import ACME_HOSTS

    overrides = {h: "http://127.0.0.1:1" for h in ACME_HOSTS}
    dead: Stack = await make_stack(upstream_overrides=overrides)
    auth = await signed_in(dead)
    resp = await dead.client.get("/", headers={"Host": WWW, **auth})
    assert resp.status == 502
    assert "could not be reached" in await resp.text()
    assert stack.vendor.records == []


async def test_what_the_vendor_received(stack: Stack) -> None:
    """The vendor gets its own Host, no patron address or session cookie, and the pseudonym."""
    auth = await signed_in(stack)
    await stack.client.get(
        "/headers", headers={"Host": WWW, **auth, "X-Forwarded-For": "203.0.113.50"}
    )
    await stack.client.get("/", headers={"Host": BIGDB, **auth})
    acme, bigdb = stack.vendor.records
    acme_headers = {n.lower(): v for n, v in acme.headers}
    assert acme_headers["host"] == "www.acmejournals.test"
    assert "x-forwarded-for" not in acme_headers
    assert "cookie" not in acme_headers
    assert acme_headers["x-consortium"] == "demo"
    pseudo_acme = acme_headers["x-patron-pseudonym"]
    pseudo_bigdb = {n.lower(): v for n, v in bigdb.headers}["x-bigdb-user"]
    assert len(pseudo_acme) == len(pseudo_bigdb) == 26
    assert pseudo_acme != pseudo_bigdb
    assert stack.vendor.find("203.0.113.50") == []


@pytest.mark.parametrize("rotate_days", [0, 1])
async def test_daily_pseudonym_is_stable_within_a_day(stack: Stack, rotate_days: int) -> None:
    """BigDB's daily pseudonym is the same across sessions on one day and changes the next."""
    first = await signed_in(stack)
    await stack.client.get("/", headers={"Host": BIGDB, **first})
    stack.clock.advance(days=rotate_days)
    second = await signed_in(stack)
    await stack.client.get("/", headers={"Host": BIGDB, **second})
    a, b = ({n.lower(): v for n, v in r.headers}["x-bigdb-user"] for r in stack.vendor.records)
    assert (a == b) is (rotate_days == 0)


async def test_usage_limit_suspends_the_session(make_stack: StackFactory) -> None:
    """Crossing the request limit suspends with a pseudonymous event; R10: the crossing
    request itself is refused, not served."""
    from proxy.web.keys import SUSPENSIONS

    stack: Stack = await make_stack(limits={"requests": 3})
    auth = await signed_in(stack)
    statuses = [
        (await stack.client.get("/", headers={"Host": WWW, **auth})).status for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 403, 403]
    page = await stack.client.get("/", headers={"Host": WWW, **auth})
    assert "contact your library" in await page.text()
    events = stack.app[SUSPENSIONS].events(stack.clock.now.replace(year=2000))
    assert [(e[2], e[3], e[4]) for e in events] == [("acme", "requests", "suspended")]
    assert auth["Cookie"].split("=", 1)[1] not in repr(events)


async def test_relayed_traffic_is_counted_in_statistics(stack: Stack) -> None:
    """Requests, bytes, downloads and logins reach the stats store after a flush."""
    from proxy.web.app import flush_usage
    from proxy.web.keys import STATS

    auth = await signed_in(stack)
    await (await stack.client.get("/", headers={"Host": WWW, **auth})).read()
    await (await stack.client.get("/pdf/article-2.pdf", headers={"Host": CDN, **auth})).read()
    await flush_usage(stack.app)
    day = stack.clock.now.date()
    (row,) = stack.app[STATS].daily(day, day)
    assert (row.vendor, row.library, row.requests, row.downloads, row.sessions, row.uniques) == (
        "acme",
        "MAIN",
        2,
        1,
        1,
        1,
    )
    assert row.bytes > len(pdf_bytes(2))
    assert (day.isoformat(), "MAIN", "ok", 1) in stack.app[STATS].logins(day, day)


async def test_third_party_block_adds_a_containing_csp(stack: Stack) -> None:
    """A third_party: block vendor's pages carry a CSP limiting them to proxy hosts."""
    auth = await signed_in(stack)
    resp = await stack.client.get("/", headers={"Host": BIGDB, **auth})
    csp = resp.headers.getall("Content-Security-Policy")
    assert any(
        "default-src 'self' http://proxy.localhost:8080 http://*.proxy.localhost:8080" in value
        for value in csp
    )


async def test_third_party_hosts_are_counted_per_vendor(stack: Stack) -> None:
    """Hosts a vendor's pages reference but no rule covers are counted, aggregate only."""
    from proxy.web.app import flush_usage
    from proxy.web.keys import STATS

    auth = await signed_in(stack)
    await (await stack.client.get("/article/1", headers={"Host": WWW, **auth})).read()
    await flush_usage(stack.app)
    day = stack.clock.now.date()
    hosts = {(vendor, host) for vendor, host, _, _ in stack.app[STATS].third_parties(day, day)}
    assert ("acme", "stats.trackly.test") in hosts


async def test_allowed_third_party_is_counted_as_referenced_not_blocked(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """#18.8: a host in third_party_allow joins the rule's CSP and is not counted as blocked."""
    from proxy.web.app import flush_usage
    from proxy.web.keys import STATS

    rules = tmp_path / "rules"
    shutil.copytree(REPO / "vendor_rules", rules)
    acme = rules / "acme.yaml"
    allow = "third_party: block\nthird_party_allow: [stats.trackly.test]"
    acme.write_text(acme.read_text().replace("third_party: block", allow))
    stack: Stack = await make_stack(rules_dir=str(rules))
    auth = await signed_in(stack)
    resp = await stack.client.get("/article/1", headers={"Host": WWW, **auth})
    await resp.read()
    assert "https://stats.trackly.test" in resp.headers["Content-Security-Policy"]
    await flush_usage(stack.app)
    day = stack.clock.now.date()
    rows = {(v, h): (r, b) for v, h, r, b in stack.app[STATS].third_parties(day, day)}
    referenced, blocked = rows[("acme", "stats.trackly.test")]
    assert referenced > 0 and blocked == 0


async def test_decompression_bomb_gets_an_error_page(
    make_stack: StackFactory, aiohttp_server: Any
) -> None:
    """A gzip body that decodes past the cap is refused with a 502 page, memory bounded."""
    import zlib

    squeezer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = squeezer.compress(b"<p>" + b"A" * (20 * 2**20)) + squeezer.flush()

    async def serve_bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve_bomb)
    server = await aiohttp_server(app)
    stack: Stack = await make_stack(
        max_rewrite_megabytes=1,
        upstream_overrides={"bomb.acmejournals.test": f"http://127.0.0.1:{server.port}"},
    )
    auth = await signed_in(stack)
    resp = await stack.client.get("/", headers={"Host": f"bomb-acmejournals-test.{PORTAL}", **auth})
    assert resp.status == 502
    assert "Test Consortium" in await resp.text()


async def test_request_params_reach_the_vendor_in_its_own_form(stack: Stack) -> None:
    """A proxy URL in a rule's request_params goes upstream as the vendor's own URL."""
    auth = await signed_in(stack)
    mapped = quote(f"http://{WWW}/account", safe="")
    resp = await stack.client.get(
        f"/login?return={mapped}&keep={mapped}",
        headers={"Host": AUTH, **auth},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == f"http://{WWW}/account"
    (record,) = stack.vendor.records
    assert record.query_string == (  # the recorder shows the query percent-decoded
        f"return=https://www.acmejournals.test/account&keep=http://{WWW}/account"
    )


async def test_small_pass_through_keeps_headers_exactly_once(stack: Stack) -> None:
    """A small non-rewritten body keeps its own Content-Type, once, and its exact bytes."""
    auth = await signed_in(stack)
    resp = await stack.client.get("/img/fig1-1x.png", headers={"Host": CDN, **auth})
    assert resp.status == 200
    assert resp.headers.getall("Content-Type") == ["image/png"]
    body = await resp.read()
    assert body.startswith(b"\x89PNG") and int(resp.headers["Content-Length"]) == len(body)


async def test_head_keeps_the_vendors_content_length(stack: Stack) -> None:
    """A HEAD answer says how long the body would be (RFC 9110 §9.3.2), not 0."""
    auth = await signed_in(stack)
    got = await stack.client.get("/img/fig1-1x.png", headers={"Host": CDN, **auth})
    length = len(await got.read())
    resp = await stack.client.head("/img/fig1-1x.png", headers={"Host": CDN, **auth})
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == length > 0
    assert await resp.read() == b""


async def test_redirect_to_an_unlisted_site_shows_the_leaving_page(stack: Stack) -> None:
    """R22: a vendor 302 to a public site no rule covers is a 'you are leaving' page, not cached."""
    auth = await signed_in(stack)
    target = quote("https://www.example.org/elsewhere?a=1", safe="")
    resp = await stack.client.get(
        f"/redirect-to?to={target}", headers={"Host": WWW, **auth}, allow_redirects=False
    )
    assert resp.status == 200
    assert "Location" not in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    assert "leaving the library" in html
    assert 'href="https://www.example.org/elsewhere?a=1" rel="noreferrer"' in html


@pytest.mark.parametrize(
    "target", ["javascript:alert(document.cookie)", "http://169.254.169.254/latest", "file:///"]
)
async def test_redirect_to_a_script_or_metadata_url_is_502(
    make_stack: StackFactory, aiohttp_server: Any, target: str
) -> None:
    """R22: a vendor redirect to javascript:, file: or the metadata address is a 502 page."""

    async def send_away(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": target})

    app = web.Application()
    app.router.add_get("/{tail:.*}", send_away)
    server = await aiohttp_server(app)
    stack: Stack = await make_stack(
        upstream_overrides={"away.acmejournals.test": f"http://127.0.0.1:{server.port}"}
    )
    auth = await signed_in(stack)
    resp = await stack.client.get(
        "/", headers={"Host": f"away-acmejournals-test.{PORTAL}", **auth}, allow_redirects=False
    )
    assert resp.status == 502
    assert "Location" not in resp.headers
    assert target not in await resp.text()


async def test_validators_do_not_link_patrons(stack: Stack, aiohttp_server: Any) -> None:
    """R6: patron A's ETag never reaches the browser, and B's If-None-Match never the vendor;
    a PDF Range request still gets its 206."""
    auth = await signed_in(stack)
    resp = await stack.client.get("/pdf/article-1.pdf", headers={"Host": CDN, **auth})
    assert "ETag" not in resp.headers and "Last-Modified" not in resp.headers
    await stack.client.get(
        "/headers",
        headers={
            "Host": WWW,
            **auth,
            "If-None-Match": '"tag-of-patron-a"',
            "If-Modified-Since": "Sun, 29 Nov 2026 12:00:00 GMT",
        },
    )
    assert stack.vendor.find("tag-of-patron-a") == []
    assert stack.vendor.find("29 Nov 2026") == []
    part = await stack.client.get(
        "/pdf/article-1.pdf",
        headers={"Host": CDN, **auth, "Range": "bytes=0-9", "If-Range": '"tag-of-patron-a"'},
    )
    assert part.status == 206
    assert await part.read() == pdf_bytes(1)[:10]
