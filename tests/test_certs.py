"""The dev CA and leaf: extensions, name constraints, file modes, no overwrite, real handshakes."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from proxy import certs
from proxy.tlsconfig import client_context, server_context

NOW = datetime.now(UTC).replace(microsecond=0)  # real time: the handshakes check validity
HOST = "proxy.localhost"
MAPPED = "www-acmejournals-test.proxy.localhost"
T = TypeVar("T", bound=x509.ExtensionType)

try:
    from cryptography.x509 import verification
except ImportError:  # cryptography < 42: the loopback handshake tests still cover constraints
    verification = None  # type: ignore[assignment]


@pytest.fixture
def dev(tmp_path: Path) -> tuple[certs.CertPair, certs.CertPair]:
    """A dev CA and leaf for proxy.localhost, written to tmp_path/certs."""
    directory = tmp_path / "certs"
    ca = certs.create_dev_ca(directory, HOST, force=False, now=NOW)
    return ca, certs.create_leaf(directory, ca, HOST, force=False, now=NOW)


def ext(cert: x509.Certificate, kind: type[T]) -> x509.Extension[T]:
    """The certificate's extension of this type."""
    return cert.extensions.get_extension_for_class(kind)


def write_pem(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """Write a certificate and its key (0600) as name.pem / name.key; return both paths."""
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@asynccontextmanager
async def tls_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    """A real aiohttp server on 127.0.0.1 answering "ok" over TLS; yields its port."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def https_get(port: int, context: ssl.SSLContext, server_hostname: str) -> tuple[bytes, str]:
    """GET / over TLS with this SNI; the raw response and the negotiated ALPN protocol."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_hostname
    )
    try:
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {server_hostname}\r\nConnection: close\r\n\r\n".encode()
        )
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        return await reader.read(), alpn
    finally:
        writer.close()


# ---------------------------------------------------------------- the certificates


def test_dev_ca_is_a_p256_ca_that_can_only_sign_leaves(dev: tuple[certs.CertPair, ...]) -> None:
    """The CA is P-256, CA:TRUE pathlen 0 (critical), and may only sign certificates and CRLs."""
    ca = dev[0].cert
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    basic = ext(ca, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert ca.subject == ca.issuer and HOST in ca.subject.rfc4514_string()


def test_dev_ca_is_name_constrained_to_the_proxy_host(dev: tuple[certs.CertPair, ...]) -> None:
    """The CA's critical name constraints permit only the proxy host's DNS subtree and no IP."""
    constraints = ext(dev[0].cert, x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName(HOST)]
    assert set(constraints.value.excluded_subtrees or ()) == set(certs.NO_IP_ADDRESSES)


def test_dev_ca_lasts_about_two_years(dev: tuple[certs.CertPair, ...]) -> None:
    """The CA is valid from just before `now` for 730 days."""
    ca = dev[0].cert
    assert ca.not_valid_before_utc <= NOW < ca.not_valid_after_utc
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == timedelta(days=730)


def test_leaf_names_the_host_and_every_mapped_host(dev: tuple[certs.CertPair, ...]) -> None:
    """The leaf's SANs are the proxy host and its wildcard; it is a serverAuth non-CA leaf."""
    leaf = dev[1].cert
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST, f"*.{HOST}"]
    assert ext(leaf, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    assert ext(leaf, x509.KeyUsage).value.digital_signature


def test_leaf_key_identifiers_chain_to_the_ca(dev: tuple[certs.CertPair, ...]) -> None:
    """The leaf's AKI is the CA's SKI, and its SKI is derived from its own key."""
    ca, leaf = dev[0].cert, dev[1].cert
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ext(ca, x509.SubjectKeyIdentifier).value.digest
    own = x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())  # type: ignore[arg-type]
    assert ext(leaf, x509.SubjectKeyIdentifier).value == own


def test_leaf_lives_at_most_397_days(dev: tuple[certs.CertPair, ...]) -> None:
    """Browsers refuse TLS leaves valid for more than 398 days; ours last 397."""
    leaf = dev[1].cert
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=397)
    assert leaf.not_valid_before_utc <= NOW


def test_leaf_never_outlives_its_ca(tmp_path: Path) -> None:
    """A leaf made late in the CA's life ends when the CA ends."""
    ca = certs.create_dev_ca(tmp_path, HOST, force=False, now=NOW)
    late = NOW + timedelta(days=600)
    leaf = certs.create_leaf(tmp_path, ca, HOST, force=False, now=late)
    assert leaf.cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_chain_file_is_the_leaf_then_the_ca(dev: tuple[certs.CertPair, ...]) -> None:
    """proxy-chain.pem holds the leaf then the CA; proxy.pem holds the leaf alone."""
    ca, leaf = dev
    assert leaf.chain_path is not None
    assert x509.load_pem_x509_certificates(leaf.chain_path.read_bytes()) == [leaf.cert, ca.cert]
    assert x509.load_pem_x509_certificates(leaf.cert_path.read_bytes()) == [leaf.cert]


def test_files_and_modes(dev: tuple[certs.CertPair, ...], tmp_path: Path) -> None:
    """Keys are 0600, certificates 0644, and no temporary file is left behind."""
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "certs").iterdir()}
    assert modes == {
        "dev-ca.key": 0o600,
        "proxy.key": 0o600,
        "dev-ca.pem": 0o644,
        "proxy.pem": 0o644,
        "proxy-chain.pem": 0o644,
    }


def test_key_files_hold_the_returned_keys(dev: tuple[certs.CertPair, ...]) -> None:
    """Each .key file holds an unencrypted PKCS#8 key matching its certificate."""
    for pair in dev:
        key = serialization.load_pem_private_key(pair.key_path.read_bytes(), password=None)
        assert key.public_key() == pair.cert.public_key()


# ---------------------------------------------------------------- never overwrite


@pytest.mark.parametrize("existing", ["dev-ca.key", "dev-ca.pem"])
def test_ca_is_never_overwritten_without_force(tmp_path: Path, existing: str) -> None:
    """An existing CA file stops create_dev_ca with CertExists naming that file, untouched."""
    (tmp_path / existing).write_text("keep me")
    with pytest.raises(certs.CertExists, match=existing) as caught:
        certs.create_dev_ca(tmp_path, HOST, force=False, now=NOW)
    assert caught.value.path == tmp_path / existing
    assert (tmp_path / existing).read_text() == "keep me"


@pytest.mark.parametrize("existing", ["proxy.key", "proxy.pem", "proxy-chain.pem"])
def test_leaf_is_never_overwritten_without_force(tmp_path: Path, existing: str) -> None:
    """An existing leaf file stops create_leaf with CertExists, and nothing is written."""
    ca = certs.create_dev_ca(tmp_path, HOST, force=False, now=NOW)
    (tmp_path / existing).write_text("keep me")
    with pytest.raises(certs.CertExists, match="--force"):
        certs.create_leaf(tmp_path, ca, HOST, force=False, now=NOW)
    assert (tmp_path / existing).read_text() == "keep me"
    assert {p.name for p in tmp_path.iterdir()} == {"dev-ca.key", "dev-ca.pem", existing}


def test_force_replaces_keys_and_keeps_modes(
    dev: tuple[certs.CertPair, ...], tmp_path: Path
) -> None:
    """With force, a new CA and leaf replace the old files, keys still 0600."""
    old_ca, _ = dev
    directory = tmp_path / "certs"
    ca = certs.create_dev_ca(directory, HOST, force=True, now=NOW)
    certs.create_leaf(directory, ca, HOST, force=True, now=NOW)
    assert ca.cert != old_ca.cert
    assert x509.load_pem_x509_certificate(ca.cert_path.read_bytes()) == ca.cert
    assert (directory / "dev-ca.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", ""])
def test_hosts_that_cannot_have_a_wildcard_are_refused(tmp_path: Path, host: str) -> None:
    """An IP address or a single-label proxy host is refused before anything is written."""
    with pytest.raises(certs.CertError):
        certs.create_dev_ca(tmp_path, host, force=False, now=NOW)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- name constraints


@pytest.mark.skipif(verification is None, reason="needs cryptography.x509.verification")
def test_policy_verifier_accepts_mapped_host_and_refuses_evil(
    dev: tuple[certs.CertPair, ...],
) -> None:
    """cryptography's verifier accepts a dev-CA leaf for a mapped host, not one for evil.example.

    (Its verifier rejects wildcard SANs under any DNS name constraint, pyca/cryptography#12250,
    so the positive control is a leaf without a wildcard; the wildcard leaf is checked with
    OpenSSL in the handshake tests.)
    """
    ca = dev[0]
    store = verification.Store([ca.cert])

    def verify(names: list[str], name: str) -> None:
        cert, _ = certs.issue_leaf(ca.cert, ca.key, names, NOW)
        policy = verification.PolicyBuilder().store(store).time(NOW)
        policy.build_server_verifier(verification.DNSName(name)).verify(cert, [])

    verify([MAPPED], MAPPED)
    with pytest.raises(verification.VerificationError, match="name constraint"):
        verify(["evil.example"], "evil.example")


async def test_openssl_refuses_a_dev_ca_cert_for_another_site(
    dev: tuple[certs.CertPair, ...], tmp_path: Path
) -> None:
    """A certificate for evil.example signed by the leaked dev CA key fails a real handshake."""
    ca = dev[0]
    cert, key = certs.issue_leaf(ca.cert, ca.key, ["evil.example", "*.evil.example"], NOW)
    async with tls_server(server_context(*write_pem(tmp_path, "evil", cert, key))) as port:
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            await https_get(port, client_context(ca.cert_path), "www.evil.example")
    assert caught.value.verify_message == "permitted subtree violation"


# ---------------------------------------------------------------- real handshakes


async def test_handshake_succeeds_for_a_mapped_host(dev: tuple[certs.CertPair, ...]) -> None:
    """A client trusting dev-ca.pem gets a verified TLS 1.2+ answer for a mapped vendor host."""
    ca, leaf = dev
    assert leaf.chain_path is not None
    async with tls_server(server_context(leaf.chain_path, leaf.key_path)) as port:
        client = client_context(ca.cert_path)
        client.set_alpn_protocols(["h2", "http/1.1"])
        response, alpn = await https_get(port, client, MAPPED)
        portal, _ = await https_get(port, client_context(ca.cert_path), HOST)
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"ok")
    assert alpn == "http/1.1"  # aiohttp speaks no h2, so the server must never pick it
    assert portal.startswith(b"HTTP/1.1 200")


async def test_handshake_fails_for_a_name_outside_the_certificate(
    dev: tuple[certs.CertPair, ...],
) -> None:
    """The same server is refused when the client expects other.example."""
    ca, leaf = dev
    async with tls_server(server_context(leaf.cert_path, leaf.key_path)) as port:
        with pytest.raises(ssl.SSLCertVerificationError, match=r"other\.example"):
            await https_get(port, client_context(ca.cert_path), "other.example")


async def test_handshake_fails_without_trusting_the_dev_ca(dev: tuple[certs.CertPair, ...]) -> None:
    """A client with only the system trust store refuses the dev leaf: no silent trust."""
    leaf = dev[1]
    async with tls_server(server_context(leaf.cert_path, leaf.key_path)) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            await https_get(port, client_context(None), MAPPED)


async def test_certificates_pass_openssl_strict_checks(dev: tuple[certs.CertPair, ...]) -> None:
    """The CA and leaf pass X509_STRICT, which Python 3.13 clients turn on by default."""
    ca, leaf = dev
    client = client_context(ca.cert_path)
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    async with tls_server(server_context(leaf.cert_path, leaf.key_path)) as port:
        response, _ = await https_get(port, client, MAPPED)
    assert response.startswith(b"HTTP/1.1 200")


def test_test_ca_makes_a_leaf_for_arbitrary_names(tmp_path: Path) -> None:
    """test_ca returns CA, leaf and key paths; the leaf names exactly the given hosts."""
    names = ["www.acmejournals.test", "*.acmejournals.test", "search.bigdb.test"]
    ca_path, cert_path, key_path = certs.test_ca(tmp_path / "tls", names)
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == names
    assert x509.load_pem_x509_certificate(ca_path.read_bytes()).subject == leaf.issuer
    assert key_path.stat().st_mode & 0o777 == 0o600
