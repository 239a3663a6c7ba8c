"""``admin-token``: print the admin console's bearer token (creating it on first use).

Contract: ``add_admin_token_parser(commands)`` adds the command; ``admin_token_command(args)``
prints the token to stdout and returns 0. The token is for the person at the terminal: it is
never logged.
Not here: where the token comes from and how it is checked (proxy/web/admin/auth.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from proxy.cli.startup import settings_of
from proxy.web.admin.auth import admin_token


def add_admin_token_parser(commands: Any) -> None:
    """Add ``admin-token``."""
    commands.add_parser("admin-token", help="print the admin console's bearer token")


def admin_token_command(args: argparse.Namespace) -> int:
    """Print the token."""
    print(admin_token(settings_of(args)))
    return 0
