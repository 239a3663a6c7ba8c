"""``staff`` and ``api-key``: console accounts and automation keys (issue #20).

Contract: ``staff add NAME --role R [--library CODE ...] [--totp]``, ``staff list``,
``staff disable NAME``, ``staff enable NAME``, ``staff reset NAME [--totp | --no-totp]``;
``api-key create NAME --role R [--library CODE ...]``, ``api-key list``, ``api-key revoke ID``.
A password is read from the terminal twice (``getpass``), or once from stdin with
``--password-stdin`` (for provisioning scripts); a new TOTP secret and a new API key are
printed once, to stdout, and never logged. Each change is written to the audit log with the
actor ``cli``. A mistake (unknown role, missing account, short password, a library that is
not in proxy.yaml) is one line on stderr and exit 2.
Not here: the accounts store (stores/staff.py), roles (core/staffroles.py).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyotp

from proxy.cli.startup import settings_of
from proxy.core.settings import Settings
from proxy.core.staffroles import ROLES
from proxy.stores.audit import AuditLog
from proxy.stores.staff import StaffError, StaffStore

CLI_ACTOR: Final = "cli"


def add_staff_parsers(commands: Any) -> None:
    """Add ``staff`` and ``api-key``."""
    staff = commands.add_parser("staff", help="console staff accounts").add_subparsers(
        dest="staff_command", required=True, metavar="ACTION"
    )
    add = staff.add_parser("add", help="add an account")
    _who(add)
    add.add_argument("--totp", action="store_true", help="require a one-time code (TOTP)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    staff.add_parser("list", help="list the accounts")
    for action in ("disable", "enable"):
        staff.add_parser(action, help=f"{action} an account").add_argument("name")
    reset = staff.add_parser("reset", help="new password; clears a lockout")
    reset.add_argument("name")
    reset.add_argument("--totp", action=argparse.BooleanOptionalAction, default=None)
    reset.add_argument("--password-stdin", action="store_true")
    keys = commands.add_parser("api-key", help="API keys for automation").add_subparsers(
        dest="key_command", required=True, metavar="ACTION"
    )
    _who(keys.add_parser("create", help="create a key (printed once)"))
    keys.add_parser("list", help="list the keys")
    keys.add_parser("revoke", help="revoke a key").add_argument("id")


def _who(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument(
        "--library", action="append", default=[], help="member library (library-staff; repeat)"
    )


def staff_command(args: argparse.Namespace) -> int:
    """Run one ``staff`` action."""
    return _run(args, STAFF_ACTIONS[args.staff_command])


def api_key_command(args: argparse.Namespace) -> int:
    """Run one ``api-key`` action."""
    return _run(args, KEY_ACTIONS[args.key_command])


Action = Callable[[argparse.Namespace, StaffStore, AuditLog, Settings], None]


def _run(args: argparse.Namespace, action: Action) -> int:
    settings = settings_of(args)
    data = Path(settings.data_dir)
    store = StaffStore.open(data)
    audit = AuditLog.open(data, timedelta(days=settings.admin.audit_days))
    try:
        action(args, store, audit, settings)
    except StaffError as exc:
        print(f"error: {exc.public_message}", file=sys.stderr)
        return 2
    finally:
        store.close()
        audit.close()
    return 0


def _now() -> datetime:
    return datetime.now(UTC)


def _known_libraries(libraries: list[str], settings: Settings) -> list[str]:
    codes = {lib.code for lib in settings.libraries}
    unknown = sorted(set(libraries) - codes)
    if unknown:
        raise StaffError(f"library {unknown[0]!r} is not in proxy.yaml's libraries")
    return libraries


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise StaffError("the two passwords differ")
    return first


def _show_totp(name: str, secret: str | None, settings: Settings) -> None:
    if secret is None:
        return
    uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=settings.consortium_name)
    print(f"TOTP secret (enter it in an authenticator app; shown once): {secret}")
    print(f"otpauth URI: {uri}")


def _add(args: argparse.Namespace, store: StaffStore, audit: AuditLog, s: Settings) -> None:
    libs = _known_libraries(args.library, s)
    secret = store.add(args.name, args.role, libs, _password(args), totp=args.totp, now=_now())
    audit.record(CLI_ACTOR, "staff_added", _now(), library=" ".join(libs), detail=args.name)
    print(f"added {args.name} ({args.role})")
    _show_totp(args.name, secret, s)


def _list(args: argparse.Namespace, store: StaffStore, audit: AuditLog, s: Settings) -> None:
    for a in store.accounts():
        state = "disabled" if a.disabled else ("locked" if a.locked_until else "active")
        totp = "totp" if a.totp else "-"
        print(f"{a.name}\t{a.role}\t{','.join(a.libraries) or 'all'}\t{totp}\t{state}")


def _toggle(disabled: bool) -> Action:
    def run(args: argparse.Namespace, store: StaffStore, audit: AuditLog, s: Settings) -> None:
        store.set_disabled(args.name, disabled)
        action = "staff_disabled" if disabled else "staff_enabled"
        audit.record(CLI_ACTOR, action, _now(), detail=args.name)
        print(f"{'disabled' if disabled else 'enabled'} {args.name}")

    return run


def _reset(args: argparse.Namespace, store: StaffStore, audit: AuditLog, s: Settings) -> None:
    secret = store.reset(args.name, _password(args), totp=args.totp)
    audit.record(CLI_ACTOR, "staff_reset", _now(), detail=args.name)
    print(f"reset {args.name}")
    _show_totp(args.name, secret, s)


def _create_key(args: argparse.Namespace, store: StaffStore, audit: AuditLog, s: Settings) -> None:
    libs = _known_libraries(args.library, s)
    key = store.create_key(args.name, args.role, libs, _now())
    audit.record(CLI_ACTOR, "api_key_created", _now(), library=" ".join(libs), detail=args.name)
    print(key)


def _list_keys(args: argparse.Namespace, store: StaffStore, audit: AuditLog, s: Settings) -> None:
    for k in store.api_keys():
        state = "revoked" if k.revoked else "live"
        print(f"{k.id}\t{k.name}\t{k.role}\t{','.join(k.libraries) or 'all'}\t{state}")


def _revoke(args: argparse.Namespace, store: StaffStore, audit: AuditLog, s: Settings) -> None:
    store.revoke_key(args.id)
    audit.record(CLI_ACTOR, "api_key_revoked", _now(), detail=args.id)
    print(f"revoked {args.id}")


STAFF_ACTIONS: Final[dict[str, Action]] = {
    "add": _add,
    "list": _list,
    "disable": _toggle(True),
    "enable": _toggle(False),
    "reset": _reset,
}
KEY_ACTIONS: Final[dict[str, Action]] = {
    "create": _create_key,
    "list": _list_keys,
    "revoke": _revoke,
}
