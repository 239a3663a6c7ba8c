"""Staff accounts and roles: each role can do exactly what it should, library scoping on every
route, lockout, TOTP, disabled accounts, API keys and the audit log (issue #20)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyotp
import pytest

from proxy.core.staffroles import ROLES, Principal, Role
from proxy.core.usage import Drained, UsageDelta
from proxy.stores.staff import MAX_FAILURES
from proxy.web.admin.app import ROUTES
from proxy.web.admin.auth import AUDIT, COOKIE, STAFF
from proxy.web.keys import SETTINGS, STATS
from tests.web.admin.test_app import Console, seed_usage

PASSWORD = "correct horse battery"
# Figures only the other library (BRANCH) has: none may reach a MAIN-only account.
BRANCH_REQUESTS = 918_273_645
BRANCH_LOGINS = 7_364_519
CARD_CANARY = "29876500012345"
PIN_CANARY = "pin-canary-8841"


def plant_branch_canaries(console: Console) -> None:
    """BRANCH usage and logins with numbers that appear nowhere else."""
    day = console.clock.now.date() - timedelta(days=5)  # not a day seed_usage writes
    drained = Drained()
    drained.usage[(day, "bigdb", "BRANCH")] = UsageDelta(requests=BRANCH_REQUESTS, sessions=1)
    drained.logins[(day, "BRANCH", "ok")] += BRANCH_LOGINS
    console.main[STATS].add(drained)


def api_key(console: Console, role: Role, libraries: tuple[str, ...] = ()) -> dict[str, str]:
    """A bearer header with a new API key of ``role``."""
    key = console.admin[STAFF].create_key(f"bot-{role}", role, libraries, console.clock.now)
    return {"Authorization": f"Bearer {key}"}


def add_staff(
    console: Console, name: str, role: Role, *libs: str, totp: bool = False
) -> str | None:
    """Add an account with the test password; returns its TOTP secret."""
    return console.admin[STAFF].add(name, role, libs, PASSWORD, totp=totp, now=console.clock.now)


async def sign_in(
    console: Console, name: str, password: str = PASSWORD, code: str = ""
) -> tuple[int, dict[str, str]]:
    """Post the staff form; the status and the Cookie header a browser would then send."""
    resp = await console.client.post(
        "/login",
        data={"name": name, "password": password, "code": code},
        headers={"Origin": console.origin},
        allow_redirects=False,
    )
    cookie = {"Cookie": f"{COOKIE}={resp.cookies[COOKIE].value}"} if COOKIE in resp.cookies else {}
    return resp.status, cookie


async def call(
    console: Console, method: str, path: str, headers: dict[str, str]
) -> tuple[int, str]:
    """One request to a route, with an empty JSON body for changes; the status and body."""
    body = b"{}" if method == "POST" else None
    resp = await console.client.request(
        method,
        path,
        data=body,
        headers={**headers, "Content-Type": "application/json", "Origin": console.origin},
        allow_redirects=False,
    )
    return resp.status, await resp.text()


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_reaches_exactly_its_routes(console: Console, role: Role) -> None:
    """Every route in the table answers 403 exactly when the role lacks its permission."""
    headers = api_key(console, role, ("MAIN",) if role == "library-staff" else ())
    who = Principal("x", role, frozenset({"MAIN"}))
    for method, path, _, permission in ROUTES:
        status, _ = await call(console, method, path, headers)
        if who.may(permission):
            assert status != 403, (role, method, path)
            assert status < 500, (role, method, path)
        else:
            assert status == 403, (role, method, path, status)


async def test_route_table_covers_every_protected_route(console: Console) -> None:
    """No route of the admin app escapes the permission table (public pages aside)."""
    public = {"/login", "/logout", "/admin.css"}
    routed = {
        (r.method, r.resource.canonical)
        for r in console.admin.router.routes()
        if r.resource is not None and r.method != "HEAD" and r.resource.canonical not in public
    }
    assert routed == {(m, p) for m, p, _, _ in ROUTES}


async def test_library_staff_never_reads_another_librarys_figures(console: Console) -> None:
    """Through every route, by key and by console session, a MAIN account never gets BRANCH's
    numbers, and asking for BRANCH by name is refused."""
    seed_usage(console)
    plant_branch_canaries(console)
    add_staff(console, "main-staff", "library-staff", "MAIN")
    _, cookie = await sign_in(console, "main-staff")
    key = api_key(console, "library-staff", ("MAIN",))
    admin_key = api_key(console, "consortium-admin")
    _, everything = await call(console, "GET", "/api/stats", admin_key)
    assert str(BRANCH_REQUESTS) in everything  # the canary is there to be leaked
    for headers in (key, cookie):
        for method, path, _, _ in ROUTES:
            status, text = await call(console, method, path, headers)
            assert str(BRANCH_REQUESTS) not in text.replace(",", ""), (method, path)
            assert str(BRANCH_LOGINS) not in text.replace(",", ""), (method, path)
        status, text = await call(console, "GET", "/api/stats?library=BRANCH", headers)
        assert status == 403
    status, text = await call(console, "GET", "/api/stats?library=MAIN", key)
    assert status == 200 and '"MAIN"' in text


async def test_library_staff_dashboard_shows_their_usage_only(console: Console) -> None:
    """The dashboard of a MAIN account charts MAIN's usage and hides the consortium figures."""
    seed_usage(console)
    plant_branch_canaries(console)
    add_staff(console, "main-staff", "library-staff", "MAIN")
    _, cookie = await sign_in(console, "main-staff")
    page = await (await console.client.get("/", headers=cookie)).text()
    assert "acme" in page and "Signed in as main-staff" in page
    assert "active sessions" not in page and "Reload rules" not in page
    assert "tracker.example" not in page  # consortium-wide third-party figures


async def test_lockout_after_failed_attempts(console: Console) -> None:
    """Five wrong passwords lock the account: even the right one fails until the lock ends."""
    add_staff(console, "ann", "auditor")
    for _ in range(MAX_FAILURES):
        assert (await sign_in(console, "ann", "wrong password!"))[0] == 401
    assert (await sign_in(console, "ann"))[0] == 401
    console.clock.advance(minutes=16)
    status, cookie = await sign_in(console, "ann")
    assert status == 303
    assert (await console.client.get("/", headers=cookie)).status == 200


async def test_totp_code_is_needed_and_not_replayable(console: Console) -> None:
    """An enrolled account needs the current code; the same code does not work twice."""
    secret = add_staff(console, "bob", "rules-editor", totp=True)
    assert secret is not None
    code = pyotp.TOTP(secret).at(console.clock.now)
    assert (await sign_in(console, "bob"))[0] == 401
    assert (await sign_in(console, "bob", code="000000" if code != "000000" else "111111"))[
        0
    ] == 401
    assert (await sign_in(console, "bob", code=code))[0] == 303
    assert (await sign_in(console, "bob", code=code))[0] == 401  # replayed


async def test_disabling_an_account_ends_its_console_session(console: Console) -> None:
    """A disabled account's open session stops working at its next request."""
    add_staff(console, "cy", "auditor")
    _, cookie = await sign_in(console, "cy")
    assert (await console.client.get("/", headers=cookie)).status == 200
    console.admin[STAFF].set_disabled("cy", True)
    assert (await console.client.get("/", headers=cookie)).status == 401
    assert (await sign_in(console, "cy"))[0] == 401


async def test_session_cookie_is_random_not_the_password(console: Console) -> None:
    """The console cookie is a random id: not the password, not derived from the name."""
    add_staff(console, "dee", "auditor")
    _, first = await sign_in(console, "dee")
    _, second = await sign_in(console, "dee")
    assert first != second
    assert PASSWORD not in first["Cookie"] and "dee" not in first["Cookie"].split("=", 1)[1]


async def test_revoked_api_key_is_refused_and_keys_are_stored_hashed(console: Console) -> None:
    """A key works until revoked; the file holds its hash, never the key."""
    headers = api_key(console, "auditor")
    key = headers["Authorization"].split()[1]
    assert (await console.client.get("/api/vendors", headers=headers)).status == 200
    data = Path(console.main[SETTINGS].data_dir)
    raw = b"".join(p.read_bytes() for p in data.glob("staff.sqlite3*"))
    assert key.encode() not in raw and key.split("_")[2].encode() not in raw
    console.admin[STAFF].revoke_key(key.split("_")[1])
    assert (await console.client.get("/api/vendors", headers=headers)).status == 401


async def test_audit_log_records_who_did_what(console: Console) -> None:
    """Sign-in, reload and sign-out are recorded with the account name; auditors can read it."""
    add_staff(console, "eve", "rules-editor")
    _, cookie = await sign_in(console, "eve")
    from proxy.web.admin.auth import AUTH

    csrf = console.admin[AUTH].csrf
    resp = await console.client.post(
        "/reload",
        data={"csrf": csrf},
        headers={**cookie, "Origin": console.origin},
        allow_redirects=False,
    )
    assert resp.status == 303
    entries = await (await console.client.get("/api/audit", headers=console.bearer)).json()
    seen = [(e["actor"], e["action"]) for e in entries["entries"]]
    assert ("eve", "rules_reloaded") in seen and ("eve", "signed_in") in seen
    assert (await console.client.get("/api/audit", headers=cookie)).status == 403  # editor


async def test_audit_log_never_holds_what_was_typed(console: Console) -> None:
    """A card and PIN typed into the staff form never reach the audit log, API or file."""
    assert (await sign_in(console, CARD_CANARY, PIN_CANARY))[0] == 401
    text = await (await console.client.get("/api/audit", headers=console.bearer)).text()
    assert '"sign_in_failed"' in text
    data = Path(console.main[SETTINGS].data_dir)
    for path in data.iterdir():
        raw = path.read_bytes()
        assert CARD_CANARY.encode() not in raw and PIN_CANARY.encode() not in raw, path
    assert CARD_CANARY not in text and PIN_CANARY not in text


async def test_audit_retention_forgets_old_entries(console: Console) -> None:
    """Entries older than the retention are deleted when a new one is written."""
    log = console.admin[AUDIT]
    old = console.clock.now - log.retention - timedelta(days=1)
    log.record("cli", "staff_added", old, detail="old")
    log.record("cli", "staff_added", console.clock.now, detail="new")
    assert [e.detail for e in log.recent()] == ["new"]
