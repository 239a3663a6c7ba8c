"""Issue 19 (RSS ≤ 80 MB): a proxy that uses no Redis, TLS or LDAP does not load their libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ~7 MiB, ~7.6 MiB and ~5 MiB of resident memory (docs/benchmarks.md, "Relay path").
OPTIONAL = ("redis", "cryptography.hazmat", "cryptography.x509", "ldap3")
PROBE = """
import sys
import proxy.cli, proxy.server, proxy.web.app
print(" ".join(sorted({m for m in sys.modules if m.startswith(%r)})))
"""


def loaded_after_serving_imports() -> list[str]:
    """The optional libraries' modules in a fresh interpreter after the serve path's imports."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (OPTIONAL,)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_serving_imports_load_no_redis_tls_or_ldap_library() -> None:
    """Importing the CLI, the server and the app loads none of redis, cryptography's
    certificate code or ldap3: each is imported where its feature is used."""
    assert loaded_after_serving_imports() == []


def test_the_probe_sees_a_library_that_is_loaded() -> None:
    """The probe is not blind: importing an LDAP checker loads ldap3."""
    probe = PROBE.replace("import proxy.cli,", "import proxy.ilsauth.ldap_client, proxy.cli,")
    out = subprocess.run(
        [sys.executable, "-c", probe % (OPTIONAL,)], cwd=ROOT, capture_output=True, text=True
    )
    assert "ldap3" in out.stdout.split()
