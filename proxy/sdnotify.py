"""systemd's readiness protocol (sd_notify): one datagram to ``$NOTIFY_SOCKET``.

Contract: ``notify(state, environ)`` sends ``state`` (e.g. ``"READY=1\\nSTATUS=serving"``) as one
datagram to the AF_UNIX socket named by ``NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace) and returns True; without ``NOTIFY_SOCKET`` it does nothing and returns
False; a send that fails is logged (``sd_notify_failed``), never raised: readiness reporting
must not stop the proxy. Hand-written because the protocol is a single ``sendto`` (see
sd_notify(3), "NOTES") and the python-systemd binding needs libsystemd headers to build.
Not here: when to call it (proxy/server.py: after the listeners are bound, the rules loaded).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Final

from proxy.logconfig import get_logger

log = get_logger("server")

ENV: Final = "NOTIFY_SOCKET"
READY: Final = "READY=1"
STOPPING: Final = "STOPPING=1"
RELOADING: Final = "RELOADING=1"


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` to systemd when it asked for notifications; True when sent."""
    target = environ.get(ENV, "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target  # sd_notify(3)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.warning("sd_notify_failed", error=type(exc).__name__)
        return False
    return True
