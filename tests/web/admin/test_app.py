"""The admin console: auth, cross-site refusal, methods, dashboard, stats API, reload, privacy."""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import html5lib
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.core.usage import Drained, UsageDelta
from proxy.rulebook import Rulebook
from proxy.stores.sessions import MemorySessionStore, Session
from proxy.web.admin.app import SECURITY_HEADERS, build_admin_app, is_loopback, start_admin
from proxy.web.admin.auth import (
    AUTH,
    COOKIE,
    TOKEN_FILE,
    AdminTokenError,
    admin_token,
    cookie_name,
)
from proxy.web.app import Overrides, build_app
from proxy.web.keys import CLOCK, RULEBOOK, SESSIONS, SETTINGS, STATS, SUSPENSIONS
from tests.web.conftest import REPO, Clock, demo_settings

CANARY_PATRON = "canary-patron-key-6f1d2c"


class LiveKeysStore(MemorySessionStore):
    """A stand-in session store that can list live keys (what staff suspension needs)."""

    async def live_keys(self, now: datetime) -> list[str]:
        """Keys of the sessions live at ``now``."""
        return [k for k, s in self._live.items() if not s.expired(now, self.idle)]


@dataclass
class Console:
    """A main app (not serving patrons here) and a test client on its admin app."""

    client: TestClient
    main: web.Application
    admin: web.Application
    rules: Path
    clock: Clock

    @property
    def token(self) -> str:
        """The admin token."""
        return self.admin[AUTH].token

    @property
    def bearer(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def origin(self) -> str:
        """The admin listener's own origin."""
        return f"http://{self.client.host}:{self.client.port}"

    async def login(self) -> dict[str, str]:
        """Sign in through the form; the Cookie header a browser would then send."""
        resp = await self.client.post(
            "/login",
            data={"token": self.token},
            headers={"Origin": self.origin},
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        return {"Cookie": f"{COOKIE}={resp.cookies[COOKIE].value}"}


ConsoleFactory = Callable[..., Coroutine[Any, Any, Console]]


@pytest.fixture
async def make_console(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> ConsoleFactory:
    """Build a main app over a private copy of vendor_rules, and an admin client over it."""

    async def factory(*, live_keys: bool = False, environ: dict[str, str] | None = None) -> Console:
        rules = tmp_path / "rules"
        shutil.copytree(REPO / "vendor_rules", rules)
        settings = demo_settings(tmp_path, 9, rules_dir=str(rules))
        clock = Clock()
        book = Rulebook.open(rules, frozenset(lib.code for lib in settings.libraries))
        sessions = LiveKeysStore(timedelta(hours=2), timedelta(hours=12)) if live_keys else None
        main = await build_app(settings, book, clock=clock, overrides=Overrides(sessions=sessions))
        await aiohttp_server(main)  # started and, at teardown, cleaned up (closes its stores)
        admin = build_admin_app(main, environ=environ or {})
        return Console(await aiohttp_client(admin), main, admin, rules, clock)

    return factory


@pytest.fixture
async def console(make_console: ConsoleFactory) -> Console:
    """The default console."""
    return await make_console()


def seed_usage(console: Console, days: int = 3) -> date:
    """Write a few days of aggregate usage and third-party counts; returns today."""
    today = console.clock.now.date()
    drained = Drained()
    for n in range(days):
        day = today - timedelta(days=n)
        drained.usage[(day, "acme", "MAIN")] = UsageDelta(sessions=2, requests=100 + n, bytes=10**6)
        drained.usage[(day, "bigdb", "BRANCH")] = UsageDelta(sessions=1, requests=40 * n + 5)
        drained.third_party[(day, "acme", "tracker.example", "referenced")] += 7
        drained.third_party[(day, "acme", "ads.example", "blocked")] += 2
        drained.logins[(day, "MAIN", "ok")] += 3
    console.main[STATS].add(drained)
    return today


async def new_session(console: Console, patron_key: str = "patron-1") -> tuple[str, Session]:
    """A live patron session in the main app's store."""
    return await console.main[SESSIONS].create(
        library="MAIN", ptype=None, patron_key=patron_key, now=console.clock.now
    )


# --- authentication --------------------------------------------------------------------


async def test_no_token_is_401_with_bearer_challenge(console: Console) -> None:
    """An API call without a token is refused with 401, a JSON error and a Bearer challenge."""
    resp = await console.client.get("/api/health")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error" in await resp.json()


@pytest.mark.parametrize("header", ["Bearer wrong-token", "Basic YWRtaW46YWRtaW4=", "Bearer", "é"])
async def test_wrong_token_is_401(console: Console, header: str) -> None:
    """A wrong bearer token, another scheme or garbage is refused with 401."""
    resp = await console.client.get("/api/health", headers={"Authorization": header})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bearer_token_is_accepted(console: Console) -> None:
    """The right bearer token opens the API."""
    resp = await console.client.get("/api/health", headers=console.bearer)
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["rule_count"] == 2 and body["last_reload_ok"] is True


async def test_dashboard_without_token_shows_the_sign_in_form(console: Console) -> None:
    """A browser without the cookie gets 401 and the sign-in form."""
    resp = await console.client.get("/")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert 'name="token"' in await resp.text()


async def test_cookie_login_opens_the_dashboard(console: Console) -> None:
    """The sign-in form sets an HttpOnly, SameSite=Strict cookie that opens the dashboard."""
    resp = await console.client.post(
        "/login",
        data={"token": console.token},
        headers={"Origin": console.origin},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/"
    morsel = resp.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    page = await console.client.get("/", headers={"Cookie": f"{COOKIE}={morsel.value}"})
    assert page.status == 200 and "Dashboard" in await page.text()


async def test_wrong_login_token_is_401(console: Console) -> None:
    """A wrong token in the sign-in form sets no cookie and says so."""
    resp = await console.client.post("/login", data={"token": "nope"}, allow_redirects=False)
    assert resp.status == 401
    assert COOKIE not in resp.cookies
    assert "not the admin token" in await resp.text()


async def test_console_cookie_is_a_random_session_id_not_the_token(console: Console) -> None:
    """R20: the cookie holds a fresh random id per sign-in; the token itself is no cookie."""
    first, second = await console.login(), await console.login()
    console.client.session.cookie_jar.clear()
    for cookie in (first, second):
        assert console.token not in cookie["Cookie"]
    assert first != second
    as_cookie = {"Cookie": f"{COOKIE}={console.token}"}
    assert (await console.client.get("/", headers=as_cookie)).status == 401
    assert (await console.client.get("/", headers=first)).status == 200


async def test_logout_revokes_the_console_session(console: Console) -> None:
    """R20: after sign-out the old cookie is refused (401 and the sign-in form)."""
    cookie = await console.login()
    console.client.session.cookie_jar.clear()
    resp = await console.client.post(
        "/logout", headers={**cookie, "Origin": console.origin}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    again = await console.client.get("/", headers=cookie)
    assert again.status == 401 and 'name="token"' in await again.text()
    assert (await console.client.get("/api/health", headers=console.bearer)).status == 200


async def test_console_session_expires_when_idle(console: Console) -> None:
    """R20: a console session unused for longer than the idle limit is refused."""
    cookie = await console.login()
    console.client.session.cookie_jar.clear()
    console.clock.advance(minutes=29)
    assert (await console.client.get("/", headers=cookie)).status == 200
    console.clock.advance(minutes=31)
    assert (await console.client.get("/", headers=cookie)).status == 401


async def test_console_session_has_an_absolute_lifetime(console: Console) -> None:
    """R20: even a busy console session ends after session_hours."""
    cookie = await console.login()
    console.client.session.cookie_jar.clear()
    for _ in range(7 * 3 + 2):  # every 20 minutes for a bit less than 8 hours
        console.clock.advance(minutes=20)
        assert (await console.client.get("/", headers=cookie)).status == 200
    console.clock.advance(minutes=20)
    assert (await console.client.get("/", headers=cookie)).status == 401


def test_console_cookie_is_host_prefixed_over_https() -> None:
    """R20: over HTTPS the cookie is ``__Host-`` prefixed (no Domain, Path=/, Secure)."""
    assert cookie_name(True) == "__Host-" + COOKIE
    assert cookie_name(False) == COOKIE


async def test_token_file_is_private_and_url_safe(console: Console) -> None:
    """Without the environment variable the token comes from a 0600 file in data_dir."""
    path = Path(console.main[RULEBOOK].directory).parent / "data" / TOKEN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    expected = base64.urlsafe_b64encode(path.read_bytes()).rstrip(b"=").decode()
    assert console.token == expected and re.fullmatch(r"[A-Za-z0-9_-]{43}", expected)


async def test_environment_token_wins(make_console: ConsoleFactory) -> None:
    """CLAMSHELL_ADMIN_TOKEN, when set, is the token."""
    token = "t" * 40
    console = await make_console(environ={"CLAMSHELL_ADMIN_TOKEN": token})
    resp = await console.client.get("/api/health", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200


@pytest.mark.parametrize("value", ["short", "has spaces in it and is long enough......", "a;" * 20])
def test_unsafe_environment_token_is_refused(tmp_path: Path, value: str) -> None:
    """A short token, or one that would not survive a header or cookie, is a config error."""
    settings = demo_settings(tmp_path, 9)
    with pytest.raises(AdminTokenError):
        admin_token(settings, {"CLAMSHELL_ADMIN_TOKEN": value})


@pytest.mark.parametrize(("host", "status"), [("[::1]:8081", 200), ("user@127.0.0.1", 400)])
async def test_host_header_shapes(console: Console, host: str, status: int) -> None:
    """An IPv6-loopback Host is fine; a Host with userinfo is refused with a JSON 400."""
    resp = await console.client.get("/api/health", headers={**console.bearer, "Host": host})
    assert resp.status == status
    assert "status" in await resp.json() if status == 200 else "error" in await resp.json()


# --- cross-site, CSRF, methods, headers ------------------------------------------------


async def test_foreign_origin_post_is_403(console: Console) -> None:
    """A POST whose Origin is not the console's own is refused, even with the token."""
    headers = {**console.bearer, "Origin": "https://evil.example"}
    resp = await console.client.post("/api/reload", headers=headers)
    assert resp.status == 403
    assert len(console.main[RULEBOOK].history) == 1  # nothing was reloaded


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_cross_site_fetch_metadata_post_is_403(console: Console, site: str) -> None:
    """A POST that the browser marks as cross-site or same-site (a sibling host) is refused."""
    headers = {**console.bearer, "Sec-Fetch-Site": site}
    resp = await console.client.post("/api/reload", headers=headers)
    assert resp.status == 403


async def test_same_origin_post_is_accepted(console: Console) -> None:
    """A POST from the console's own origin, marked same-origin, goes through."""
    headers = {**console.bearer, "Origin": console.origin, "Sec-Fetch-Site": "same-origin"}
    resp = await console.client.post("/api/reload", headers=headers)
    assert resp.status == 200


async def test_cross_site_login_is_403(console: Console) -> None:
    """The sign-in form cannot be posted from another site (login CSRF)."""
    resp = await console.client.post(
        "/login", data={"token": console.token}, headers={"Origin": "https://evil.example"}
    )
    assert resp.status == 403


async def test_cookie_post_needs_the_form_token(console: Console) -> None:
    """A cookie-authenticated POST without the page's CSRF token is refused."""
    cookie = await console.login()
    resp = await console.client.post("/reload", headers=cookie, data={}, allow_redirects=False)
    assert resp.status == 403
    ok = await console.client.post(
        "/reload", headers=cookie, data={"csrf": console.admin[AUTH].csrf}, allow_redirects=False
    )
    assert ok.status == 303 and ok.headers["Location"] == "/#reloads"
    assert len(console.main[RULEBOOK].history) == 2


@pytest.mark.parametrize("path", ["/api/reload", "/api/sessions/suspend", "/reload", "/logout"])
async def test_get_on_post_endpoints_is_405(console: Console, path: str) -> None:
    """GET on a state-changing endpoint is 405 with an Allow header."""
    resp = await console.client.get(path, headers=console.bearer)
    assert resp.status == 405
    assert "POST" in resp.headers["Allow"]


async def test_put_on_a_post_endpoint_is_405(console: Console) -> None:
    """Any other method on a POST endpoint is 405 too."""
    resp = await console.client.put("/api/reload", headers=console.bearer)
    assert resp.status == 405


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/", True),
        ("/", False),
        ("/api/health", True),
        ("/api/health", False),
        ("/api/reload", True),
        ("/admin.css", False),
        ("/login", False),
        ("/nope", True),
    ],
)
async def test_security_headers_on_every_response(console: Console, path: str, auth: bool) -> None:
    """Pages, JSON, errors and the stylesheet all carry CSP, DENY, no-referrer and no-store."""
    resp = await console.client.get(path, headers=console.bearer if auth else {})
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers[name] == value, (path, name)
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


# --- dashboard -------------------------------------------------------------------------


async def test_dashboard_marks_blocked_third_parties(console: Console) -> None:
    """#18.8: each third-party row says whether the host was blocked or reached the browser."""
    seed_usage(console)
    page = await (await console.client.get("/", headers=console.bearer)).text()
    table = page[page.index("Top third-party hosts per vendor") :]
    blocked = table[table.index("ads.example") : table.index("</tr>", table.index("ads.example"))]
    reached = table[table.index("tracker.example") :]
    assert '<td class="ok">blocked</td>' in blocked
    assert '<td class="bad">reached the browser</td>' in reached[: reached.index("</tr>")]


async def test_dashboard_renders_chart_vendors_and_third_parties(console: Console) -> None:
    """Seeded stats show as an SVG line chart with legend and axes, beside the vendor table."""
    seed_usage(console)
    _, session = await new_session(console)
    console.main[SUSPENSIONS].suspend(session.key, "acme", "requests", console.clock.now)
    resp = await console.client.get("/", headers=console.bearer)
    assert resp.status == 200
    page = await resp.text()
    chart = page[page.index('<svg class="chart"') : page.index("</svg>")]
    assert chart.count("<polyline") == 2
    assert "Requests per day" in chart and "Day (UTC)" in chart and "29 Nov" in chart
    assert 'class="legend"' in page and "acme (303 requests)" in page
    for text in (
        "Acme Journal Archive",
        "acme.yaml",
        "tracker.example",
        "ads.example",
        console.main[SUSPENSIONS].session_hash(session.key),
        "Reload rules",
    ):
        assert text in page, text
    assert session.key not in page


async def test_dashboard_is_well_formed_and_csp_clean(console: Console) -> None:
    """The page parses as HTML5 without errors and uses no script or inline style."""
    seed_usage(console)
    page = await (await console.client.get("/", headers=console.bearer)).text()
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(page)
    assert "<script" not in page and "style=" not in page and "<style" not in page


async def test_dashboard_without_usage_says_so(console: Console) -> None:
    """With no statistics yet the dashboard says so instead of drawing an empty chart."""
    page = await (await console.client.get("/", headers=console.bearer)).text()
    assert "No usage recorded in this period." in page and "<polyline" not in page


async def test_stylesheet_is_public_css(console: Console) -> None:
    """The stylesheet needs no token (it holds nothing secret) and is served as CSS."""
    resp = await console.client.get("/admin.css")
    assert resp.status == 200 and resp.content_type == "text/css"
    assert ".series" in await resp.text()


# --- JSON API --------------------------------------------------------------------------


async def test_vendors_api_lists_rules(console: Console) -> None:
    """/api/vendors lists each rule with title, host counts and source file."""
    body = await (await console.client.get("/api/vendors", headers=console.bearer)).json()
    acme = next(v for v in body["vendors"] if v["id"] == "acme")
    assert acme["title"] == "Acme Journal Archive" and acme["hosts"] == 4
    assert acme["source"].endswith("acme.yaml") and acme["status"] == "ok"
    assert body["last_reload"]["ok"] is True


async def test_stats_api_returns_seeded_rows(console: Console) -> None:
    """/api/stats returns aggregate rows for the period, filtered by vendor."""
    today = seed_usage(console)
    query = f"?from={today - timedelta(days=1)}&to={today}&vendor=acme"
    resp = await console.client.get("/api/stats" + query, headers=console.bearer)
    assert resp.status == 200
    body = await resp.json()
    assert body["from"] == str(today - timedelta(days=1)) and body["to"] == str(today)
    assert [r["requests"] for r in body["usage"]] == [101, 100]
    assert {t["host"] for t in body["third_parties"]} == {"tracker.example", "ads.example"}
    assert body["logins"][0] == {
        "day": str(today - timedelta(days=1)),
        "library": "MAIN",
        "outcome": "ok",
        "count": 3,
    }


async def test_stats_api_defaults_to_the_last_30_days(console: Console) -> None:
    """Without from/to the period is the 30 days ending today."""
    body = await (await console.client.get("/api/stats", headers=console.bearer)).json()
    today = console.clock.now.date()
    assert body["to"] == str(today) and body["from"] == str(today - timedelta(days=29))


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("from=2026-13-01", "'from' must be a date"),
        ("from=yesterday", "'from' must be a date"),
        ("to=20261129", "'to' must be a date"),
        ("to=2026-02-30", "'to' must be a date"),
        ("from=", "'from' must be a date"),
        ("from=2026-11-29&to=2026-11-01", "is after"),
        ("from=2025-01-01&to=2026-11-29", "at most 366 days"),
        ("from=0001-01-01", "at most 366 days"),
        ("to=0001-01-01&from=9999-12-31", "is after"),
        ("vendor=" + "v" * 65, "'vendor' must be 1 to 64"),
        ("library=", "'library' must be 1 to 64"),
        ("form=2026-11-01", "Unknown query parameter(s): 'form'"),
    ],
)
async def test_stats_api_rejects_bad_dates_and_ranges(
    console: Console, query: str, needle: str
) -> None:
    """Bad dates, reversed or overlong ranges and bad filters are 400 with a clear message."""
    resp = await console.client.get(f"/api/stats?{query}", headers=console.bearer)
    assert resp.status == 400
    assert needle in (await resp.json())["error"]


async def test_a_full_leap_year_range_is_allowed(console: Console) -> None:
    """366 days is the longest allowed period."""
    resp = await console.client.get(
        "/api/stats?from=2024-01-01&to=2024-12-31", headers=console.bearer
    )
    assert resp.status == 200


async def test_openapi_document_describes_every_endpoint(console: Console) -> None:
    """/api/openapi.json is OpenAPI 3.1 with the API's paths and model components."""
    doc = await (await console.client.get("/api/openapi.json", headers=console.bearer)).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/api/health",
        "/api/auth-backends",
        "/api/vendors",
        "/api/stats",
        "/api/reload",
        "/api/suspensions",
        "/api/sessions/suspend",
        "/api/patrons/block",
    }
    assert {"StatsOut", "SuspendIn", "ErrorOut", "BlockIn", "BlockOut"} <= set(
        doc["components"]["schemas"]
    )


# --- reload ----------------------------------------------------------------------------


async def test_broken_rule_set_keeps_the_old_rules_and_reports_file_and_line(
    console: Console,
) -> None:
    """A reload of a broken rule file is 422 with file:line problems; the old rules stay."""
    acme = console.rules / "acme.yaml"
    acme.write_text(acme.read_text().replace("- cdn.acmejournals.test", "- cdn..acmejournals.test"))
    resp = await console.client.post("/api/reload", headers=console.bearer)
    assert resp.status == 422
    body = await resp.json()
    assert body["ok"] is False and body["rule_count"] == 2
    assert any(re.match(rf"{re.escape(str(acme))}:\d+: hosts", p) for p in body["problems"])
    assert {r.id for r in console.main[RULEBOOK].current.rules} == {"acme", "bigdb"}
    vendors = await (await console.client.get("/api/vendors", headers=console.bearer)).json()
    status = {v["id"]: v["status"] for v in vendors["vendors"]}
    assert status == {"acme": "file_has_errors", "bigdb": "ok"}
    page = await (await console.client.get("/", headers=console.bearer)).text()
    assert "cdn..acmejournals.test" in page and "previous version in use" in page


async def test_fixed_rule_set_reloads(console: Console) -> None:
    """After the file is fixed, a reload succeeds and reports the new rule count."""
    shutil.copy(console.rules / "bigdb.yaml", console.rules / "bigdb2.yaml")
    text = (console.rules / "bigdb2.yaml").read_text()
    (console.rules / "bigdb2.yaml").write_text(text.replace("id: bigdb", "id: bigdb2"))
    resp = await console.client.post("/api/reload", headers=console.bearer)
    body = await resp.json()
    assert resp.status == 422 and body["ok"] is False  # same hosts twice: refused
    (console.rules / "bigdb2.yaml").unlink()
    resp = await console.client.post("/api/reload", headers=console.bearer)
    assert resp.status == 200 and (await resp.json())["rule_count"] == 2


# --- suspensions -----------------------------------------------------------------------


async def test_suspend_an_unknown_hash_is_404(console: Console) -> None:
    """Suspending a session hash that matches no live session is a clear 404."""
    body = {"session_hash": "0" * 20, "vendor": "acme"}
    resp = await console.client.post("/api/sessions/suspend", json=body, headers=console.bearer)
    assert resp.status == 404


async def test_suspend_by_hash_suspends_the_live_session(make_console: ConsoleFactory) -> None:
    """Staff suspend a session by its pseudonymous hash; it then shows in /api/suspensions."""
    console = await make_console(live_keys=True)
    _, session = await new_session(console)
    book = console.main[SUSPENSIONS]
    body = {"session_hash": book.session_hash(session.key), "vendor": "acme"}
    resp = await console.client.post("/api/sessions/suspend", json=body, headers=console.bearer)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["limit"] == "staff"
    assert book.is_suspended(session.key)
    listed = await (await console.client.get("/api/suspensions", headers=console.bearer)).json()
    assert [s["session_hash"] for s in listed["suspensions"]] == [body["session_hash"]]


async def test_suspensions_show_their_expiry(console: Console) -> None:
    """#18 item 2: /api/suspensions and the dashboard show when each suspension ends."""
    _, session = await new_session(console)
    book = console.main[SUSPENSIONS]
    entry = book.suspend(session.key, "acme", "requests", console.clock.now)
    minutes = console.main[SETTINGS].limits.suspension_minutes
    assert entry.until == console.clock.now + timedelta(minutes=minutes)
    listed = await (await console.client.get("/api/suspensions", headers=console.bearer)).json()
    [row] = listed["suspensions"]
    assert datetime.fromisoformat(row["until"]) == entry.until
    page = await (await console.client.get("/", headers=console.bearer)).text()
    assert "Until (UTC)" in page and f"{entry.until:%Y-%m-%d %H:%M:%S}" in page


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"session_hash": "ab" * 10, "vendor": "acme"}, 404),
        ({"session_hash": "ab" * 10, "vendor": "nosuchvendor"}, 404),
        ({"session_hash": "not-hex", "vendor": "acme"}, 400),
        ({"session_hash": "ab" * 10}, 400),
        ({"session_hash": "ab" * 10, "vendor": "acme", "card": "1234"}, 400),
        ("not json", 400),
    ],
)
async def test_suspend_refuses_unknown_or_bad_input(
    make_console: ConsoleFactory, body: Any, status: int
) -> None:
    """Unknown sessions or vendors are 404; malformed bodies are 400."""
    console = await make_console(live_keys=True)
    kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
    resp = await console.client.post("/api/sessions/suspend", headers=console.bearer, **kwargs)
    assert resp.status == status
    assert "error" in await resp.json()


# --- privacy ---------------------------------------------------------------------------


async def test_no_admin_endpoint_reveals_a_patron(make_console: ConsoleFactory) -> None:
    """Across every endpoint, no body holds the canary patron key, session token or key."""
    console = await make_console(live_keys=True)
    token, session = await new_session(console, CANARY_PATRON)
    usage = console.main[CLOCK]().date()
    for vendor in ("acme", "bigdb"):
        counters = Drained()
        counters.usage[(usage, vendor, "MAIN")] = UsageDelta(sessions=1, requests=3, uniques=1)
        console.main[STATS].add(counters)
    suspend = {
        "session_hash": console.main[SUSPENSIONS].session_hash(session.key),
        "vendor": "acme",
    }
    bodies = [
        await (
            await console.client.post("/api/sessions/suspend", json=suspend, headers=console.bearer)
        ).text()
    ]
    for path in (
        "/",
        "/api/health",
        "/api/vendors",
        "/api/stats",
        "/api/suspensions",
        "/api/openapi.json",
        "/login",
    ):
        bodies.append(await (await console.client.get(path, headers=console.bearer)).text())
    bodies.append(await (await console.client.post("/api/reload", headers=console.bearer)).text())
    assert suspend["session_hash"] in bodies[0]
    for body in bodies:
        for secret in (CANARY_PATRON, token, session.key):
            assert secret not in body


# --- the listener ----------------------------------------------------------------------


async def test_start_admin_binds_the_configured_listener(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """start_admin serves the console on settings.admin.listen and returns its runner."""
    settings = demo_settings(tmp_path, 9, admin={"listen": {"host": "127.0.0.1", "port": 0}})
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    main = await build_app(settings, book, clock=Clock())
    await aiohttp_server(main)
    runner = await start_admin(main)
    assert runner is not None
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.request("GET", f"http://{host}:{port}/api/health") as resp:
            assert resp.status == 401
    finally:
        await runner.cleanup()


async def test_start_admin_does_nothing_when_disabled(aiohttp_server: Any, tmp_path: Path) -> None:
    """With admin.enabled false there is no admin listener."""
    settings = demo_settings(tmp_path, 9, admin={"enabled": False})
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    main = await build_app(settings, book, clock=Clock())
    await aiohttp_server(main)
    assert await start_admin(main) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("admin.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only loopback addresses and 'localhost' count as private listeners."""
    assert is_loopback(host) is loopback
