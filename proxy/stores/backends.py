"""Choosing the state backend (``state.backend``) once, at start-up.

Contract: ``open_state(settings)`` returns the shared ``RedisState`` for ``redis`` and None for
``local``; ``open_session_store(settings, state)`` opens the matching ``SessionStore`` — the
SQLite file in ``data_dir`` (local) or Redis — and ``open_login_throttle`` the login throttle
(the process's in-memory ``Throttle``, or counters in Redis). ``RELOAD`` is the bus message and
``broadcast_reload(state)`` sends it: a rules reload asked on one node reaches every other.
Not here: the stores themselves (sessions.py, redis_sessions.py), wiring them into the app
(web/app.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Final

from proxy.core.settings import Settings
from proxy.core.throttle import Throttle
from proxy.logconfig import get_logger
from proxy.stores.redis_sessions import RedisSessionStore
from proxy.stores.redis_state import RedisState, StateUnavailable
from proxy.stores.sessions import DB_FILE, SessionStore, SqliteSessionStore
from proxy.stores.throttles import LocalLoginThrottle, LoginThrottle, RedisLoginThrottle

RELOAD: Final = "rules_reload"  # the bus message kind
log = get_logger("state")


def open_state(settings: Settings) -> RedisState | None:
    """The Redis connection for ``backend: redis`` (connects lazily), or None for local."""
    return RedisState.connect(settings.state) if settings.state.backend == "redis" else None


async def open_session_store(settings: Settings, state: RedisState | None) -> SessionStore:
    """The session store of the configured backend."""
    idle = timedelta(minutes=settings.sessions.idle_minutes)
    lifetime = timedelta(hours=settings.sessions.lifetime_hours)
    if state is not None:
        return RedisSessionStore(state, idle, lifetime)
    return await SqliteSessionStore.open(Path(settings.data_dir) / DB_FILE, idle, lifetime)


def open_login_throttle(
    settings: Settings, state: RedisState | None, local: Throttle
) -> LoginThrottle:
    """The login throttle of the configured backend (``local`` also keeps the console's
    alarm count)."""
    if state is None:
        return LocalLoginThrottle(local)
    return RedisLoginThrottle(state, local.limits, local)


async def broadcast_reload(state: RedisState | None) -> None:
    """After a rules reload asked on this node (SIGHUP, the admin console): with Redis, every
    other node and worker reloads too (from its own rules_dir: deploy the files first)."""
    if state is None:
        return
    try:
        await state.publish(RELOAD)
    except StateUnavailable:
        log.error("reload_broadcast_failed")
