"""The command line: ``python run_proxy.py [--config proxy.yaml] COMMAND``.

Contract: parse arguments, load config at the edge, run one command, return an exit code:
0 success, 1 the command found problems (e.g. invalid rules), 2 usage errors (argparse).
Errors in config or rules are printed as ``file:line: key: message`` lines, never as a
traceback. Not here: what the commands do (their own modules).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from proxy.certs import add_certs_parser, run_certs
from proxy.config_loader import load_settings
from proxy.errors import ConfigError
from proxy.ezproxy.importer import add_import_parser, run_import
from proxy.logconfig import configure_logging
from proxy.patrons_cli import add_patrons_parser, run_patrons
from proxy.reports_cli import add_reports_parsers, run_purge, run_stats_export
from proxy.review.cli import add_review_parser, run_review
from proxy.rulebook import Rulebook
from proxy.rules_loader import load_rules
from proxy.web.admin.auth import admin_token


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="run_proxy.py",
        description="clamshell: a privacy-first authenticating reverse proxy for libraries.",
    )
    parser.add_argument("--config", default="proxy.yaml", help="main config (default ./proxy.yaml)")
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=None,
        help="log output: JSON lines or readable console (default: config)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the proxy with the config file")
    demo = commands.add_parser(
        "demo", help="run the proxy and the demo vendors on embedded defaults"
    )
    demo.add_argument("--port", type=int, default=8080, help="proxy port (default 8080)")
    demo.add_argument(
        "--vendor-port", type=int, default=9001, help="demo vendor port (default 9001)"
    )
    demo.add_argument(
        "--data-dir", default="./demo-data", help="where the demo keeps its SQLite files"
    )
    demo.add_argument("--tls", action="store_true", help="serve HTTPS with a generated dev CA")
    rules = commands.add_parser("rules", help="check or import vendor rules")
    rules_cmds = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_cmds.add_parser("check", help="validate every rule file and report every problem")
    check.add_argument("directory", nargs="?", default=None, help="rules dir (default: config)")
    add_import_parser(rules_cmds)
    add_patrons_parser(commands)
    add_reports_parsers(commands)
    add_certs_parser(commands)
    add_review_parser(commands)
    commands.add_parser("admin-token", help="print the admin console's bearer token")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command."""
    if args.command == "rules" and args.rules_command == "check":
        return rules_check(args)
    if args.command == "rules" and args.rules_command == "import-ezproxy":
        return run_import(args)
    if args.command == "demo":
        from proxy.demo.run import run_demo

        configure_logging(args.log_format or "auto")
        return run_demo(
            port=args.port, vendor_port=args.vendor_port, data_dir=Path(args.data_dir), tls=args.tls
        )
    if args.command == "serve":
        return serve(args)
    if args.command == "review":
        settings = load_settings(args.config)
        configure_logging(args.log_format or settings.log_format)
        return run_review(args, settings)
    if args.command == "admin-token":
        print(admin_token(load_settings(args.config)))
        return 0
    if args.command == "certs":
        return run_certs(args, load_settings(args.config))
    if args.command in ("patrons", "stats", "purge"):
        settings = load_settings(args.config)
        configure_logging(args.log_format or settings.log_format)
        if args.command == "patrons":
            return run_patrons(args, settings)
        if args.command == "stats":
            return run_stats_export(args, settings)
        return run_purge(settings)
    raise AssertionError(f"unhandled command {args.command}")


def rules_check(args: argparse.Namespace) -> int:
    """``rules check [DIR]``: every problem in every file; exit 1 if any."""
    proxy_host: str | None = None
    if args.directory is not None and not Path(args.config).exists():
        codes: frozenset[str] | None = None  # no config: library codes cannot be checked
        directory = Path(args.directory)
    else:
        settings = load_settings(args.config)
        codes = frozenset(lib.code for lib in settings.libraries)
        directory = Path(args.directory or settings.rules_dir)
        proxy_host = settings.proxy_host
    if codes is None:
        print(f"note: {args.config} not found; library codes are not checked", file=sys.stderr)
    loaded = load_rules(directory, codes, proxy_host=proxy_host)
    print(f"{directory}: {len(loaded.rules)} rules OK")
    return 0


def serve(args: argparse.Namespace) -> int:
    """``serve``: run with the config file until interrupted."""
    from proxy.server import serve_forever, settle_heap
    from proxy.web.app import build_app

    settings = load_settings(args.config)
    configure_logging(args.log_format or settings.log_format)
    codes = frozenset(lib.code for lib in settings.libraries)
    book = Rulebook.open(settings.rules_dir, codes, settings.proxy_host)

    async def run() -> None:
        await serve_forever(await build_app(settings, book), settings, on_ready=settle_heap)

    asyncio.run(run())
    return 0
