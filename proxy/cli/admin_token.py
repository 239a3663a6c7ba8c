"""``admin-token``: print the admin console's bearer token (creating it on first use).

Contract: ``add_admin_token_parser(commands)`` adds the command; ``admin_token_command(args)``
prints the token to stdout and returns 0. The token is for the person at the terminal: it is
never logged. It is the token of ``--config``'s ``data_dir`` (``CLAMSHELL_DATA_DIR`` overrides
it), or of ``--data-dir DIR`` when given, without any config file (the demo's data dir, #18.7).
Not here: where the token comes from and how it is checked (proxy/web/admin/auth.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from proxy.cli.startup import settings_of
from proxy.config_loader import settings_from
from proxy.core.settings import Settings
from proxy.web.admin.auth import admin_token


def add_admin_token_parser(commands: Any) -> None:
    """Add ``admin-token``."""
    parser = commands.add_parser("admin-token", help="print the admin console's bearer token")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="the data dir whose token to print, instead of the config's (e.g. the demo's)",
    )


def admin_token_command(args: argparse.Namespace) -> int:
    """Print the token."""
    print(admin_token(token_settings(args)))
    return 0


def token_settings(args: argparse.Namespace) -> Settings:
    """The config's settings, or only ``--data-dir`` when given (no config file needed)."""
    if args.data_dir is None:
        return settings_of(args)
    return settings_from({"data_dir": args.data_dir}, where="--data-dir", base=Path.cwd())
