"""``certs dev [--force] [--dir certs]``: a development CA and a wildcard leaf for the proxy host.

Contract: ``add_certs_parser(commands)`` adds the command; ``run_certs(args, settings)`` creates
the CA and the leaf (never overwriting without ``--force``), prints the files, how to trust the
CA on each platform and the proxy.yaml lines; exit 0, or 1 with ``certs dev: reason``.
``certs_command(args)`` loads the settings first.
Not here: making the certificates (proxy/certs.py), SSL contexts (proxy/tlsconfig.py).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.cli.startup import settings_of
from proxy.core.settings import Settings

if TYPE_CHECKING:
    from proxy.certs import CertPair
# proxy.certs and cryptography are imported when the command runs: this module is imported
# by every command, ``serve`` included, and cryptography is ~7.6 MiB of memory (issue 19).


def certs_command(args: argparse.Namespace) -> int:
    """``certs dev`` with the config's settings."""
    return run_certs(args, settings_of(args))


def add_certs_parser(subparsers: Any) -> None:
    """Add ``certs dev [--force] [--dir certs]`` to the top-level commands."""
    certs = subparsers.add_parser("certs", help="create development TLS certificates")
    cmds = certs.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")
    dev = cmds.add_parser(
        "dev",
        help="a local CA + a leaf for <proxy host> and *.<proxy host>",
        description="Create a development CA (limited to the proxy host by name constraints) "
        "and a wildcard certificate for the host of public_url, then print how to trust the CA.",
    )
    dev.add_argument("--force", action="store_true", help="replace existing files and keys")
    dev.add_argument("--dir", default="certs", metavar="DIR", help="output folder (default certs)")


def run_certs(args: argparse.Namespace, settings: Settings) -> int:
    """``certs dev``: create the CA and the leaf, print what was made and how to trust it."""
    from proxy.certs import DEV_FILES, CertError, create_dev_ca, create_leaf, refuse_existing

    directory = Path(args.dir)
    now = datetime.now(UTC)
    try:
        refuse_existing([directory / name for name in DEV_FILES], force=args.force)
        ca = create_dev_ca(directory, settings.proxy_host, force=args.force, now=now)
        leaf = create_leaf(directory, ca, settings.proxy_host, force=args.force, now=now)
    except CertError as exc:
        print(f"certs dev: {exc}", file=sys.stderr)
        return 1
    print(created_report(ca, leaf, settings))
    return 0


def created_report(ca: CertPair, leaf: CertPair, settings: Settings) -> str:
    """What ``certs dev`` prints: the files, how to trust the CA, the proxy.yaml lines."""
    from cryptography import x509

    san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = san.get_values_for_type(x509.DNSName)
    until = f"{leaf.cert.not_valid_after_utc:%Y-%m-%d}"
    lines = [
        f"created {ca.cert_path}  (the CA to trust; it can only sign for {names[0]} and below)",
        f"created {ca.key_path}  (mode 0600; keep it private)",
        f"created {leaf.cert_path}  (leaf for {', '.join(names)}, valid until {until})",
        f"created {leaf.chain_path}  (leaf + CA: point tls.cert here)",
        f"created {leaf.key_path}  (mode 0600)",
        "",
        trust_instructions(ca.cert_path),
        "",
        "Then serve HTTPS with these lines in proxy.yaml (paths relative to its folder):",
        f"  tls: {{cert: {leaf.chain_path}, key: {leaf.key_path}}}",
    ]
    if settings.public_scheme != "https":
        port = f":{settings.proxy_port}" if settings.proxy_port else ""
        lines.append(
            f"  public_url: https://{settings.proxy_host}{port}  # now {settings.public_url}"
        )
    return "\n".join(lines)


def trust_instructions(ca_pem: Path) -> str:
    """How to make browsers and tools trust the dev CA, per platform."""
    return f"""How to trust the development CA ({ca_pem}) on this machine only:
  Debian/Ubuntu (curl, Python, system tools):
    sudo cp {ca_pem} /usr/local/share/ca-certificates/clamshell-dev.crt
    sudo update-ca-certificates
  Chrome/Chromium on Linux (NSS; certutil is in libnss3-tools):
    certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n clamshell-dev -i {ca_pem}
  Firefox (its own store per profile): Settings > Privacy & Security > Certificates >
    View Certificates > Authorities > Import, or
    certutil -d sql:$HOME/.mozilla/firefox/<profile> -A -t C,, -n clamshell-dev -i {ca_pem}
  macOS:
    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca_pem}
  Windows (administrator prompt; or `certutil -user -addstore Root` for your account only):
    certutil -addstore -f Root {ca_pem}
To remove it later: `certutil -d sql:$HOME/.pki/nssdb -D -n clamshell-dev` (NSS); delete the
.crt and run `sudo update-ca-certificates --fresh` (Debian); Keychain Access or certmgr.msc.
Never copy dev-ca.key off this machine: it can sign certificates for the proxy host."""
