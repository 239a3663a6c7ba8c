"""The demo's embedded defaults: member libraries (two on the registry, one on SIP2), the
demo vendors on loopback.

Contract: ``demo_config(...)`` returns the plain data of a proxy.yaml for the demo; it goes
through the same validation as any proxy.yaml. Not here: starting anything (demo/run.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proxy.demo.pages import ACME_HOSTS, BIGDB_HOSTS

REPO_RULES = Path(__file__).resolve().parents[2] / "vendor_rules"

DEMO_LIBRARIES: list[dict[str, Any]] = [
    {
        "code": "MAIN",
        "name": "Main Street Public Library",
        "prefix": "21234",
        "length": 14,
        "check_digit": "luhn",
        "remote_ptypes": ["adult", "student", "staff"],
    },
    {
        "code": "WEST",
        "name": "Westfield College Library",
        "prefix": "29876",
        "length": 14,
        "check_digit": "mod10_weighted_31",
        "remote_ptypes": ["faculty", "student"],
        "login_with": "last_name",
    },
]


def sip2_library(ils_port: int) -> dict[str, Any]:
    """#16: the member library whose cards the demo ILS checks over SIP2 on ``ils_port``."""
    return {
        "code": "EAST",
        "name": "East Branch Library",
        "prefix": "27777",
        "length": 14,
        "check_digit": "luhn",
        "remote_ptypes": ["sip2"],
        "auth": {
            "use": ["sip2"],
            "sip2": {"host": "127.0.0.1", "port": ils_port, "timeout": 2, "pool_size": 4},
        },
    }


def demo_config(
    *,
    port: int,
    vendor_port: int,
    data_dir: Path,
    ils_port: int | None = None,
    admin_port: int = 8081,
) -> dict[str, Any]:
    """proxy.yaml data for the demo (the demo vendors answer on ``vendor_port``; with
    ``ils_port``, a third library checks its cards against the demo ILS over SIP2; the admin
    console listens on loopback ``admin_port``)."""
    vendor = f"http://127.0.0.1:{vendor_port}"
    libraries = [*DEMO_LIBRARIES, *([sip2_library(ils_port)] if ils_port else [])]
    return {
        "consortium_name": "Demo Library Consortium",
        "public_url": f"http://proxy.localhost:{port}",
        "listen": {"host": "127.0.0.1", "port": port},
        "admin": {"listen": {"host": "127.0.0.1", "port": admin_port}},
        "data_dir": str(data_dir),
        "rules_dir": str(REPO_RULES),
        "log_format": "auto",
        "libraries": libraries,
        "upstream_overrides": {host: vendor for host in (*ACME_HOSTS, *BIGDB_HOSTS)},
    }
