"""``python run_proxy.py demo``: the demo vendors and the proxy, on embedded defaults.

Contract: start the demo vendor app and the demo ILS (SIP2, for the EAST library) on
loopback, seed the demo registry with the registry libraries' demo cards,
start the proxy with ``demo_config``, print the starting URL and the cards; stop both
cleanly on Ctrl-C. Not here: the vendor app (demo/vendor.py), the cards (demo/patrons.py).
"""

from __future__ import annotations

import asyncio
import shlex
from datetime import UTC, datetime
from pathlib import Path

from proxy.certs import CA_CERT, LEAF_CHAIN, LEAF_KEY, create_dev_ca, create_leaf
from proxy.config_loader import settings_from
from proxy.core.settings import Settings
from proxy.demo.ils import start_demo_ils
from proxy.demo.patrons import DemoCard, demo_cards, seed
from proxy.demo.settings import demo_config
from proxy.demo.vendor import start_vendor
from proxy.rulebook import Rulebook
from proxy.server import serve_forever, settle_heap
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY

DEMO_HOST = "proxy.localhost"


def run_demo(
    *, port: int, vendor_port: int, data_dir: Path, tls: bool = False, admin_port: int = 8081
) -> int:
    """Run until Ctrl-C; returns the exit code."""
    extra: dict[str, object] = {"admin": {"listen": {"host": "127.0.0.1", "port": admin_port}}}
    extra |= demo_tls(data_dir / "certs", port) if tls else {}
    asyncio.run(_run(port, vendor_port, data_dir, extra))
    return 0


async def _run(port: int, vendor_port: int, data_dir: Path, extra: dict[str, object]) -> None:
    runner, _ = await start_vendor("127.0.0.1", vendor_port)
    today = datetime.now(UTC).date()
    # #16: the demo ILS (SIP2, any free loopback port) knows EAST's cards (card numbers do
    # not depend on the port, so a placeholder port computes them).
    ils, ils_port = await start_demo_ils(
        c
        for c in demo_cards(settings_of(port, vendor_port, data_dir, 1, extra), today)
        if c.library == "EAST"
    )
    try:
        settings = settings_of(port, vendor_port, data_dir, ils_port, extra)
        book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
        app = await build_app(settings, book)
        await asyncio.to_thread(seed, app[REGISTRY], settings, today)
        cards = demo_cards(settings, today)

        async def announce() -> None:
            print_banner(settings, cards)
            await settle_heap()

        await serve_forever(app, settings, on_ready=announce)
    finally:
        ils.close()
        await runner.cleanup()


def settings_of(
    port: int, vendor_port: int, data_dir: Path, ils_port: int, extra: dict[str, object]
) -> Settings:
    """The demo's validated settings (the SIP2 library pointed at ``ils_port``)."""
    raw = demo_config(port=port, vendor_port=vendor_port, data_dir=data_dir, ils_port=ils_port)
    return settings_from({**raw, **extra}, where="<demo defaults>", base=Path.cwd())


def demo_tls(directory: Path, port: int) -> dict[str, object]:
    """Dev CA and wildcard leaf for proxy.localhost (made once, reused), and the tls config."""
    now = datetime.now(UTC)
    if not (directory / CA_CERT).exists():
        ca = create_dev_ca(directory, DEMO_HOST, force=False, now=now)
        create_leaf(directory, ca, DEMO_HOST, force=False, now=now)
    print(
        f"HTTPS: trust the demo CA in your browser: {directory / CA_CERT} "
        "(see docs/https.md), or accept the warning once.",
        flush=True,
    )
    return {
        "public_url": f"https://{DEMO_HOST}:{port}",
        "tls": {"cert": str(directory / LEAF_CHAIN), "key": str(directory / LEAF_KEY)},
    }


def print_banner(settings: Settings, cards: list[DemoCard]) -> None:
    """What a person needs to try the demo."""
    start = f"{settings.public_url}/login?url=https://www.acmejournals.test/"
    rows = "\n".join(
        f"    {c.barcode}  {c.secret:<8} {c.library:<5} {backend_of(settings, c):<10}{c.note}"
        for c in cards
    )
    print(
        "\nclamshell demo is running (Ctrl-C stops it).\n"
        f"  Portal:          {settings.public_url}/\n"
        f"  Starting URL:    {start}\n"
        f"  Health:          {settings.public_url}/healthz\n"
        f"{admin_lines(settings)}"
        f"  Demo cards (card number, PIN or last name, library, back-end):\n{rows}\n",
        flush=True,
    )


def backend_of(settings: Settings, card: DemoCard) -> str:
    """Which back-end checks ``card`` (#16): ``registry`` or ``sip2``."""
    library = settings.library(card.library)
    return "+".join(library.auth.use) if library else "registry"


def admin_lines(settings: Settings) -> str:
    """#18.7: where the demo's admin console is and the command that prints its token."""
    if not settings.admin.enabled:
        return ""
    listen = settings.admin.listen
    command = f"clamshell admin-token --data-dir {shlex.quote(settings.data_dir)}"
    return f"  Admin console:   http://{listen.host}:{listen.port}/\n  Admin token:     {command}\n"
