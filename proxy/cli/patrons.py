"""The ``patrons`` commands: ``patrons import FILE [--replace]`` and ``patrons check``.

Contract: ``add_patrons_parser(subparsers)`` adds the commands to the main parser;
``run_patrons(args, settings)`` runs one and returns the exit code (``patrons_command(args)``
loads the settings first).
``import``: bad rows are printed to stderr as ``FILE:LINE: reason``, then one summary line
to stdout; exit 0 when every row was imported, 1 when any row was rejected, the file could
not be read, no row was valid, or a ``--replace`` was refused (nothing is changed then:
rejected rows or a cut-off file without ``--allow-partial``, or more removals than
``--max-remove``, default 5%; R13). ``--delimiter tab|semicolon`` reads another delimiter
and ``--date-format %m/%d/%Y`` another expiry date format (docs/patron-import.md).
``check``: the card number is read from a hidden prompt, or from the first line of stdin
when stdin is not a terminal — never from argv, where it would land in shell history and
``ps``. It prints what the registry knows and whether the card could log in remotely, and
why not; it never prints or logs the card number. Exit 0 when the card could log in, 1 when
it could not. For a library checked live (SIP2, LDAP; #16) a second line (or hidden prompt)
gives the PIN or password, and the back-ends are asked as a login would ask them
(cli/backend_check.py): which one answered, in how long, and why.
Not here: import and storage (stores/patron_import.py, stores/patrons.py), the login
decision itself (core/login.py), ``patrons block`` (block.py), wiring into the main parser
(proxy/cli/__init__.py).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import date
from pathlib import Path
from typing import Final

from proxy.cli.backend_check import check_live
from proxy.cli.block import BLOCK_COMMANDS, add_block_commands, with_block
from proxy.cli.startup import configured
from proxy.core.cards import barcode_problem, library_for_barcode, normalize_barcode
from proxy.core.login import CardFacts, LoginRefused, Refusal, decide_login
from proxy.core.settings import Settings
from proxy.errors import ClamshellError
from proxy.stores.patron_import import (
    DEFAULT_MAX_REMOVE,
    DELIMITERS,
    CsvFormat,
    ImportSummary,
    RemoveLimit,
    check_date_format,
    import_csv,
)
from proxy.stores.patrons import PatronRecord, PatronRegistry

# Refusal -> what staff are told (patrons get core/login.py's MESSAGES instead)
STAFF_REASONS: Final[dict[Refusal, str]] = {
    Refusal.EXPIRED: "the card expired on {expires}",
    Refusal.BLOCKED: "status is {status} (only 'ok' may log in)",
    Refusal.NO_REMOTE: "patron type '{ptype}' has no remote access at {library} "
    "(remote_ptypes: {remote})",
    Refusal.UNRECOGNISED: "library {library} is not in proxy.yaml",
}
CHECK_NOTE: Final = "(the PIN or last name and login throttling are not checked here)"


def add_patrons_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``patrons import`` and ``patrons check`` to the main parser's commands."""
    patrons = subparsers.add_parser("patrons", help="import or check the patron registry")
    commands = patrons.add_subparsers(dest="patrons_command", required=True, metavar="SUBCOMMAND")
    importer = commands.add_parser("import", help="import the ILS patron export (CSV)")
    importer.add_argument("file", type=Path, help="CSV: barcode,pin|last_name,library,...")
    importer.add_argument(
        "--replace",
        action="store_true",
        help="make the registry equal to the file (cards missing from it lose access)",
    )
    importer.add_argument(
        "--allow-partial",
        action="store_true",
        help="--replace even when rows were rejected or the file ends mid-line",
    )
    importer.add_argument(
        "--max-remove",
        type=remove_limit,
        default=DEFAULT_MAX_REMOVE,
        metavar="N|P%",
        help=f"--replace removes at most N patrons or P%% of them (default {DEFAULT_MAX_REMOVE})",
    )
    importer.add_argument(
        "--delimiter",
        choices=sorted(DELIMITERS),
        default="comma",
        help="the character between fields (default comma)",
    )
    importer.add_argument(
        "--date-format",
        type=date_format,
        metavar="PATTERN",
        help="the expires column's format, e.g. %%m/%%d/%%Y (default YYYY-MM-DD)",
    )
    commands.add_parser(
        "check",
        help="why a card can or cannot log in (card read from a prompt or stdin, never argv)",
    )
    add_block_commands(commands)  # block, blocks, unblock (block.py)


def remove_limit(text: str) -> RemoveLimit:
    """``--max-remove`` value: ``500`` or ``5%``."""
    try:
        return RemoveLimit.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def date_format(text: str) -> str:
    """``--date-format`` value: a strptime pattern with a day, month and year."""
    try:
        return check_date_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def patrons_command(args: argparse.Namespace) -> int:
    """``patrons …`` with the config's settings."""
    return run_patrons(args, configured(args))


def run_patrons(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen ``patrons`` subcommand; returns the exit code."""
    command = {"import": import_command, "check": check_command, **BLOCK_COMMANDS}[
        args.patrons_command
    ]
    try:
        return command(args, settings)
    except ClamshellError as exc:
        print(exc, file=sys.stderr)
        return 1


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    """``patrons import FILE [--replace]``."""
    with PatronRegistry.open(Path(settings.data_dir)) as registry:
        summary = import_csv(
            registry,
            args.file,
            settings,
            replace=args.replace,
            progress=True,
            allow_partial=args.allow_partial,
            max_remove=args.max_remove,
            fmt=CsvFormat(DELIMITERS[args.delimiter], args.date_format),
        )
    for problem in summary.problems:
        print(problem, file=sys.stderr)
    if summary.unlisted_problems:
        print(f"... and {summary.unlisted_problems} more rejected rows", file=sys.stderr)
    if summary.ends_mid_line:
        print(
            f"{args.file}:{summary.ends_mid_line}: the file ends mid-line (a truncated export?)",
            file=sys.stderr,
        )
    print(f"{args.file}: {summary_line(summary)}")
    return summary.exit_code


def summary_line(summary: ImportSummary) -> str:
    """``imported 3, updated 1, unchanged 5, rejected 2, removed 0`` (+ a note if no commit)."""
    counts = (
        f"imported {summary.imported}, updated {summary.updated}, "
        f"unchanged {summary.unchanged}, rejected {summary.rejected}, removed {summary.removed}"
    )
    if summary.refused:
        return f"{counts}; {summary.refused}"
    return counts if summary.committed else f"{counts}; no valid rows, nothing was changed"


def check_command(_args: argparse.Namespace, settings: Settings) -> int:
    """``patrons check``: read a card number and explain what the registry says."""
    barcode = normalize_barcode(read_card())
    if not barcode:
        print("no card number given", file=sys.stderr)
        return 1
    library = library_for_barcode(barcode, settings.libraries)
    if library is not None and library.auth.live:  # #16: SIP2/LDAP need the PIN or password
        lines, ok = check_live(settings, library, barcode, read_secret())
        lines, ok = with_block(settings, barcode, lines, ok)
        print("\n".join(lines))
        return 0 if ok else 1
    with PatronRegistry.open(Path(settings.data_dir)) as registry:
        record = registry.lookup(barcode)
    if record is None:
        lines, ok = describe_unknown(barcode, settings), False
    else:
        lines, ok = describe_record(record, settings, date.today())
    lines, ok = with_block(settings, barcode, lines, ok)  # #18: the local block list
    print("\n".join(lines))
    return 0 if ok else 1


def read_card() -> str:
    """The card number from a hidden prompt, or the first line of stdin when piped."""
    if sys.stdin.isatty():
        return getpass.getpass("Card number (not shown): ")
    return sys.stdin.readline().strip()


def read_secret() -> str:
    """The PIN or password (live back-ends need it) from a hidden prompt, or the next line."""
    if sys.stdin.isatty():
        return getpass.getpass("PIN or password (not shown): ")
    return sys.stdin.readline().rstrip("\r\n")


def describe_unknown(barcode: str, settings: Settings) -> list[str]:
    """Lines for a card the registry does not hold: is it at least a valid number?"""
    library = library_for_barcode(barcode, settings.libraries)
    if library is None:
        shape = "no member library uses this card number's prefix"
    else:
        problem = barcode_problem(barcode, library)
        shape = f"a valid {library.code} card number" if problem is None else problem
    return [
        "card: not found in the registry",
        f"number: {shape}",
        "remote login: no - the card is not in the registry (is the ILS export current?)",
    ]


def describe_record(
    record: PatronRecord, settings: Settings, today: date
) -> tuple[list[str], bool]:
    """Lines for a card the registry holds, and whether it could log in remotely."""
    library = settings.library(record.library)
    facts = CardFacts(record.library, record.ptype, record.expires, record.status, "")
    decision = decide_login(
        facts, secret_ok=True, throttled=False, today=today, library=library, target_rule=None
    )
    lines = [
        "card: found",
        f"library: {record.library}" + (f" ({library.name})" if library else ""),
        f"patron type: {record.ptype}",
        f"status: {record.status}",
        f"expires: {record.expires.isoformat()}",
    ]
    if isinstance(decision, LoginRefused):
        reason = STAFF_REASONS.get(decision.reason, decision.message).format(
            expires=record.expires.isoformat(),
            status=record.status,
            ptype=record.ptype,
            library=record.library,
            remote=", ".join(library.remote_ptypes) if library else "",
        )
        return [*lines, f"remote login: no - {reason}"], False
    return [*lines, f"remote login: yes {CHECK_NOTE}"], True
