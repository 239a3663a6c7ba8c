"""The transparency page (/privacy): what was sent for this session only, and its buttons."""

from __future__ import annotations

import re

from structlog.testing import capture_logs

from proxy.web.keys import SESSIONS as SESSIONS_KEY
from tests.web.conftest import PORTAL, PUBLIC, Stack
from tests.web.helpers import post_login, session_of

WWW = f"www-acmejournals-test.{PORTAL}"
AUTH = f"auth-acmejournals-test.{PORTAL}"
BIGDB = f"search-bigdb-test.{PORTAL}"
PORTAL_HOST = {"Host": PORTAL}
TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


async def signed_in(stack: Stack, note: str = "adult card") -> dict[str, str]:
    """Log a demo card in; return the Cookie header for proxy hosts."""
    card = stack.card(note)
    return session_of(await post_login(stack.client, card.barcode, card.secret))


async def acme_cookie_dance(stack: Stack, auth: dict[str, str]) -> None:
    """Visit Acme's account page, which sends the patron through its cookie login."""
    first = await stack.client.get("/account", headers={"Host": WWW, **auth}, allow_redirects=False)
    path = first.headers["Location"].split(PORTAL, 1)[1]
    await stack.client.get(path, headers={"Host": AUTH, **auth}, allow_redirects=False)
    await stack.client.get("/account", headers={"Host": WWW, **auth})  # now with its cookie


async def privacy(stack: Stack, auth: dict[str, str]) -> str:
    """The transparency page's HTML for this session."""
    resp = await stack.client.get("/privacy", headers={**PORTAL_HOST, **auth})
    assert resp.status == 200
    return await resp.text()


async def test_page_shows_both_vendors_headers_cookie_names_and_pseudonym(stack: Stack) -> None:
    """After Acme and BigDB, the page names both, their header and cookie names, the
    pseudonym value sent, and never a cookie value."""
    auth = await signed_in(stack, "adult card")
    await acme_cookie_dance(stack, auth)
    await stack.client.get("/", headers={"Host": BIGDB, **auth})
    html = await privacy(stack, auth)
    assert "Acme Journal Archive" in html and "BigDB Search" in html
    assert "<code>accept</code>" in html and "<code>cookie</code>" in html
    acme = [r for r in stack.vendor.records if r.host.startswith("www.acmejournals")][-1]
    sent = dict(acme.headers)
    pseudonym_header = next(n for n in sent if n.lower() == "x-patron-pseudonym")
    assert sent[pseudonym_header] in html  # the value the vendor really got
    assert stack.app[SESSIONS_KEY] is not None and "privacy:" not in html  # no session key
    cookie_name, _, cookie_value = sent["Cookie"].partition("=")
    assert f"<code>{cookie_name}</code>" in html
    assert cookie_value.split(";")[0] not in html
    assert "<code>x-bigdb-user</code>" not in html and "X-BigDB-User" in html


async def test_another_patrons_session_never_shows(stack: Stack) -> None:
    """Canary: Bob's page shows nothing of Alice's vendors, pseudonym or cookies."""
    alice = await signed_in(stack, "adult card")
    bob = await signed_in(stack, "student card")
    await acme_cookie_dance(stack, alice)
    alice_html = await privacy(stack, alice)
    bob_html = await privacy(stack, bob)
    assert "Acme Journal Archive" in alice_html
    assert "Acme Journal Archive" not in bob_html
    acme = [r for r in stack.vendor.records if r.host.startswith("www.acmejournals")][-1]
    pseudonym = dict(acme.headers)["X-Patron-Pseudonym"]
    assert pseudonym not in bob_html


async def test_forget_cookies_then_the_vendor_sees_none(stack: Stack) -> None:
    """ "Forget my cookies" empties the jar: the vendor's next request carries no Cookie."""
    auth = await signed_in(stack)
    await acme_cookie_dance(stack, auth)
    token = TOKEN.search(await privacy(stack, auth))
    assert token is not None
    resp = await stack.client.post(
        "/privacy/forget",
        data={"csrf": token[1], "vendor": "acme"},
        headers={**PORTAL_HOST, "Origin": PUBLIC, **auth},
        allow_redirects=False,
    )
    assert resp.status == 302 and resp.headers["Location"] == "/privacy?done=forgot"
    stack.vendor.clear()
    await stack.client.get("/article/1", headers={"Host": WWW, **auth})
    assert stack.vendor.records and all(
        "cookie" not in {n.lower() for n, _ in r.headers} for r in stack.vendor.records
    )


async def test_buttons_refuse_cross_site_and_tokenless_posts(stack: Stack) -> None:
    """A vendor page cannot post the buttons: cross-site Origin or a wrong token is a 403."""
    auth = await signed_in(stack)
    await acme_cookie_dance(stack, auth)
    token = TOKEN.search(await privacy(stack, auth))
    assert token is not None
    hostile = f"http://{WWW}"
    for origin, csrf in ((hostile, token[1]), (PUBLIC, "forged")):
        resp = await stack.client.post(
            "/privacy/forget",
            data={"csrf": csrf},
            headers={**PORTAL_HOST, "Origin": origin, **auth},
            allow_redirects=False,
        )
        assert resp.status == 403
    assert "acme_session" in await privacy(stack, auth)  # still held


async def test_page_is_portal_only_and_unframeable(stack: Stack) -> None:
    """On a vendor host /privacy is relayed, never our page; on the portal it cannot be framed."""
    auth = await signed_in(stack)
    resp = await stack.client.get("/privacy", headers={**PORTAL_HOST, **auth})
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in resp.headers
    vendor = await stack.client.get("/privacy", headers={"Host": WWW, **auth})
    assert "What the consortium keeps" not in await vendor.text()


async def test_end_everywhere_ends_every_session_of_the_card(stack: Stack) -> None:
    """ "End my session everywhere" ends the other browsers' sessions of the same card too."""
    phone = await signed_in(stack, "adult card")
    laptop = await signed_in(stack, "adult card")
    token = TOKEN.search(await privacy(stack, laptop))
    assert token is not None
    resp = await stack.client.post(
        "/privacy/end",
        data={"csrf": token[1]},
        headers={**PORTAL_HOST, "Origin": PUBLIC, **laptop},
        allow_redirects=False,
    )
    assert resp.status == 302
    for auth in (phone, laptop):
        menu = await stack.client.get(
            "/menu", headers={**PORTAL_HOST, **auth}, allow_redirects=False
        )
        assert menu.status == 302 and menu.headers["Location"] == "/login"


async def test_keeps_section_follows_the_settings(make_stack) -> None:  # type: ignore[no-untyped-def]
    """What the consortium keeps is generated from the running settings."""
    stack = await make_stack(retention={"daily_stats_days": 123}, access_log=True)
    html = await (await stack.client.get("/privacy", headers=PORTAL_HOST)).text()
    assert "for 123 days" in html and "No access log is kept" not in html


async def test_no_page_value_reaches_the_logs(stack: Stack) -> None:
    """Canary: the pseudonym and cookie values on the page never appear in a log event."""
    auth = await signed_in(stack)
    with capture_logs() as events:
        await acme_cookie_dance(stack, auth)
        await privacy(stack, auth)
    acme = [r for r in stack.vendor.records if r.host.startswith("www.acmejournals")][-1]
    sent = dict(acme.headers)
    secrets = [sent["X-Patron-Pseudonym"], sent["Cookie"].split("=", 1)[1].split(";")[0]]
    rendered = repr(events)
    assert all(value not in rendered for value in secrets)
