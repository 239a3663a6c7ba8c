"""``serve`` and ``demo``: run the proxy, on the config file or on the demo's embedded defaults.

Contract: ``add_serve_parsers(commands)`` adds both commands; ``serve_command(args)`` runs the
proxy with ``--config`` until interrupted — in this process, or as ``--workers N`` supervised
worker processes (proxy/workers.py) — holding the data_dir lock (a second server on the same
data_dir exits 2 naming the PID that holds it); SIGHUP also re-reads the reloadable keys of
``--config`` (proxy/config_reload.py); ``demo_command(args)`` runs the proxy and the demo
vendors. Both return 0 on a clean stop. The server and the demo are imported only when run.
Not here: binding listeners and signals (proxy/server.py), the app (proxy/web/app.py), the demo
itself (proxy/demo/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from proxy.cli.startup import configured
from proxy.core.settings import Settings
from proxy.errors import ClamshellError
from proxy.logconfig import configure_logging
from proxy.rulebook import Rulebook
from proxy.stores.datalock import DataDirLocked, hold_data_dir


def add_serve_parsers(commands: Any) -> None:
    """Add ``serve`` and ``demo`` to the main parser's commands."""
    serve = commands.add_parser("serve", help="run the proxy with the config file")
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="worker processes sharing the listener (default: workers in proxy.yaml, 1); "
        "more than 1 needs state.backend: redis",
    )
    serve.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # internal
    serve.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)
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
    demo.add_argument(
        "--admin-port", type=int, default=8081, help="admin console port on loopback (8081)"
    )
    demo.add_argument("--tls", action="store_true", help="serve HTTPS with a generated dev CA")
    demo.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes (more than 1: --redis)"
    )
    demo.add_argument(
        "--redis",
        action="store_true",
        help="share state in a private redis-server (needs /usr/bin/redis-server)",
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def serve_command(args: argparse.Namespace) -> int:
    """``serve``: run with the config file until interrupted (``--workers``: supervised)."""
    from proxy.workers import (
        WorkersNeedRedis,
        check_workers,
        die_with_supervisor,
        supervise,
        worker_count,
    )

    settings = configured(args)
    config = Path(args.config)
    if args.worker is not None:  # a supervisor's worker: the supervisor holds the lock
        if args.supervisor_pid is not None:
            die_with_supervisor(args.supervisor_pid)
        return serve_one(settings, config, worker=args.worker)
    count = worker_count(settings.workers, args.workers)
    try:
        check_workers(count, settings)
        with hold_data_dir(Path(settings.data_dir)):
            return supervise(sys.argv, count) if count > 1 else serve_one(settings, config)
    except (DataDirLocked, WorkersNeedRedis) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2


def serve_one(settings: Settings, config: Path, *, worker: int | None = None) -> int:
    """Serve in this process until SIGINT/SIGTERM (SIGHUP also re-reads ``config``)."""
    from proxy.config_reload import reload_config
    from proxy.server import serve_forever, settle_heap
    from proxy.web.app import build_app

    codes = frozenset(lib.code for lib in settings.libraries)
    book = Rulebook.open(settings.rules_dir, codes, settings.proxy_host)

    async def run() -> None:
        app = await build_app(settings, book)
        await serve_forever(
            app,
            settings,
            on_ready=settle_heap,
            worker=worker,
            on_reload=lambda: reload_config(app, config, os.environ),
        )

    asyncio.run(run())
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """``demo``: the proxy and the demo vendors on embedded defaults (no config file)."""
    from proxy.demo.run import run_demo

    configure_logging(args.log_format or "auto")
    data_dir = Path(args.data_dir)
    if args.workers > 1 and not args.redis:
        print("demo: --workers needs --redis (state.backend: redis)", file=sys.stderr)
        return 2
    try:
        with hold_data_dir(data_dir):
            if args.redis:
                return scaled_demo(args, data_dir)
            return run_demo(
                port=args.port,
                vendor_port=args.vendor_port,
                data_dir=data_dir,
                tls=args.tls,
                admin_port=args.admin_port,
            )
    except (DataDirLocked, ClamshellError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2


def scaled_demo(args: argparse.Namespace, data_dir: Path) -> int:
    """#15: ``demo --redis [--workers N]`` — the demo on workers sharing a private Redis."""
    from proxy.demo.scaled import run_scaled_demo

    return run_scaled_demo(
        port=args.port,
        vendor_port=args.vendor_port,
        data_dir=data_dir,
        workers=args.workers,
        admin_port=args.admin_port,
    )
