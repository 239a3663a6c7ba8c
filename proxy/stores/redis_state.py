"""The connection to Redis for ``state.backend: redis``, its failure mode, and the event bus.

Contract: ``RedisState.connect(state)`` builds one ``redis.asyncio`` client from the frozen
``state:`` settings (password read from ``password_file``, connect and command timeouts, a
retry with exponential backoff). Every store that talks to Redis wraps its calls in
``state_errors()``, which turns a connection or timeout error into ``StateUnavailable`` (503,
a friendly page: the request that needed state fails closed) and logs ``state_unavailable``
with the error type only — never a key, a value or a patron's data.
The bus: ``publish(kind, arg)`` sends ``kind arg node`` on one channel; ``run_bus()`` (a
background task) subscribes, and calls the handler registered for ``kind`` for every message
another node sent, reconnecting with backoff after Redis goes away. A node ignores its own
messages (it already acted on them).
Keys: every key starts with ``state.key_prefix``; ``key(*parts)`` builds them.
Not here: what is stored (redis_sessions.py), choosing the backend (web/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

from proxy.core.settings import State
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger

if TYPE_CHECKING:
    import redis.asyncio as aioredis
# ``redis`` itself is imported when a client is made: every store that can share state
# imports this module, and a proxy in local mode need not hold redis's ~7 MiB (issue 19).

log = get_logger("state")
BUS_CHANNEL: Final = "bus"
BACKOFF_CAP_S: Final = 10.0  # longest wait between reconnection attempts
BACKOFF_BASE_S: Final = 0.1
COMMAND_RETRIES: Final = 1  # one quick retry on a dropped connection, then fail closed
Handler = Callable[[str], object]


class StateUnavailable(ClamshellError):
    """Redis cannot be reached: the request that needs shared state is refused."""

    status_hint = 503
    public_message = "The library's proxy is having trouble; please try again in a minute."


@functools.cache
def outage_errors() -> tuple[type[BaseException], ...]:
    """What an outage is: the client's connection and timeout errors, and OSError."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OSError)


@contextlib.contextmanager
def state_errors(what: str) -> Iterator[None]:
    """Turn a Redis outage inside the block into ``StateUnavailable`` (logged, no data)."""
    try:
        yield
    except outage_errors() as exc:
        log.error("state_unavailable", what=what, error=type(exc).__name__)
        raise StateUnavailable(f"Redis (state.url) did not answer: {what}") from None


def read_password(path: str | None) -> str | None:
    """The Redis password from its secret file (first line), or None."""
    if path is None:
        return None
    return Path(path).read_text(encoding="utf-8").splitlines()[0].strip()


class RedisState:
    """One Redis client, the key prefix, this node's id and the bus handlers."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.node = secrets.token_hex(8)  # tells this process's bus messages from others'
        self._handlers: dict[str, Handler] = {}
        self._bus_delay = BACKOFF_BASE_S

    @classmethod
    def connect(cls, state: State) -> RedisState:
        """A client for ``state.url`` (no I/O yet: it connects on first use)."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        assert state.url is not None  # the settings validator requires it for redis
        retry = Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), COMMAND_RETRIES)
        client = aioredis.Redis.from_url(
            state.url,
            password=read_password(state.password_file),
            socket_connect_timeout=state.connect_timeout,
            socket_timeout=state.command_timeout,
            retry=retry,
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=30,
        )
        return cls(client, state.key_prefix)

    def key(self, *parts: str) -> str:
        """``prefix`` + the parts joined by ``:``."""
        return self.prefix + ":".join(parts)

    async def check(self) -> None:
        """PING; ``StateUnavailable`` when Redis does not answer (``/healthz``)."""
        with state_errors("ping"):
            await self.client.ping()

    def on(self, kind: str, handler: Handler) -> None:
        """Call ``handler(arg)`` for each ``kind`` message another node publishes."""
        self._handlers[kind] = handler

    async def publish(self, kind: str, arg: str = "-") -> None:
        """Tell every other node (``kind`` and ``arg`` hold no spaces)."""
        with state_errors("publish"):
            await self.client.publish(self.key(BUS_CHANNEL), f"{kind} {arg} {self.node}")

    async def run_bus(self) -> None:
        """Dispatch bus messages until cancelled; reconnect with backoff after an outage."""
        while True:
            try:
                await self._listen()
            except outage_errors() as exc:
                delay = self._bus_delay
                log.error("state_bus_lost", error=type(exc).__name__, retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)
                self._bus_delay = min(delay * 2, BACKOFF_CAP_S)

    async def _listen(self) -> None:
        async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.key(BUS_CHANNEL))
            self._bus_delay = BACKOFF_BASE_S
            log.info("state_bus_connected")
            async for message in pubsub.listen():
                self._dispatch(message.get("data"))

    def _dispatch(self, data: object) -> None:
        text = data.decode("ascii", "replace") if isinstance(data, bytes) else str(data)
        kind, _, rest = text.partition(" ")
        arg, _, node = rest.partition(" ")
        handler = self._handlers.get(kind)
        if handler is None or node == self.node:
            return
        try:
            handler(arg)
        except Exception as exc:  # one bad handler must not stop the bus
            log.error("state_bus_handler_failed", kind=kind, error=type(exc).__name__)

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()
