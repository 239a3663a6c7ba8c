"""``serve`` and ``demo``: run the proxy, on the config file or on the demo's embedded defaults.

Contract: ``add_serve_parsers(commands)`` adds both commands; ``serve_command(args)`` runs the
proxy with ``--config`` until interrupted (SIGHUP also re-reads the reloadable keys of
``--config``: proxy/config_reload.py); ``demo_command(args)`` runs the proxy and the demo
vendors. Both return 0 on a clean stop. The server and the demo are imported only when run.
Not here: binding listeners and signals (proxy/server.py), the app (proxy/web/app.py), the demo
itself (proxy/demo/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from proxy.cli.startup import configured
from proxy.logconfig import configure_logging
from proxy.rulebook import Rulebook


def add_serve_parsers(commands: Any) -> None:
    """Add ``serve`` and ``demo`` to the main parser's commands."""
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


def serve_command(args: argparse.Namespace) -> int:
    """``serve``: run with the config file until interrupted."""
    from proxy.config_reload import reload_config
    from proxy.server import serve_forever, settle_heap
    from proxy.web.app import build_app

    settings = configured(args)
    codes = frozenset(lib.code for lib in settings.libraries)
    book = Rulebook.open(settings.rules_dir, codes, settings.proxy_host)

    async def run() -> None:
        app = await build_app(settings, book)
        await serve_forever(
            app,
            settings,
            on_ready=settle_heap,
            on_reload=lambda: reload_config(app, args.config, os.environ),
        )

    asyncio.run(run())
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """``demo``: the proxy and the demo vendors on embedded defaults (no config file)."""
    from proxy.demo.run import run_demo

    configure_logging(args.log_format or "auto")
    return run_demo(
        port=args.port, vendor_port=args.vendor_port, data_dir=Path(args.data_dir), tls=args.tls
    )
