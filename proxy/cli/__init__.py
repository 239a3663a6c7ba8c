"""The command line: ``python run_proxy.py [--config proxy.yaml] COMMAND`` (console script
``clamshell``).

Contract: ``main(argv)`` parses the arguments, runs one command through ``COMMANDS`` and
returns an exit code: 0 success, 1 the command found problems (e.g. invalid rules), 2 usage
errors (argparse) and operator mistakes the system reports (``OSError``: a port in use, a
missing folder or file, an unwritable directory) as one ``error: …`` line, 130 on Ctrl-C, and a
quiet 141 (128 + SIGPIPE, what a shell reports for ``yes | head``) when the reader of stdout
goes away. ``--version`` prints the version. Errors in config or rules are printed as
``file:line: key: message`` lines, never as a traceback. Each command group is a module of
this package with an ``add_*_parser(commands)`` and a ``*_command(args)`` handler that loads
the config at the edge (startup.py): serve.py (``serve``, ``demo``), rules.py, patrons.py
(with block.py), stats.py, purge.py, certs.py, review.py, admin_token.py.
Not here: what the commands do (the modules they call).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from proxy import __version__
from proxy.cli.admin_token import add_admin_token_parser, admin_token_command
from proxy.cli.backup import add_backup_parsers, backup_command, restore_command
from proxy.cli.certs import add_certs_parser, certs_command
from proxy.cli.pages import add_pages_parser, pages_command
from proxy.cli.patrons import add_patrons_parser, patrons_command
from proxy.cli.purge import add_purge_parser, purge_command
from proxy.cli.review import add_review_parser, review_command
from proxy.cli.rules import add_rules_parser, rules_command
from proxy.cli.serve import add_serve_parsers, demo_command, serve_command
from proxy.cli.staff import add_staff_parsers, api_key_command, staff_command
from proxy.cli.stats import add_stats_parser, stats_command
from proxy.errors import ConfigError

Handler = Callable[[argparse.Namespace], int]

# Each group adds its commands to the main parser, in the order ``--help`` lists them
PARSERS: Final[tuple[Callable[[Any], None], ...]] = (
    add_serve_parsers,
    add_rules_parser,
    add_pages_parser,
    add_patrons_parser,
    add_stats_parser,
    add_purge_parser,
    add_certs_parser,
    add_review_parser,
    add_admin_token_parser,
    add_staff_parsers,
    add_backup_parsers,
)

# Top-level command -> handler (argparse requires a command, so the lookup cannot miss)
COMMANDS: Final[dict[str, Handler]] = {
    "serve": serve_command,
    "demo": demo_command,
    "rules": rules_command,
    "pages": pages_command,
    "patrons": patrons_command,
    "stats": stats_command,
    "purge": purge_command,
    "certs": certs_command,
    "review": review_command,
    "admin-token": admin_token_command,
    "staff": staff_command,
    "api-key": api_key_command,
    "backup": backup_command,
    "restore": restore_command,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="clamshell",
        description="clamshell: a privacy-first authenticating reverse proxy for libraries.",
    )
    parser.add_argument("--version", action="version", version=f"clamshell {__version__}")
    parser.add_argument("--config", default="proxy.yaml", help="main config (default ./proxy.yaml)")
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=None,
        help="log output: JSON lines or readable console (default: config)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in PARSERS:
        add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Python's documented recipe (library/signal.html#note-on-sigpipe): point stdout at
        # devnull so the interpreter's final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except OSError as exc:
        print(f"error: {os_message(exc)}", file=sys.stderr)
        return 2


BROKEN_PIPE: Final = 141  # 128 + SIGPIPE


def os_message(exc: OSError) -> str:
    """One line: ``PATH: reason`` for file errors, else the system's message without its
    ``[Errno N]`` prefix (a bind failure names the address itself)."""
    if exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = " ".join(str(exc).split())
    return text.split("] ", 1)[1] if text.startswith("[Errno") and "] " in text else text
