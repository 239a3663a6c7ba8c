"""The session cookie through the relay: never forwarded, never ambiguous (R2, R7)."""

from __future__ import annotations

import shutil
from pathlib import Path

from aiohttp import ClientResponse
from structlog.testing import capture_logs

from tests.web.conftest import PORTAL, REPO, Stack, StackFactory
from tests.web.helpers import post_login, session_of

WWW = f"www-acmejournals-test.{PORTAL}"


async def pass_mode_stack(make_stack: StackFactory, tmp_path: Path) -> Stack:
    """The demo stack with Acme switched to ``cookies: pass``."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "vendor_rules", rules)
    acme = rules / "acme.yaml"
    acme.write_text(acme.read_text().replace("cookies: server_side", "cookies: pass"))
    stack: Stack = await make_stack(rules_dir=str(rules))
    return stack


async def token_of(stack: Stack) -> str:
    """A fresh session token for the adult demo card."""
    card = stack.card("adult card")
    cookie = session_of(await post_login(stack.client, card.barcode, card.secret))["Cookie"]
    return cookie.split("=", 1)[1]


async def test_token_hidden_in_a_quoted_cookie_never_reaches_a_pass_vendor(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """R2: the header Chromium builds from a vendor's split quoted cookies relays the session
    but forwards neither the token nor the cookie that wraps it."""
    stack = await pass_mode_stack(make_stack, tmp_path)
    token = await token_of(stack)
    cookie = f'x="a; clamshell_session={token}; y=b"; keep=1'
    resp = await stack.client.get("/headers", headers={"Host": WWW, "Cookie": cookie})
    assert resp.status == 200
    assert stack.vendor.find(token) == []
    (record,) = stack.vendor.records
    assert dict((n.lower(), v) for n, v in record.headers)["cookie"] == 'x="a; y=b"; keep=1'


async def test_two_session_cookies_are_no_session(stack: Stack) -> None:
    """R7: a tossed second clamshell_session (either order) means no session: nothing is
    relayed, both cookie scopes are cleared, login is asked again, no token is logged."""
    mine, attackers = await token_of(stack), await token_of(stack)
    for cookie in (
        f"clamshell_session={mine}; clamshell_session={attackers}",
        f"clamshell_session={attackers}; clamshell_session={mine}",
    ):
        with capture_logs() as logs:
            resp = await stack.client.get(
                "/", headers={"Host": WWW, "Cookie": cookie}, allow_redirects=False
            )
        assert resp.status == 302
        assert resp.headers["Location"].startswith(f"http://{PORTAL}/login?qurl=")
        cleared = resp.headers.getall("Set-Cookie")
        assert any("Domain=proxy.localhost" in c and "Max-Age=0" in c for c in cleared)
        assert any("Domain" not in c and "Max-Age=0" in c for c in cleared)
        events = [e for e in logs if e["event"] == "session_cookie_conflict"]
        assert len(events) == 1
        assert mine not in repr(logs) and attackers not in repr(logs)
    assert stack.vendor.records == []


def login_cookies(resp: ClientResponse) -> list[str]:
    """The Set-Cookie values for the session cookie in a login response."""
    headers = resp.headers.getall("Set-Cookie", [])
    return [c for c in headers if c.startswith("clamshell_session=") and "Max-Age=0" not in c]


async def test_item4_session_cookie_is_a_browser_session_cookie(stack: Stack) -> None:
    """#18.4: by default the login's session cookie has no Max-Age/Expires (shared PCs)."""
    card = stack.card("adult card")
    (cookie,) = login_cookies(await post_login(stack.client, card.barcode, card.secret))
    assert "max-age" not in cookie.lower()
    assert "expires" not in cookie.lower()
    assert "HttpOnly" in cookie


async def test_item4_persistent_cookie_is_an_explicit_option(make_stack: StackFactory) -> None:
    """#18.4: `sessions.persistent_cookie: true` gives Max-Age = the absolute lifetime."""
    stack = await make_stack(sessions={"lifetime_hours": 3, "persistent_cookie": True})
    card = stack.card("adult card")
    (cookie,) = login_cookies(await post_login(stack.client, card.barcode, card.secret))
    assert "Max-Age=10800" in cookie
