"""Run the patron-facing server until interrupted: listeners, signals, clean shutdown.

Contract: ``serve_forever(app, settings)`` binds the listener, installs SIGINT/SIGTERM (stop)
and SIGHUP (reload rules) handlers, tells systemd it is ready once every listener is bound
(``READY=1`` over ``$NOTIFY_SOCKET``, proxy/sdnotify.py), and returns after a clean shutdown.
It refuses to run on aiohttp's pure-Python HTTP parser, which differs from the C parser on
edge cases (CONVENTIONS "Traps").
Not here: building the app (web/app.py), CLI parsing (proxy/cli/).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from aiohttp import hdrs, http_parser, web

from proxy.accesslog import PrivacyAccessLogger, access_logger
from proxy.connlimit import ConnectionCounter, GatedSite
from proxy.core import accelerated
from proxy.core.settings import ServerLimits, Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.sdnotify import READY, STOPPING, notify
from proxy.stores.backends import broadcast_reload
from proxy.tlsconfig import reload_cert_chain, server_context
from proxy.web.admin.app import start_admin
from proxy.web.app import TASKS
from proxy.web.edge_headers import SERVER_NAME, hide_server_version
from proxy.web.errors import BadRequestShape, checked_host
from proxy.web.keys import PAGES, RULEBOOK, STATE

log = get_logger("server")
# CPython's defaults are (700, 10, 10); a relayed request allocates a few hundred objects.
GC_THRESHOLDS: Final = (20_000, 50, 100)


class PurePythonParser(ClamshellError):
    """aiohttp runs without its C extensions."""


def require_c_parser() -> None:
    """Refuse AIOHTTP_NO_EXTENSIONS: the two parsers disagree on malformed requests."""
    if http_parser.HttpRequestParser is not getattr(http_parser, "HttpRequestParserC", None):
        raise PurePythonParser("aiohttp's C HTTP parser is not in use (AIOHTTP_NO_EXTENSIONS?)")


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    client_idle: float = 15.0,
    counter: ConnectionCounter | None = None,
    reuse_port: bool = False,
) -> web.AppRunner:
    """Start one listener; the caller cleans the runner up.

    ``client_idle`` bounds slow-header and idle keep-alive connections (CONVENTIONS "Traps":
    under AppRunner the keep-alive timer is the only guard, and it defaults to about an hour)
    and TLS handshakes. ``counter`` caps connections per address and in all at accept time
    (default: the caps of ``server:``'s defaults). ``reuse_port``: several worker processes
    bind the same port and the kernel spreads connections over them (#15, proxy/workers.py).
    """
    hide_server_version()
    logging_options: dict[str, Any] = {"access_log": None}
    if access_log:
        logging_options = {"access_log": access_logger(), "access_log_class": PrivacyAccessLogger}
    runner = web.AppRunner(
        app, handle_signals=False, keepalive_timeout=client_idle, **logging_options
    )
    await runner.setup()
    gate = counter or ConnectionCounter.from_settings(ServerLimits())
    await GatedSite(
        runner,
        host,
        port,
        backlog=1024,
        ssl_context=ssl_context,
        counter=gate,
        handshake_timeout=client_idle,
        reuse_port=reuse_port,
    ).start()
    return runner


def redirect_app(settings: Settings) -> web.Application:
    """The plain-HTTP listener of an HTTPS deployment: it only redirects to https, and only
    for the proxy host and its subdomains (any other Host is 400: never an open redirect)."""

    async def to_https(request: web.Request) -> web.StreamResponse:
        try:
            host = checked_host(request).split(":", 1)[0]
        except BadRequestShape as exc:
            return web.Response(status=exc.status_hint, text=exc.public_message)
        if not is_proxy_name(host, settings.proxy_host):
            return web.Response(status=400, text=BadRequestShape.public_message)
        port = settings.proxy_port
        authority = host if port is None else f"{host}:{port}"
        return web.Response(
            status=301, headers={"Location": f"https://{authority}{request.raw_path}"}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", to_https)
    app.on_response_prepare.append(name_server)
    return app


def is_proxy_name(host: str, proxy_host: str) -> bool:
    """``host`` is the proxy host or one of its subdomains (both already lowercase)."""
    return host == proxy_host or host.endswith("." + proxy_host)


async def name_server(_request: web.Request, response: web.StreamResponse) -> None:
    """``Server: clamshell`` on the redirect listener's answers too."""
    response.headers[hdrs.SERVER] = SERVER_NAME


async def serve_forever(
    app: web.Application,
    settings: Settings,
    *,
    on_ready: Callable[[], Awaitable[None]] | None = None,
    worker: int | None = None,
    on_reload: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; reload rules (and the certificate, and ``on_reload``:
    proxy.yaml's reloadable keys) on SIGHUP.

    ``worker``: this process is worker number ``worker`` of a supervisor (proxy/workers.py):
    its listeners share their ports with the other workers (``reuse_port``), and only worker 0
    runs the admin listener (console sign-ins live in that process's memory).
    """
    require_c_parser()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    context = tls_context(settings)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: reload(app, settings, context, on_reload))
    counter = ConnectionCounter.from_settings(settings.server, settings.trusted_proxies)
    runners = [
        await start_site(
            app,
            settings.listen.host,
            settings.listen.port,
            access_log=settings.access_log,
            ssl_context=context,
            client_idle=settings.timeouts.client_idle,
            counter=counter,
            reuse_port=worker is not None,
        )
    ]
    if settings.tls is not None and settings.tls.http_redirect_port:
        runners.append(
            await start_site(
                redirect_app(settings),
                settings.listen.host,
                settings.tls.http_redirect_port,
                client_idle=settings.timeouts.client_idle,
                counter=counter,
                reuse_port=worker is not None,
            )
        )
    admin = await start_admin(app) if not worker else None
    log.info(
        "server_started",
        host=settings.listen.host,
        port=settings.listen.port,
        tls=context is not None,
        worker=worker,
        # Which rewriter loop runs: the compiled one is several times faster (#19); without
        # a C compiler at install time the package runs the same loop in Python.
        rewriter_compiled=accelerated.compiled is not None,
    )
    try:
        if on_ready is not None:
            await on_ready()
        # systemd Type=notify: ready once every listener is bound (the rules were loaded
        # before the app was built).
        notify(f"{READY}\nSTATUS=serving on {settings.listen.host}:{settings.listen.port}")
        await stop.wait()
    finally:
        notify(STOPPING)
        log.info("server_stopping")
        if admin is not None:
            await admin.cleanup()  # before the main app closes the stores it reads
        for runner in runners:
            await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def settle_heap() -> None:
    """In a server process, once serving starts (``serve_forever(on_ready=settle_heap)``):
    hide everything built so far from the garbage collector, and collect the young
    generation less often.

    The start-up heap (rules, the public suffix list, pydantic models, aiohttp's tables) never
    becomes garbage, yet every full collection walked it: measured in bench/relay.py, p99 at
    64 connections fell from 1.7× to 1.05× the minimal relay's with ``gc.freeze()`` alone.
    A larger first threshold trades a few hundred kB of young objects for fewer collections.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context when proxy.yaml has ``tls``."""
    if settings.tls is None:
        return None
    return server_context(Path(settings.tls.cert), Path(settings.tls.key))


def reload(
    app: web.Application,
    settings: Settings,
    context: ssl.SSLContext | None,
    on_reload: Callable[[], Awaitable[object]] | None = None,
) -> asyncio.Task[None]:
    """SIGHUP: start ``reload_now`` as a task and return at once (the loop keeps serving)."""
    return app[TASKS].spawn(reload_now(app, settings, context, on_reload), name="sighup_reload")


async def reload_now(
    app: web.Application,
    settings: Settings,
    context: ssl.SSLContext | None,
    on_reload: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Reload proxy.yaml's reloadable keys, the vendor rules (in a thread), the patron pages
    and the certificate; each keeps the old on failure. The rules go through
    ``Rulebook.reload_async``, the admin API's reload too (R12: a reload on the loop stalled
    every request while many files were parsed)."""
    if on_reload is not None:
        await on_reload()  # proxy.yaml first: the rules may name a library it adds
    await app[RULEBOOK].reload_async()
    await broadcast_reload(app[STATE])  # #15: every other node and worker reloads too
    await asyncio.to_thread(app[PAGES].reload)  # #21: templates and brand; old kept on error
    if context is not None and settings.tls is not None:
        try:
            # On the loop: two small files, and the context is in use by handshakes here.
            reload_cert_chain(context, Path(settings.tls.cert), Path(settings.tls.key))
            log.info("tls_reloaded")
        except ClamshellError as exc:
            log.error("tls_reload_failed", error=type(exc).__name__)
