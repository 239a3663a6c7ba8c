"""Run the patron-facing server until interrupted: listeners, signals, clean shutdown.

Contract: ``serve_forever(app, settings)`` binds the listener, installs SIGINT/SIGTERM (stop)
and SIGHUP (reload rules) handlers, and returns after a clean shutdown. It refuses to run on
aiohttp's pure-Python HTTP parser, which differs from the C parser on edge cases
(CONVENTIONS "Traps").
Not here: building the app (web/app.py), CLI parsing (cli.py).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from aiohttp import http_parser, web

from proxy.accesslog import PrivacyAccessLogger, access_logger
from proxy.core.settings import Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.web.keys import RULEBOOK

log = get_logger("server")


class PurePythonParser(ClamshellError):
    """aiohttp runs without its C extensions."""


def require_c_parser() -> None:
    """Refuse AIOHTTP_NO_EXTENSIONS: the two parsers disagree on malformed requests."""
    if http_parser.HttpRequestParser is not getattr(http_parser, "HttpRequestParserC", None):
        raise PurePythonParser("aiohttp's C HTTP parser is not in use (AIOHTTP_NO_EXTENSIONS?)")


async def start_site(
    app: web.Application, host: str, port: int, *, access_log: bool = False
) -> web.AppRunner:
    """Start one listener; the caller cleans the runner up."""
    if access_log:
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=access_logger(),
            access_log_class=PrivacyAccessLogger,
        )
    else:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    return runner


async def serve_forever(
    app: web.Application,
    settings: Settings,
    *,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; reload rules on SIGHUP."""
    require_c_parser()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: app[RULEBOOK].reload())
    runner = await start_site(
        app, settings.listen.host, settings.listen.port, access_log=settings.access_log
    )
    log.info("server_started", host=settings.listen.host, port=settings.listen.port)
    try:
        if on_ready is not None:
            await on_ready()
        await stop.wait()
    finally:
        log.info("server_stopping")
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
