"""``demo --workers N --redis``: the demo on worker processes sharing state in Redis (#15).

Contract: ``run_scaled_demo`` starts a private ``redis-server`` (AOF everysec, loopback, its
files in ``data_dir/redis``), the demo vendor (in a thread with its own event loop), writes the
demo's settings with ``state.backend: redis`` to ``data_dir/demo-proxy.yaml``, seeds the
demo registry, prints the banner and runs the ``serve --workers N`` supervisor on that file in
this (main) thread until Ctrl-C; then stops the vendor and Redis. Needs
``/usr/bin/redis-server`` (Debian ``redis-server``); a one-line error otherwise.
Not here: the single-process demo (run.py), workers (proxy/workers.py).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from proxy.config_loader import settings_from
from proxy.demo.patrons import demo_cards, seed
from proxy.demo.run import print_banner
from proxy.demo.settings import demo_config
from proxy.demo.vendor import start_vendor
from proxy.errors import ClamshellError
from proxy.secretfiles import ensure_private_dir
from proxy.stores.patrons import PatronRegistry
from proxy.workers import supervise

REDIS_SERVER: Final = "/usr/bin/redis-server"
RUN_PROXY: Final = Path(__file__).resolve().parents[2] / "run_proxy.py"


class NoRedisServer(ClamshellError):
    """redis-server is not installed."""

    def __init__(self) -> None:
        super().__init__(f"{REDIS_SERVER} not found: apt-get install redis-server")


def run_scaled_demo(
    *, port: int, vendor_port: int, data_dir: Path, workers: int, admin_port: int = 8081
) -> int:
    """Run until Ctrl-C; returns the exit code."""
    if shutil.which(REDIS_SERVER) is None:
        raise NoRedisServer()
    ensure_private_dir(data_dir)
    redis_port, redis = start_redis(data_dir / "redis")
    stop_vendor = start_vendor_thread(vendor_port)
    try:
        raw = demo_config(
            port=port, vendor_port=vendor_port, data_dir=data_dir, admin_port=admin_port
        )
        raw["state"] = {"backend": "redis", "url": f"redis://127.0.0.1:{redis_port}/0"}
        config = data_dir / "demo-proxy.yaml"
        config.write_text(yaml.safe_dump(plain(raw)), encoding="utf-8")
        settings = settings_from(raw, where=str(config), base=Path.cwd())
        today = datetime.now(UTC).date()
        with PatronRegistry.open(Path(settings.data_dir)) as registry:
            seed(registry, settings, today)
        print_banner(settings, demo_cards(settings, today))
        shared = f"  Workers:         {workers}, sharing Redis on 127.0.0.1:{redis_port}\n"
        print(shared, flush=True)
        return supervise([str(RUN_PROXY), "--config", str(config), "serve"], workers)
    finally:
        stop_vendor()
        redis.terminate()
        redis.wait(timeout=10)


def plain(value: Any) -> Any:
    """The demo's settings as YAML-safe values (paths and addresses as text)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def start_redis(directory: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """A private redis-server on a free loopback port; (port, process) once it accepts."""
    directory.mkdir(mode=0o700, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return port, proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise NoRedisServer()


def start_vendor_thread(vendor_port: int) -> Any:
    """The demo vendor on its own loop in a daemon thread; returns a function that stops it."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner, _ = loop.run_until_complete(start_vendor("127.0.0.1", vendor_port))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, name="demo-vendor", daemon=True)
    thread.start()
    if not ready.wait(timeout=30):
        print("demo: the demo vendor did not start", file=sys.stderr)

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    return stop
