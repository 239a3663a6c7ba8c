"""Helpers for driving the portal like a browser: fetch the form, post it, follow the cookie."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.web.conftest import PORTAL, PUBLIC

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
HOST = {"Host": PORTAL}


async def login_form(client: TestClient, target: str = "") -> tuple[str, str]:
    """GET the login form; return (csrf token, the hidden url value)."""
    path = f"/login?url={target}" if target else "/login"
    resp = await client.get(path, headers=HOST, allow_redirects=False)
    assert resp.status == 200, await resp.text()
    html = await resp.text()
    match = CSRF_FIELD.search(html)
    assert match is not None
    return match[1], target


async def post_login(
    client: TestClient, card: str, secret: str, target: str = "", **headers: str
) -> ClientResponse:
    """Fill in and submit the login form as a browser on the portal would."""
    token, _ = await login_form(client, target)
    return await client.post(
        "/login",
        data={"csrf": token, "url": target, "card": card, "pin": secret},
        headers={**HOST, "Origin": PUBLIC, **headers},
        allow_redirects=False,
    )


def qurl(url: str) -> str:
    """``/login?qurl=`` form of a vendor URL."""
    return "/login?qurl=" + quote(url, safe="")


def session_of(resp: ClientResponse) -> dict[str, str]:
    """The Cookie header a browser would send to proxy hosts after this login response.

    The test client talks to 127.0.0.1, so its own jar would not send a cookie scoped to
    proxy.localhost; the tests carry it by hand, as the browser would.
    """
    return {"Cookie": f"clamshell_session={resp.cookies['clamshell_session'].value}"}


async def raw_exchange(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send raw bytes to the listener and read until it closes (or ``wait`` passes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(wait):
            return await reader.read()
    finally:
        writer.close()
