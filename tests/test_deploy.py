"""The shipped systemd unit keeps the promises docs/deploying.md makes about it."""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "clamshell.service"


def service() -> dict[str, list[str]]:
    """The [Service] section (a key may repeat, as in systemd)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/clamshell"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("PrivateTmp", "yes"),
    ],
)
def test_unit_has(key: str, value: str) -> None:
    """Readiness, reload by SIGHUP and the hardening options are set."""
    assert value in service()[key]


def test_unit_runs_the_console_script() -> None:
    """ExecStart uses the ``clamshell`` console script from the venv."""
    assert service()["ExecStart"][0].startswith("/opt/clamshell/.venv/bin/clamshell ")
