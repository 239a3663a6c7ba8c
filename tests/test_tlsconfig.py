"""SSL contexts: secure defaults, and one clear line naming the file for every bad TLS file."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxy import certs
from proxy.errors import ConfigError
from proxy.tlsconfig import TLSConfigError, client_context, reload_cert_chain, server_context

NAMES = ["www.acmejournals.test", "*.acmejournals.test"]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A test CA, a leaf certificate and its 0600 key."""
    return certs.test_ca(tmp_path / "tls", NAMES)


def copy(src: Path, dst: Path, mode: int = 0o600) -> Path:
    """Copy a file and give the copy `mode`."""
    shutil.copyfile(src, dst)
    dst.chmod(mode)
    return dst


def test_server_context_has_modern_defaults(pair: tuple[Path, Path, Path]) -> None:
    """TLS 1.2 or newer, no compression or renegotiation, server cipher order, AEAD suites only."""
    _, cert, key = pair
    context = server_context(cert, key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    for option in (ssl.OP_NO_COMPRESSION, ssl.OP_CIPHER_SERVER_PREFERENCE, ssl.OP_NO_RENEGOTIATION):
        assert context.options & option
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["aead"] and c["kea"] == "kx-ecdhe" for c in tls12)


def test_errors_are_config_errors_naming_file_and_key(tmp_path: Path) -> None:
    """A TLSConfigError is a ConfigError rendered as `file: tls.cert: message`."""
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as caught:
        server_context(missing, tmp_path / "nope.key")
    assert str(caught.value) == f"{missing}: tls.cert: certificate file not found"


def test_missing_key_is_named(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A missing key file is reported under tls.key with its path."""
    _, cert, _ = pair
    with pytest.raises(TLSConfigError, match=r"missing\.key: tls\.key: private key file not found"):
        server_context(cert, tmp_path / "missing.key")


def test_folder_instead_of_a_file_is_named(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Pointing tls.cert at a folder says so."""
    _, _, key = pair
    with pytest.raises(TLSConfigError, match="is a folder"):
        server_context(tmp_path, key)


def test_certificate_that_is_not_pem_is_named(
    pair: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A cert file without a PEM certificate (e.g. the key by mistake) is refused."""
    _, _, key = pair
    with pytest.raises(TLSConfigError, match=r"tls\.cert: holds no PEM certificate"):
        server_context(copy(key, tmp_path / "swapped.pem"), key)


def test_key_that_is_not_pem_is_named(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A key file holding a certificate is refused as holding no private key."""
    _, cert, _ = pair
    with pytest.raises(TLSConfigError, match=r"tls\.key: holds no PEM private key"):
        server_context(cert, copy(cert, tmp_path / "cert-as.key"))


def test_mismatched_key_is_refused(pair: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A key from another certificate is refused, naming both files."""
    _, cert, _ = pair
    _, _, other_key = certs.test_ca(tmp_path / "other", NAMES)
    with pytest.raises(
        TLSConfigError, match=re.escape(f"does not match the first certificate in {cert}")
    ):
        server_context(cert, other_key)


def test_chain_in_the_wrong_order_is_explained(
    pair: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A chain file listing the CA before the leaf gets a hint about the order."""
    ca, cert, key = pair
    reversed_chain = tmp_path / "reversed.pem"
    reversed_chain.write_bytes(ca.read_bytes() + cert.read_bytes())
    with pytest.raises(TLSConfigError, match="CA before the server's own certificate"):
        server_context(reversed_chain, key)


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660])
def test_key_readable_by_others_is_refused(pair: tuple[Path, Path, Path], mode: int) -> None:
    """A key that group or others may read is refused with the chmod that fixes it."""
    _, cert, key = pair
    key.chmod(mode)
    with pytest.raises(
        TLSConfigError, match=f"mode {mode:04o} .* run `chmod 600 {re.escape(str(key))}`"
    ):
        server_context(cert, key)


def test_owner_only_read_only_key_is_accepted(pair: tuple[Path, Path, Path]) -> None:
    """Mode 0400 is as private as 0600 and works."""
    _, cert, key = pair
    key.chmod(0o400)
    assert isinstance(server_context(cert, key), ssl.SSLContext)


def test_encrypted_key_is_refused_without_prompting(pair: tuple[Path, Path, Path]) -> None:
    """A passphrase-protected key is refused with a message; nothing prompts on a terminal."""
    _, cert, key = pair
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TLSConfigError, match="the key is encrypted"):
        server_context(cert, key)


def test_client_context_always_verifies() -> None:
    """The client context requires a valid certificate for the right host, TLS 1.2+."""
    context = client_context(None)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_client_context_adds_the_extra_ca(pair: tuple[Path, Path, Path]) -> None:
    """upstream_ca adds its CA to the system's, which are still trusted."""
    ca, _, _ = pair
    system = client_context(None).cert_store_stats()["x509_ca"]
    assert client_context(ca).cert_store_stats()["x509_ca"] == system + 1


def test_client_context_names_a_missing_ca_file(tmp_path: Path) -> None:
    """A missing upstream_ca file is an error naming it, not a fallback to no extra CA."""
    with pytest.raises(TLSConfigError, match=r"ca\.pem: upstream_ca: certificate file not found"):
        client_context(tmp_path / "ca.pem")


def test_client_context_refuses_a_ca_file_without_certificates(tmp_path: Path) -> None:
    """An upstream_ca file with no PEM certificate in it is refused."""
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TLSConfigError, match="upstream_ca: holds no PEM certificate"):
        client_context(junk)


async def peer_certificate(port: int, ca: Path) -> bytes:
    """The DER certificate a TLS server on 127.0.0.1 presents for www.acmejournals.test."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(ca), server_hostname=NAMES[0]
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return der


async def test_reload_serves_the_renewed_certificate(tmp_path: Path) -> None:
    """After reload_cert_chain, new handshakes get the new certificate; a bad reload keeps it."""
    ca, cert, key = certs.test_ca(tmp_path / "old", NAMES)
    context = server_context(cert, key)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        before = await peer_certificate(port, ca)
        ca, cert, key = certs.test_ca(tmp_path / "old", NAMES)  # renewed in place
        reload_cert_chain(context, cert, key)
        after = await peer_certificate(port, ca)
        key.chmod(0o644)
        with pytest.raises(TLSConfigError):
            reload_cert_chain(context, cert, key)
        assert await peer_certificate(port, ca) == after
    finally:
        server.close()
        await server.wait_closed()
    assert before != after
    assert after == x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
