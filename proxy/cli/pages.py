"""``pages check [DIR]``: validate a patron pages folder (templates and brand.yaml) (#21).

Contract: ``add_pages_parser(commands)`` adds ``pages check``; ``pages_command(args)`` loads
the folder (``DIR``, else ``pages.dir`` from the config, else the shipped defaults) exactly as
the proxy does at start and on reload, prints ``DIR: N templates OK`` and returns 0, or lets
the ``ConfigError`` through for ``proxy.cli.main`` to print as ``file:line: problem`` (exit 1).
Not here: loading and validating (web/pages.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from proxy.cli.startup import settings_of
from proxy.web.pages import load_pages, template_names


def add_pages_parser(commands: Any) -> None:
    """Add ``pages check``."""
    pages = commands.add_parser("pages", help="check the patron pages folder")
    sub = pages.add_subparsers(dest="pages_command", required=True, metavar="SUBCOMMAND")
    check = sub.add_parser("check", help="compile every template and validate brand.yaml")
    check.add_argument("directory", nargs="?", default=None, help="pages dir (default: config)")


def pages_command(args: argparse.Namespace) -> int:
    """``pages check [DIR]``: every template compiled, brand.yaml valid; exit 1 if not."""
    if args.directory is not None:
        folder: str | None = args.directory
    else:
        folder = settings_of(args).pages.dir
    loaded = load_pages(folder)
    names = template_names(loaded.directory)
    print(f"{folder or 'shipped pages'}: {len(names)} templates OK, brand.yaml OK")
    return 0
