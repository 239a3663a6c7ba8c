"""#17: requests without a session — CORS preflights and a rule's anonymous entries — are
relayed with nothing patron-derived, limited per client address; everything else still
goes to the login page."""

from __future__ import annotations

from proxy.core.decision import ANONYMOUS
from proxy.stores.address_quotas import LocalAnonymousQuota
from proxy.web.keys import RELAY, USAGE
from proxy.web.session_cookie import SESSION_COOKIE
from tests.web.conftest import PORTAL, Stack
from tests.web.helpers import post_login, session_of

WWW = f"www-acmejournals-test.{PORTAL}"
CDN = f"cdn-acmejournals-test.{PORTAL}"
API = f"api-acmejournals-test.{PORTAL}"
PREFLIGHT = {
    "Origin": f"http://{WWW}",
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "x-acme-client",
}
CANARY_COOKIE = "acme_session=CANARY-VENDOR-COOKIE-31337"


async def test_a_preflight_is_relayed_anonymously_and_its_cors_mapped(stack: Stack) -> None:
    """OPTIONS with Origin and Access-Control-Request-Method reaches the vendor without a
    session; the answer's Access-Control-Allow-Origin names the proxy host again."""
    resp = await stack.client.options("/v1/search", headers={"Host": API, **PREFLIGHT})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == f"http://{WWW}"
    (record,) = stack.vendor.records
    assert record.method == "OPTIONS" and record.host == "api.acmejournals.test"
    assert dict(record.headers)["Origin"] == "https://www.acmejournals.test"


async def test_an_options_without_preflight_headers_still_needs_a_login(stack: Stack) -> None:
    """A bare OPTIONS is not a preflight: no session → the login redirect, nothing relayed."""
    resp = await stack.client.options("/v1/search", headers={"Host": API}, allow_redirects=False)
    assert resp.status == 302 and "/login?qurl=" in resp.headers["Location"]
    assert stack.vendor.records == []


async def test_a_font_on_the_rules_anonymous_pattern_loads_without_a_session(
    stack: Stack,
) -> None:
    """The acme rule's anonymous entry lets /fonts/*.woff2 through; other paths do not."""
    font = await stack.client.get("/fonts/acme-sans.woff2", headers={"Host": CDN})
    assert font.status == 200 and (await font.read()).startswith(b"wOF2")
    css = await stack.client.get("/css/site.css", headers={"Host": CDN}, allow_redirects=False)
    assert css.status == 302
    other_host = await stack.client.get(
        "/fonts/acme-sans.woff2", headers={"Host": WWW}, allow_redirects=False
    )
    assert other_host.status == 302  # the pattern names the cdn host only
    assert [r.path for r in stack.vendor.records] == ["/fonts/acme-sans.woff2"]


async def test_anonymous_requests_carry_nothing_patron_derived(stack: Stack) -> None:
    """Privacy canary: a stale session cookie, a planted vendor cookie, forwarding headers and
    credentials sent with anonymous requests never reach the vendor, nor does anything of a
    signed-in patron's session (jar, pseudonym)."""
    card = stack.card("adult card")
    auth = session_of(await post_login(stack.client, card.barcode, card.secret))
    await stack.client.get("/article/1", headers={"Host": WWW, **auth})  # fills the jar
    stack.vendor.clear()
    token = "stale-session-token-CANARY-4242"
    planted = {
        "Cookie": f"{SESSION_COOKIE}={token}; {CANARY_COOKIE}",
        "X-Forwarded-For": "203.0.113.77",
        "Authorization": f"Basic {card.barcode}",
        "From": "canary@example.org",
    }
    await stack.client.get("/fonts/a.woff2", headers={"Host": CDN, **planted})
    await stack.client.options("/v1/search", headers={"Host": API, **PREFLIGHT, **planted})
    assert len(stack.vendor.records) == 2
    canaries = (token, auth["Cookie"].split("=", 1)[1], "CANARY-VENDOR-COOKIE", "203.0.113.77")
    for canary in (*canaries, card.barcode, card.secret, "canary@example.org", "pseudonym"):
        assert stack.vendor.find(canary) == [], canary
    assert all("Cookie" not in dict(r.headers) for r in stack.vendor.records)


async def test_anonymous_requests_are_counted_as_anonymous(stack: Stack) -> None:
    """Statistics count anonymous requests under the (anonymous) key, never a library."""
    await stack.client.get("/fonts/a.woff2", headers={"Host": CDN})
    keys = list(stack.app[USAGE]._pending.usage)
    assert [(vendor, library) for _, vendor, library in keys] == [("acme", ANONYMOUS)]


async def test_anonymous_requests_are_limited_per_client_address(stack: Stack) -> None:
    """Beyond the per-address quota an anonymous request gets 429, and is not relayed."""
    quota = stack.app[RELAY].anonymous
    assert isinstance(quota, LocalAnonymousQuota)  # local mode: one process's windows
    quota.quota.per_window = 2
    statuses = [
        (await stack.client.get("/fonts/a.woff2", headers={"Host": CDN})).status for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert len(stack.vendor.records) == 2
