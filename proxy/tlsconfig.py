"""SSL contexts for the patron-facing listener and for talking to vendors.

Contract:
- ``server_context(cert, key)``: TLS 1.2+, ECDHE + AEAD ciphers only, server cipher preference,
  no compression or renegotiation, ALPN ``http/1.1`` (aiohttp speaks nothing else). The files
  are checked first so a mistake is one clear line naming the file and the ``tls.*`` key, never
  an OpenSSL "PEM lib" error or a passphrase prompt on a terminal: missing, unreadable, not PEM,
  an encrypted key, a key that does not match the first certificate (wrong order in the chain
  file?), or a key file that group/others may read (keys must be 0600, like every secret here).
  ``reload_cert_chain(context, cert, key)`` swaps in renewed files for new connections after
  the same checks (a failed check leaves the context serving the old certificate).
- ``client_context(extra_ca)``: the system's trust store plus, optionally, one extra CA file
  (``upstream_ca``, for vendors or test servers behind a private CA). Verification and host-name
  checks are always on and TLS is 1.2+; nothing here can turn them off.
Errors are ``TLSConfigError``, a ``ConfigError``, so the CLI prints them as ``file: key: message``.
Not here: certificate creation (certs.py), listeners and the HTTP→HTTPS redirect (server.py),
the upstream connector (upstream/client.py, which has its own ``tls_context`` today).
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
# ``cryptography`` itself is imported where a file is read: the server imports this module
# even without TLS, and cryptography alone is ~7.6 MiB of its resident memory (issue 19).

from proxy.errors import ConfigError, Problem

# Mozilla "intermediate" TLS 1.2 suites without the DHE ones (no DH parameters are loaded);
# TLS 1.3 suites are OpenSSL's defaults, all AEAD. https://ssl-config.mozilla.org/
SERVER_CIPHERS: Final = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
SERVER_OPTIONS: Final = (
    ssl.OP_NO_COMPRESSION  # CRIME
    | ssl.OP_CIPHER_SERVER_PREFERENCE
    | ssl.OP_NO_RENEGOTIATION  # client-initiated renegotiation is a CPU-exhaustion vector
    | ssl.OP_SINGLE_ECDH_USE
)
ALPN: Final = ("http/1.1",)


class TLSConfigError(ConfigError):
    """A certificate, key or CA file cannot be used; the message names the file and config key."""

    def __init__(self, path: Path, key: str, message: str) -> None:
        super().__init__([Problem(str(path), None, key, message)])
        self.path = path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context serving the chain in ``cert`` (leaf first) with the key in ``key``."""
    check_cert_and_key(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= SERVER_OPTIONS
    context.set_ciphers(SERVER_CIPHERS)
    context.set_alpn_protocols(list(ALPN))
    _load_chain(context, cert, key)
    return context


def reload_cert_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    """Serve a renewed certificate and key on new connections (e.g. on SIGHUP after ACME).

    The files are checked first; when they are unusable ``TLSConfigError`` is raised and the
    context keeps serving what it had. Open connections are not affected.
    """
    check_cert_and_key(cert, key)
    _load_chain(context, cert, key)


def check_cert_and_key(cert: Path, key: Path) -> None:
    """Raise ``TLSConfigError`` unless ``cert`` holds PEM certificates, the first matching ``key``.

    ``key`` must also be a readable, unencrypted PEM private key that only its owner may read.
    """
    chain = _read_certificates(cert, "tls.cert")
    private_key = _read_private_key(key, "tls.key")
    if _spki(private_key) != _spki(chain[0]):
        raise TLSConfigError(
            key,
            "tls.key",
            f"does not match the first certificate in {cert} (wrong key, or the chain file "
            "lists the CA before the server's own certificate?)",
        )


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except (OSError, ssl.SSLError) as exc:  # changed between our checks and OpenSSL's read
        raise TLSConfigError(cert, "tls.cert", f"OpenSSL could not load it: {exc}") from None


def client_context(extra_ca: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: system CAs, plus ``extra_ca`` (PEM) when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if extra_ca is not None:
        from cryptography.hazmat.primitives import serialization

        certs = _read_certificates(extra_ca, "upstream_ca")
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        context.load_verify_locations(cadata=pem.decode("ascii"))
    return context  # create_default_context: CERT_REQUIRED and check_hostname, kept as they are


def _read_bytes(path: Path, key: str) -> bytes:
    what = "private key" if key == "tls.key" else "certificate"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TLSConfigError(path, key, f"{what} file not found") from None
    except IsADirectoryError:
        raise TLSConfigError(path, key, f"is a folder, not a {what} file") from None
    except PermissionError:
        raise TLSConfigError(
            path, key, f"cannot read the {what} file: permission denied for uid {os.geteuid()}"
        ) from None


def _read_certificates(path: Path, key: str) -> list[x509.Certificate]:
    from cryptography import x509

    data = _read_bytes(path, key)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TLSConfigError(
            path, key, "holds no PEM certificate ('-----BEGIN CERTIFICATE-----')"
        ) from None


def _read_private_key(path: Path, key: str) -> PrivateKeyTypes:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = _read_bytes(path, key)
    _check_key_mode(path, key)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSConfigError(
            path,
            key,
            "the key is encrypted; the proxy must start unattended, so store it unencrypted "
            "with mode 0600 (openssl pkey -in KEY -out KEY.plain)",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSConfigError(path, key, "holds no PEM private key") from None


def _check_key_mode(path: Path, key: str) -> None:
    mode = os.stat(path).st_mode
    if mode & 0o077:
        raise TLSConfigError(
            path,
            key,
            f"mode {stat.S_IMODE(mode):04o} lets other users read the private key; "
            f"run `chmod 600 {path}` (keys must be 0600)",
        )


def _spki(item: x509.Certificate | PrivateKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    public = item.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _no_passphrase() -> NoReturn:
    """Called by OpenSSL only for an encrypted key: fail instead of prompting on a terminal."""
    raise ssl.SSLError("the private key is encrypted")
