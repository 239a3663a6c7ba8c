"""A real ``redis-server`` on a free loopback port, with its own folder and AOF persistence.

Contract: ``RedisServer(directory).start()`` runs ``/usr/bin/redis-server`` with
``appendonly yes`` and ``appendfsync everysec`` (as docs/scaling.md recommends), no RDB
snapshots, bound to 127.0.0.1; ``kill()`` SIGKILLs it and ``start()`` again brings it back on
the same port and folder (reloading its AOF); ``dump()`` reads every key and value (SCAN and
a type-appropriate read) for the canary tests. ``require_redis()`` fails in CI and skips
elsewhere when the binary is missing.
Not here: the proxy processes (procs.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Final

import pytest
import redis

from tests.scaling.procs import free_port

REDIS_SERVER: Final = "/usr/bin/redis-server"
START_DEADLINE_S: Final = 10.0


def require_redis() -> None:
    """Fail (CI) or skip (elsewhere) when redis-server is not installed."""
    if shutil.which(REDIS_SERVER) is not None:
        return
    reason = f"{REDIS_SERVER} is missing: apt-get install redis-server"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"redis tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


class RedisServer:
    """One redis-server child process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The ``state.url`` for this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.directory), "--appendonly", "yes"]
        args += ["--appendfsync", "everysec", "--save", "", "--daemonize", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except (OSError, redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def client(self) -> redis.Redis:
        """A synchronous client for assertions."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def kill(self) -> None:
        """SIGKILL it (what a crash looks like)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Stop it for good."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def dump(self) -> dict[bytes, object]:
        """Every key and its value, read by type (SCAN + GET/HGETALL/SMEMBERS/ZRANGE/LRANGE;
        DUMP for anything else, e.g. a HyperLogLog is a string)."""
        client = self.client()
        readers = {
            b"string": client.get,
            b"hash": client.hgetall,
            b"set": client.smembers,
            b"zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            b"list": lambda k: client.lrange(k, 0, -1),
        }
        dumped: dict[bytes, object] = {}
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            reader = readers.get(kind, client.dump)  # type: ignore[call-overload]
            dumped[key] = reader(key)
        return dumped
