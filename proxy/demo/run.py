"""``python run_proxy.py demo``: the demo vendors and the proxy, on embedded defaults.

Contract: start the demo vendor app on loopback, then the proxy with ``demo_config``; print
the starting URL; stop both cleanly on Ctrl-C. Not here: the vendor app (demo/vendor.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from proxy.config_loader import settings_from
from proxy.core.settings import Settings
from proxy.demo.settings import demo_config
from proxy.demo.vendor import start_vendor
from proxy.rulebook import Rulebook
from proxy.server import serve_forever
from proxy.web.app import build_app


def run_demo(*, port: int, vendor_port: int, data_dir: Path) -> int:
    """Run until Ctrl-C; returns the exit code."""
    data_dir.mkdir(parents=True, exist_ok=True)
    raw = demo_config(port=port, vendor_port=vendor_port, data_dir=data_dir)
    settings = settings_from(raw, where="<demo defaults>", base=Path.cwd())
    asyncio.run(_run(settings, vendor_port))
    return 0


async def _run(settings: Settings, vendor_port: int) -> None:
    runner, _ = await start_vendor("127.0.0.1", vendor_port)
    try:
        book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
        app = build_app(settings, book)

        async def announce() -> None:
            print_banner(settings)

        await serve_forever(app, settings, on_ready=announce)
    finally:
        await runner.cleanup()


def print_banner(settings: Settings) -> None:
    """What a person needs to try the demo."""
    start = f"{settings.public_url}/login?url=https://www.acmejournals.test/"
    print(
        "\nclamshell demo is running (Ctrl-C stops it).\n"
        f"  Portal:          {settings.public_url}/\n"
        f"  Starting URL:    {start}\n"
        f"  Health:          {settings.public_url}/healthz\n",
        flush=True,
    )
