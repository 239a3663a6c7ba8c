"""The demo vendors over HTTPS on loopback, one certificate for every demo host.

Contract: ``start_vendor_tls(recorder, cert=..., key=...)`` serves ``build_vendor_app`` on
127.0.0.1 (any free port) with ``tlsconfig.server_context``. One certificate whose SANs name the
demo hosts (``DEMO_TLS_HOSTS``; make one with ``certs.test_ca(dir, list(DEMO_TLS_HOSTS))``)
serves them all; the client picks the host with SNI and the Host header, as with a real vendor
behind ``upstream_overrides``. The handshake requires SNI naming a demo host and aborts on anything
else (no SNI, an IP address, another name; OpenSSL raises ``unrecognized_name``, though asyncio
closes the socket before that alert is flushed, so the client sees an EOF or a reset), so a
proxy that connects to the override address without sending the vendor's name fails loudly
instead of passing by luck.
Not here: the app itself (vendor.py), plain HTTP (``vendor.start_vendor``), making certificates.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final

from aiohttp import web

from proxy.demo.pages import ACME_HOSTS, BIGDB_HOSTS, TRACKER_HOST
from proxy.demo.vendor import RequestRecorder, build_vendor_app
from proxy.tlsconfig import server_context

DEMO_TLS_HOSTS: Final = (*ACME_HOSTS, *BIGDB_HOSTS, TRACKER_HOST)


async def start_vendor_tls(
    recorder: RequestRecorder | None = None, *, cert: Path, key: Path
) -> tuple[web.AppRunner, int]:
    """Start the demo vendors with TLS on 127.0.0.1; the caller owns ``runner.cleanup()``."""
    context = server_context(cert, key)
    context.sni_callback = require_demo_sni
    runner = web.AppRunner(build_vendor_app(recorder), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


def require_demo_sni(
    connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
) -> int | None:
    """SNI callback: go on for a demo host, refuse the handshake for anything else."""
    if server_name is not None and server_name.lower() in DEMO_TLS_HOSTS:
        return None
    return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
