"""A real OpenLDAP ``slapd`` for tests: temp config and mdb database, loopback port, an LDIF.

``start_slapd(tmp)`` writes a slapd.conf (Debian's schema files, back_mdb module), loads
``DIRECTORY_LDIF`` offline with ``slapadd``, starts ``/usr/sbin/slapd -d 0`` (foreground, so
the test owns the process) on ``ldap://127.0.0.1:<free port>`` and waits for it to accept. A
system slapd (Debian's postinst starts one on :389) is never used. Without slapd the tests
skip locally and FAIL in CI (``CI=true``), as tests/browser does for Chromium.
The people's personal attributes are canaries (``CANARIES``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

SLAPD: Final = "/usr/sbin/slapd"
SLAPADD: Final = "/usr/sbin/slapadd"
SCHEMA_DIR: Final = Path("/etc/ldap/schema")
SUFFIX: Final = "dc=lib,dc=test"
SERVICE_DN: Final = f"cn=clamshell,ou=services,{SUFFIX}"
SERVICE_PASSWORD: Final = "service-secret"
GROUP_DN: Final = f"cn=remote-access,ou=groups,{SUFFIX}"
CANARIES: Final = (
    "Canary Q. Dirname",
    "canary.dir@example.org",
    "555-0142-9917",
    "9 Canary Court, Springfield",
)
# (card, password, employeeType, in the remote-access group)
PEOPLE: Final = (
    ("29990000000011", "pw-student", "Student", True),
    ("29990000000029", "pw-faculty", "Faculty", True),
    ("29990000000037", "pw-alumni", "Alumni", False),
)


def _person(card: str, password: str, kind: str) -> str:
    name, mail, phone, address = CANARIES
    return f"""dn: uid={card},ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: {card}
cn: {name}
sn: Dirname
mail: {mail}
telephoneNumber: {phone}
postalAddress: {address}
employeeType: {kind}
userPassword: {password}
"""


def directory_ldif() -> str:
    """The whole directory: base, services, people, one group."""
    members = "".join(
        f"member: uid={card},ou=people,{SUFFIX}\n" for card, _, _, member in PEOPLE if member
    )
    units = "".join(
        f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
        for ou in ("people", "groups", "services")
    )
    people = "\n".join(_person(card, pw, kind) for card, pw, kind, _ in PEOPLE)
    return f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: lib
o: Test Library

{units}dn: {SERVICE_DN}
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: clamshell
userPassword: {SERVICE_PASSWORD}

{people}
dn: {GROUP_DN}
objectClass: groupOfNames
cn: remote-access
{members}"""


def _config(tmp: Path, tls: TlsFiles | None) -> str:
    tls_lines = ""
    if tls is not None:
        tls_lines = (
            f"TLSCACertificateFile {tls.ca}\nTLSCertificateFile {tls.cert}\n"
            f"TLSCertificateKeyFile {tls.key}\n"
        )
    schemas = "".join(
        f"include {SCHEMA_DIR / name}.schema\n"
        for name in ("core", "cosine", "inetorgperson", "nis")
    )
    return f"""{schemas}{tls_lines}modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {tmp}/slapd.pid
argsfile {tmp}/slapd.args
database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw admin-secret
directory {tmp}/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none
"""


@dataclass(frozen=True)
class TlsFiles:
    """The CA, certificate and key slapd serves TLS with."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class Slapd:
    """A running slapd: its URL, and ``stop()``; with TLS also ``ldaps://…:tls_port``."""

    process: subprocess.Popen[bytes]
    port: int
    tls_port: int | None = None

    @property
    def url(self) -> str:
        """``ldap://127.0.0.1:<port>``."""
        return f"ldap://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate this slapd (only the process we started)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def require_slapd() -> None:
    """Skip without slapd locally; fail in CI, where .ci/run installs it."""
    if os.path.exists(SLAPD) and os.path.exists(SLAPADD) and SCHEMA_DIR.is_dir():
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{SLAPD} is missing: .ci/run installs the Debian slapd package")
    pytest.skip("slapd is not installed (apt-get install slapd ldap-utils)")


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_slapd(tmp: Path, tls: TlsFiles | None = None) -> Slapd:
    """Configure, load and start a slapd in ``tmp``; waits until it accepts connections.

    With ``tls`` it also offers StartTLS on its ldap:// port and listens on an ldaps:// port.
    """
    require_slapd()
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "db").mkdir(parents=True)
    conf = tmp / "slapd.conf"
    conf.write_text(_config(tmp, tls))
    ldif = tmp / "directory.ldif"
    ldif.write_text(directory_ldif())
    subprocess.run(
        [SLAPADD, "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True
    )
    port = free_port()
    tls_port = free_port() if tls is not None else None
    urls = f"ldap://127.0.0.1:{port}/" + (f" ldaps://127.0.0.1:{tls_port}/" if tls_port else "")
    log = tmp / "slapd.log"  # a file, not a pipe: nobody reads it while slapd runs
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [SLAPD, "-f", str(conf), "-h", urls, "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    slapd = Slapd(process, port, tls_port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {log.read_text(errors='replace')!r}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return slapd
        except OSError:
            time.sleep(0.05)
    slapd.stop()
    raise RuntimeError("slapd did not start listening")
