"""Privacy canaries end to end (DESIGN P1–P4): plant patron values, browse, search everywhere.

A patron whose card number, PIN, surname and email are canary strings logs in from a client
that sends X-Forwarded-For, Forwarded, Referer with the proxy host and a query, client hints,
Authorization and cookies of its own; browses several pages, posts a form and follows the
vendor's cookie-dance redirects across its hosts. Nothing the vendors received, no log event
and no file under data_dir may hold a canary, the client's address or the session cookie —
nor may the requests relayed without a session after logout (#17).
"""

from __future__ import annotations

import base64
from pathlib import Path

from structlog.testing import capture_logs

from proxy.core.cards import make_check_digit
from proxy.stores.patron_import import import_lines
from proxy.web.keys import REGISTRY
from tests.web.conftest import PORTAL, PUBLIC, Stack, StackFactory
from tests.web.helpers import post_login, session_of

MAIN_BODY = "2123498765432"
CARD = MAIN_BODY + make_check_digit(MAIN_BODY, "luhn")
PIN = "Pin9CanaryQ"
WEST_BODY = "2987655511223"
WEST_CARD = WEST_BODY + make_check_digit(WEST_BODY, "mod10_weighted_31")
SURNAME = "Canarywhistle"
EMAIL = "zebulon.canarywhistle@example.org"
CLIENT_IP = "203.0.113.77"
WWW = f"www-acmejournals-test.{PORTAL}"
AUTH = f"auth-acmejournals-test.{PORTAL}"
BIGDB = f"search-bigdb-test.{PORTAL}"
CDN = f"cdn-acmejournals-test.{PORTAL}"
API = f"api-acmejournals-test.{PORTAL}"


def hostile_client_headers(session: dict[str, str]) -> dict[str, str]:
    """Everything a leaky browser or a corporate front proxy might add."""
    basic = base64.b64encode(f"{CARD}:{PIN}".encode()).decode()
    return {
        **session,
        "Cookie": session["Cookie"] + f"; own_tracker={EMAIL}",
        "X-Forwarded-For": CLIENT_IP,
        "Forwarded": f"for={CLIENT_IP};by=corp",
        "X-Real-IP": CLIENT_IP,
        "True-Client-IP": CLIENT_IP,
        "Via": f"1.1 {CLIENT_IP}",
        "Referer": f"http://{PORTAL}/login?url=x&card={CARD}",
        "Sec-CH-UA": '"Chromium";v="156"',
        "Sec-CH-UA-Platform": '"Linux"',
        "Authorization": f"Basic {basic}",
        "From": EMAIL,
        "X-Patron-Name": SURNAME,
    }


def seed_canaries(stack: Stack) -> None:
    """Import the two canary patrons through the ILS importer."""
    lines = [
        "barcode,pin,last_name,library,ptype,expires,status",
        f"{CARD},{PIN},,MAIN,adult,2030-01-01,ok",
        f"{WEST_CARD},,{SURNAME},WEST,faculty,2030-01-01,ok",
    ]
    summary = import_lines(
        stack.app[REGISTRY], lines, source="canaries", settings=stack.settings, replace=False
    )
    assert summary.imported == 2


async def browse(stack: Stack, headers: dict[str, str]) -> None:
    """Pages, a search, the JSON API, a form post and the cookie dance across hosts."""
    client = stack.client
    for host, path in [
        (WWW, "/"),
        (WWW, "/article/4"),
        (WWW, "/search?q=tides"),
        (f"api-acmejournals-test.{PORTAL}", "/v1/search?q=tides"),
    ]:
        resp = await client.get(path, headers={**headers, "Host": host})
        assert resp.status == 200, (host, path, resp.status)
    posted = await client.post("/form", data={"topic": "tides"}, headers={**headers, "Host": WWW})
    assert posted.status == 200
    first = await client.get("/account", headers={**headers, "Host": WWW}, allow_redirects=False)
    assert first.status == 302
    path = first.headers["Location"].split(PORTAL, 1)[1]
    back = await client.get(path, headers={**headers, "Host": AUTH}, allow_redirects=False)
    assert back.status == 302
    account = await client.get("/account", headers={**headers, "Host": WWW})
    assert "Signed in to Acme" in await account.text()


async def anonymous_requests(stack: Stack, headers: dict[str, str]) -> None:
    """#17: requests relayed without a session (a font on the rule's anonymous pattern, a CORS
    preflight), sent with every hostile header and the signed-out patron's cookies."""
    client = stack.client
    font = await client.get("/fonts/a.woff2", headers={**headers, "Host": CDN})
    assert font.status == 200
    preflight = {"Origin": f"http://{WWW}", "Access-Control-Request-Method": "GET"}
    answer = await client.options("/v1/search", headers={**headers, **preflight, "Host": API})
    assert answer.status == 204
    anonymous = [r for r in stack.vendor.records if r.path in ("/fonts/a.woff2", "/v1/search")]
    assert all("X-Patron-Pseudonym" not in dict(r.headers) for r in anonymous[-2:])


def files_under(directory: Path) -> list[Path]:
    """Every file under a directory (SQLite -wal/-shm included)."""
    return [p for p in directory.rglob("*") if p.is_file()]


async def test_nothing_identifying_reaches_vendors_logs_or_files(
    make_stack: StackFactory,
) -> None:
    """No canary, client address or session cookie reaches a vendor, a log event or a file."""
    stack: Stack = await make_stack()
    seed_canaries(stack)
    with capture_logs() as events:
        main = session_of(
            await post_login(stack.client, CARD, PIN, **{"X-Forwarded-For": CLIENT_IP})
        )
        await browse(stack, hostile_client_headers(main))
        resp = await stack.client.get("/", headers={**hostile_client_headers(main), "Host": BIGDB})
        assert resp.status == 200
        west = session_of(await post_login(stack.client, WEST_CARD, SURNAME))
        await browse(stack, hostile_client_headers(west))
        await stack.client.post("/logout", headers={**main, "Host": PORTAL, "Origin": PUBLIC})
        await anonymous_requests(stack, hostile_client_headers(main))  # #17, stale cookies
    token = main["Cookie"].split("=", 1)[1]
    canaries = [
        CARD,
        PIN,
        SURNAME,
        EMAIL,
        CLIENT_IP,
        token,
        west["Cookie"].split("=", 1)[1],
        base64.b64encode(f"{CARD}:{PIN}".encode()).decode(),
    ]
    assert len(stack.vendor.records) >= 15
    for canary in canaries:
        assert stack.vendor.find(canary) == [], canary
        assert not [e for e in events if canary.lower() in repr(e).lower()], canary
    for path in files_under(Path(stack.settings.data_dir)):
        data = path.read_bytes()
        for canary in canaries:  # also the client address and the session tokens
            for encoded in (canary.encode(), canary.encode("utf-16-le")):
                assert encoded not in data, (path.name, canary)


async def test_pseudonyms_only_where_rules_ask(stack: Stack) -> None:
    """Each vendor gets its pseudonym only in its own header, and the two values differ."""
    seed_canaries(stack)
    auth = session_of(await post_login(stack.client, CARD, PIN))
    await stack.client.get("/", headers={**auth, "Host": WWW})
    await stack.client.get("/", headers={**auth, "Host": BIGDB})
    acme, bigdb = stack.vendor.records
    acme_value = dict((n.lower(), v) for n, v in acme.headers)["x-patron-pseudonym"]
    bigdb_value = dict((n.lower(), v) for n, v in bigdb.headers)["x-bigdb-user"]
    assert acme_value != bigdb_value
    assert "x-bigdb-user" not in {n.lower() for n, _ in acme.headers}
    assert "x-patron-pseudonym" not in {n.lower() for n, _ in bigdb.headers}
    assert [p for p in stack.vendor.find(acme_value) if "x-patron-pseudonym" not in p.lower()] == []
