"""Development certificates: a name-constrained local CA and a wildcard leaf for the proxy host.

Contract: ``create_dev_ca`` and ``create_leaf`` write PEM files into one folder (``certs/`` by
default) and return what they wrote as a ``CertPair``:

- ``dev-ca.pem`` / ``dev-ca.key`` (0600): an ECDSA P-256 CA valid ~2 years, ``CA:TRUE,
  pathlen:0``, whose name constraints permit only ``<proxy host>`` and its subdomains and no IP
  address at all — a leaked dev CA key cannot mint a certificate any browser or OpenSSL client
  accepts for another site.
- ``proxy.pem``: the leaf alone (SAN ``DNS:<proxy host>``, ``DNS:*.<proxy host>``, EKU
  serverAuth, ≤ 397 days — browsers refuse longer), for inspection and tools that want one
  certificate; ``proxy-chain.pem``: leaf then CA, the same shape as an ACME client's
  ``fullchain.pem``, which is what ``tls.cert`` in proxy.yaml points at; ``proxy.key`` (0600).

No file is ever overwritten unless ``force`` is given: ``CertExists`` names the file. Keys are
written under a temporary name with mode 0600 and linked (or, with ``force``, renamed) into
place, so no reader ever sees a half-written or briefly world-readable key.
``test_ca`` makes a CA and one leaf for arbitrary names (e.g. the demo vendor hosts) for tests.
Not here: the ``certs dev`` command (proxy/cli/certs.py), SSL contexts and key-file checks at
startup (tlsconfig.py), real certificates (an ACME client's job; see docs/https.md), the
review-mode CA (mitmproxy makes its own).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxy.errors import ClamshellError
from proxy.secretfiles import ensure_private_dir

CA_CERT: Final = "dev-ca.pem"
CA_KEY: Final = "dev-ca.key"
LEAF_CERT: Final = "proxy.pem"
LEAF_CHAIN: Final = "proxy-chain.pem"
LEAF_KEY: Final = "proxy.key"
DEV_FILES: Final = (CA_KEY, CA_CERT, LEAF_KEY, LEAF_CERT, LEAF_CHAIN)

KEY_MODE: Final = 0o600
CERT_MODE: Final = 0o644
CA_LIFETIME: Final = timedelta(days=730)
# CA/Browser Forum BR §6.3.2 and Apple/Chrome policy: TLS leaves longer than 398 days are refused.
LEAF_LIFETIME: Final = timedelta(days=397)
# Backdating absorbs small clock differences between the machine that signs and the browser.
BACKDATE: Final = timedelta(hours=1)
# Name constraints cover one name type at a time (RFC 5280 §4.2.1.10): without these exclusions
# the CA could still sign certificates for any IP address.
NO_IP_ADDRESSES: Final = (
    x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
    x509.IPAddress(ipaddress.ip_network("::/0")),
)


class CertError(ClamshellError):
    """A certificate could not be created as asked."""


class CertExists(CertError):
    """A file ``certs dev`` would write already exists and ``force`` was not given."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} already exists; not overwriting it. Re-run with --force to replace it "
            "(a replaced dev CA must be trusted again by every browser that trusted the old one)."
        )
        self.path = path


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate, its private key, and the files they were written to."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path
    chain_path: Path | None = None  # leaf + issuer, for a server's cert chain


# ---------------------------------------------------------------- pure: build certificates


def issue_ca(
    common_name: str, permitted: Sequence[str], now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA limited to the DNS names ``permitted`` and their subdomains."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clamshell (development only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(host) for host in dict.fromkeys(permitted)],
        excluded_subtrees=list(NO_IP_ADDRESSES),
    )
    builder = (
        _base_builder(name, name, key.public_key(), now - BACKDATE, now - BACKDATE + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(constraints, critical=True)  # RFC 5280: MUST be critical
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    return builder.sign(key, hashes.SHA256()), key


def issue_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Sequence[str],
    now: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TLS server certificate for the DNS ``names``, signed by the CA (never outliving it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    not_before = now - BACKDATE
    not_after = min(not_before + LEAF_LIFETIME, ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _base_builder(subject, ca_cert.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    return builder.sign(ca_key, hashes.SHA256()), key


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """keyCertSign + cRLSign for a CA; digitalSignature (all ECDHE-ECDSA needs) for a leaf."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def dev_names(proxy_host: str) -> list[str]:
    """The leaf's names: the portal host and one label below it (every mapped vendor host)."""
    host = proxy_host.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise CertError(
            f"public_url's host is an IP address ({host}); mapped vendor hosts need a DNS "
            "name such as proxy.localhost"
        )
    if "." not in host:
        raise CertError(
            f"public_url's host {proxy_host!r} has one label; browsers refuse a wildcard "
            "directly under a top-level name, so use e.g. proxy.localhost"
        )
    return [host, f"*.{host}"]


# ---------------------------------------------------------------- files


def create_dev_ca(directory: Path, proxy_host: str, *, force: bool, now: datetime) -> CertPair:
    """Write ``dev-ca.pem`` and ``dev-ca.key``: a CA that can only sign for ``proxy_host``."""
    paths = (directory / CA_KEY, directory / CA_CERT)
    refuse_existing(paths, force=force)
    host = dev_names(proxy_host)[0]
    label = f"clamshell dev CA for {host} ({now:%Y-%m-%d})"  # tells trust-store entries apart
    cert, key = issue_ca(label, [host], now)
    _write_pair(directory, cert, key, *paths, force=force)
    return CertPair(cert, key, cert_path=paths[1], key_path=paths[0])


def create_leaf(
    directory: Path, ca: CertPair, proxy_host: str, *, force: bool, now: datetime
) -> CertPair:
    """Write ``proxy.pem``, ``proxy-chain.pem`` and ``proxy.key`` for the host and ``*.host``."""
    paths = (directory / LEAF_KEY, directory / LEAF_CERT, directory / LEAF_CHAIN)
    refuse_existing(paths, force=force)
    cert, key = issue_leaf(ca.cert, ca.key, dev_names(proxy_host), now)
    _write_pair(directory, cert, key, paths[0], paths[1], force=force)
    _write_file(paths[2], _pem(cert) + _pem(ca.cert), mode=CERT_MODE, force=force)
    return CertPair(cert, key, cert_path=paths[1], key_path=paths[0], chain_path=paths[2])


def test_ca(directory: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA and one leaf for ``names`` in ``directory``: (CA cert, leaf cert, leaf key) paths.

    For tests (e.g. the demo vendor over HTTPS). Its ``__test__ = False`` keeps pytest from
    collecting it when a test module imports it by name.
    """
    now = datetime.now(UTC)
    ca_cert, ca_key = issue_ca("clamshell test CA", [n.removeprefix("*.") for n in names], now)
    cert, key = issue_leaf(ca_cert, ca_key, names, now)
    ensure_private_dir(directory)
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "leaf.pem", "leaf.key"))
    _write_file(ca_path, _pem(ca_cert), mode=CERT_MODE, force=True)
    _write_pair(directory, cert, key, key_path, cert_path, force=True)
    return ca_path, cert_path, key_path


test_ca.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def refuse_existing(paths: Sequence[Path], *, force: bool) -> None:
    """Raise ``CertExists`` for the first of ``paths`` that exists, unless ``force``."""
    if force:
        return
    for path in paths:
        if path.exists() or path.is_symlink():
            raise CertExists(path)


def _write_pair(
    directory: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    key_path: Path,
    cert_path: Path,
    *,
    force: bool,
) -> None:
    ensure_private_dir(directory)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # the server must start unattended
    )
    _write_file(key_path, key_pem, mode=KEY_MODE, force=force)
    _write_file(cert_path, _pem(cert), mode=CERT_MODE, force=force)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_file(path: Path, data: bytes, *, mode: int, force: bool) -> None:
    """Write under a temporary name with ``mode``, then link (never overwrites) or rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, mode)  # the umask may have removed bits we want (0644 certs)
            file.write(data)
            file.flush()
            os.fsync(fd)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise CertExists(path) from None
    finally:
        tmp.unlink(missing_ok=True)
