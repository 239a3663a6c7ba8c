"""Operational views: login lockouts (list, lift, audited) and the SQLite files (issue #20)."""

from __future__ import annotations

from pathlib import Path

from proxy.core.throttle import LoginKeys
from proxy.demo.patrons import seed
from proxy.stores.patron_import import ImportSummary
from proxy.stores.registry_status import record_import
from proxy.web.admin.auth import AUTH, STAFF
from proxy.web.keys import REGISTRY, SESSIONS, SETTINGS, SUSPENSIONS, THROTTLE
from tests.web.admin.test_app import Console

CARD_KEY = "c" * 40  # an opaque keyed hash, as the login handler makes them


def lock_a_card(console: Console) -> None:
    """Fail logins with one card until it locks."""
    keys = LoginKeys(card=CARD_KEY, address="a" * 40, network="n" * 40)
    throttle = console.main[THROTTLE]
    for _ in range(throttle.limits.card_attempts):
        throttle.record_failure(keys, console.clock.now)


async def test_lockouts_are_listed_by_scope_and_lifted(console: Console) -> None:
    """A locked card shows by hash prefix; lifting it is audited and unlocks the card."""
    lock_a_card(console)
    body = await (await console.client.get("/api/lockouts", headers=console.bearer)).json()
    cards = [lock for lock in body["lockouts"] if lock["scope"] == "card"]
    assert cards and cards[0]["key"] == CARD_KEY[:16]
    resp = await console.client.post(
        "/api/lockouts/clear", json={"scope": "card", "key": CARD_KEY[:16]}, headers=console.bearer
    )
    assert resp.status == 200 and (await resp.json())["cleared"] == 1
    keys = LoginKeys(card=CARD_KEY, address="x" * 40, network="y" * 40)
    assert console.main[THROTTLE].blocked(keys, console.clock.now) is None
    audit = await (await console.client.get("/api/audit", headers=console.bearer)).json()
    assert any(e["action"] == "lockout_cleared" for e in audit["entries"])


async def test_lift_needs_a_long_enough_prefix(console: Console) -> None:
    """A short prefix (which could lift many lockouts at once) is a 400."""
    resp = await console.client.post(
        "/api/lockouts/clear", json={"scope": "card", "key": "c"}, headers=console.bearer
    )
    assert resp.status == 400


async def test_operations_page_lifts_with_its_button(console: Console) -> None:
    """The page lists the lockout and its button lifts it (a form post with the CSRF token)."""
    lock_a_card(console)
    cookie = await console.login()
    page = await (await console.client.get("/operations", headers=cookie)).text()
    assert CARD_KEY[:16] in page and "stats.sqlite3" in page
    resp = await console.client.post(
        "/operations/lockouts/clear",
        data={"csrf": console.admin[AUTH].csrf, "scope": "card", "key": CARD_KEY[:16]},
        headers={**cookie, "Origin": console.origin},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert not [s for s, *_ in console.main[THROTTLE].locks(console.clock.now) if s == "card"]


async def test_datastores_list_every_sqlite_file(console: Console) -> None:
    """Each SQLite file of the data dir with its schema version."""
    body = await (await console.client.get("/api/datastores", headers=console.bearer)).json()
    names = {s["name"]: s for s in body["stores"]}
    assert {"stats.sqlite3", "staff.sqlite3", "audit.sqlite3"} <= set(names)
    assert all(s["ok"] and s["schema_version"] >= 1 for s in names.values())


async def live_session(console: Console, library: str, patron: str) -> str:
    """A live patron session of ``library``; its store key."""
    _, session = await console.main[SESSIONS].create(
        library=library, ptype=None, patron_key=patron, now=console.clock.now
    )
    return session.key


async def test_sessions_per_library_and_end_all_of_one(console: Console) -> None:
    """Counts per library; "end all of MAIN" ends MAIN's sessions only, and is audited."""
    await live_session(console, "MAIN", "p1")
    await live_session(console, "MAIN", "p2")
    await live_session(console, "BRANCH", "p3")
    got = await (await console.client.get("/api/sessions/libraries", headers=console.bearer)).json()
    assert {c["library"]: c["active"] for c in got["libraries"]} == {"MAIN": 2, "BRANCH": 1}
    resp = await console.client.post(
        "/api/sessions/end-library", json={"library": "MAIN"}, headers=console.bearer
    )
    assert (await resp.json())["ended"] == 2
    assert await console.main[SESSIONS].count_active(console.clock.now) == 1
    audit = await (await console.client.get("/api/audit", headers=console.bearer)).json()
    assert any(e["action"] == "sessions_ended" and e["library"] == "MAIN" for e in audit["entries"])


async def test_end_one_session_by_its_hash(console: Console) -> None:
    """The pseudonymous hash ends exactly that session; an unknown hash is 404."""
    key = await live_session(console, "MAIN", "p1")
    await live_session(console, "MAIN", "p2")
    session_hash = console.main[SUSPENSIONS].session_hash(key)
    resp = await console.client.post(
        "/api/sessions/end", json={"session_hash": session_hash}, headers=console.bearer
    )
    assert resp.status == 200 and (await resp.json())["ended"] == 1
    assert await console.main[SESSIONS].count_active(console.clock.now) == 1
    again = await console.client.post(
        "/api/sessions/end", json={"session_hash": session_hash}, headers=console.bearer
    )
    assert again.status == 404


async def test_library_staff_count_only_their_sessions(console: Console) -> None:
    """A MAIN account sees MAIN's count only, and cannot end sessions at all."""
    await live_session(console, "MAIN", "p1")
    await live_session(console, "BRANCH", "p3")
    key = console.admin[STAFF].create_key("desk", "library-staff", ("MAIN",), console.clock.now)
    headers = {"Authorization": f"Bearer {key}"}
    got = await (await console.client.get("/api/sessions/libraries", headers=headers)).json()
    assert got["libraries"] == [{"library": "MAIN", "active": 1}]
    resp = await console.client.post(
        "/api/sessions/end-library", json={"library": "MAIN"}, headers=headers
    )
    assert resp.status == 403


async def test_registry_status_per_library_and_last_import(console: Console) -> None:
    """Cards per library; the last import's counts for the consortium, not for one library."""
    settings = console.main[SETTINGS]
    seed(console.main[REGISTRY], settings, console.clock.now.date())
    record_import(
        Path(settings.data_dir),
        ImportSummary(imported=6, rejected=2, committed=True),
        console.clock.now,
    )
    body = await (await console.client.get("/api/registry", headers=console.bearer)).json()
    counts = {r["library"]: r["rows"] for r in body["libraries"]}
    assert sum(counts.values()) == console.main[REGISTRY].count() and "MAIN" in counts
    assert body["last_import"]["rejected"] == 2 and body["last_import"]["imported"] == 6
    key = console.admin[STAFF].create_key("desk", "library-staff", ("MAIN",), console.clock.now)
    mine = await (
        await console.client.get("/api/registry", headers={"Authorization": f"Bearer {key}"})
    ).json()
    assert [r["library"] for r in mine["libraries"]] == ["MAIN"] and mine["last_import"] is None
    cookie = await console.login()
    page = await (await console.client.get("/operations", headers=cookie)).text()
    assert "Patron registry" in page and "2 rejected" in page
