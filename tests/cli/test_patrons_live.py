"""#16: ``patrons check`` for libraries checked live: which back-end answered, and why."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from proxy.core.cards import make_check_digit
from proxy.demo.ils import start_demo_ils
from proxy.demo.patrons import DemoCard
from tests.cli.test_patrons import HARNESS, REPO
from tests.ilsauth.slapd import CANARIES, GROUP_DN, PEOPLE, SUFFIX, Slapd, free_port, start_slapd

PREFIX = "27777"


def east_card(serial: int) -> str:
    """A valid EAST card number."""
    body = f"{PREFIX}{serial:08d}"
    return body + make_check_digit(body, "luhn")


GOOD, LOST = east_card(1), east_card(2)
TODAY = date.today()
CARDS = [
    DemoCard("EAST", GOOD, "1357", "sip2", TODAY + timedelta(days=30), "ok", "good"),
    DemoCard("EAST", LOST, "2468", "sip2", TODAY + timedelta(days=30), "lost", "lost"),
]


@pytest.fixture
async def ils_port() -> AsyncIterator[int]:
    """The demo ILS with two EAST cards."""
    server, port = await start_demo_ils(CARDS)
    yield port
    server.close()
    await server.wait_closed()


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A real slapd."""
    server = start_slapd(tmp_path / "slapd")
    yield server
    server.stop()


def write_config(tmp_path: Path, library: dict[str, Any]) -> Path:
    """A proxy.yaml (JSON is YAML) with one live library."""
    path = tmp_path / "proxy.yaml"
    path.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "libraries": [library]}))
    return path


def east(port: int) -> dict[str, Any]:
    """The SIP2 library."""
    return {
        "code": "EAST", "name": "East Branch", "prefix": PREFIX, "length": 14,
        "check_digit": "luhn", "remote_ptypes": ["sip2"],
        "auth": {"use": ["sip2"], "sip2": {"host": "127.0.0.1", "port": port, "timeout": 1}},
    }  # fmt: skip


async def check(config: Path, stdin: str) -> tuple[int, str, str]:
    """Run ``patrons check`` in a fresh interpreter while this loop serves the ILS."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HARNESS, "--config", str(config), "patrons", "check",
        cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("card", "pin", "code", "expected"),
    [
        (GOOD, "1357", 0, ["sip2: answered in", "decided by: sip2", "remote login: yes"]),
        (GOOD, "0000", 1, ["remote login: no - card unknown or PIN/password wrong"]),
        (LOST, "2468", 1, ["card_reported_lost", "remote login: no - blocked"]),
    ],
)
async def test_check_asks_sip2(
    ils_port: int, tmp_path: Path, card: str, pin: str, code: int, expected: list[str]
) -> None:
    """The ILS is asked with the card and PIN from stdin; neither is printed."""
    result, out, err = await check(write_config(tmp_path, east(ils_port)), f"{card}\n{pin}\n")
    assert result == code, (out, err)
    for line in expected:
        assert line in out, (line, out)
    for secret in (card, pin, "Demo Patron", "demo.patron@example.invalid"):
        assert secret not in out and secret not in err


async def test_check_says_when_the_ils_is_down(tmp_path: Path) -> None:
    """An unreachable ILS: the back-end, the error type and "no back-end could decide"."""
    result, out, _ = await check(write_config(tmp_path, east(free_port())), f"{GOOD}\n1357\n")
    assert result == 1
    assert "sip2: unavailable after" in out and "Sip2Unreachable" in out
    assert "no back-end could decide" in out


async def test_check_asks_ldap(slapd: Slapd, tmp_path: Path) -> None:
    """LDAP: a group member can log in; nothing from the directory entry is printed."""
    card, password, _, _ = PEOPLE[0]
    library = {
        "code": "UNIV", "name": "University", "prefix": "2999", "length": 14,
        "remote_ptypes": ["student"],
        "auth": {"use": ["ldap"], "ldap": {
            "url": slapd.url, "allow_plaintext": True, "require_group": GROUP_DN,
            "bind_dn_template": f"uid={{card}},ou=people,{SUFFIX}",
            "ptype_from": "employeeType", "ptype_map": {"Student": "student"},
        }},
    }  # fmt: skip
    result, out, err = await check(write_config(tmp_path, library), f"{card}\n{password}\n")
    assert result == 0, (out, err)
    assert "ldap: answered in" in out and "patron type: student" in out
    for secret in (card, password, *CANARIES):
        assert secret not in out and secret not in err
