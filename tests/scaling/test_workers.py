"""Issue #15.3: `serve --workers N` — supervised worker processes sharing the listener."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from proxy.core.settings import State
from proxy.stores.redis_sessions import RedisSessionStore
from proxy.stores.redis_state import RedisState
from proxy.workers import MULTIPROC_ENV, metrics_dir
from tests.scaling.procs import ServeProcess, write_config
from tests.scaling.redisserver import RedisServer

FRESH_CONNECTIONS = 24  # 2 workers: all on one worker by chance is 2^-23


def children(pid: int) -> set[int]:
    """The PIDs whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def get(port: int, path: str, headers: dict[str, str], method: str = "GET") -> int:
    """One request on a fresh connection; its status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": f"proxy.localhost:{port}", **headers})
        return conn.getresponse().status
    finally:
        conn.close()


def new_session(url: str) -> str:
    """A MAIN session written to Redis as a node would; returns its cookie token."""

    async def create() -> str:
        state = RedisState.connect(State(backend="redis", url=url))
        store = RedisSessionStore(state, timedelta(hours=1), timedelta(hours=2))
        token, _ = await store.create(
            library="MAIN", ptype="adult", patron_key="k" * 64, now=datetime.now(UTC)
        )
        await state.close()
        return token

    return asyncio.run(create())


def test_local_backend_refuses_two_workers(tmp_path: Path) -> None:
    """`serve --workers 2` on local state: one line naming state.backend: redis, exit 2."""
    config, _ = write_config(tmp_path, tmp_path / "data")
    proc = ServeProcess(config, "--workers", "2")
    assert proc.wait() == 2
    message = proc.stderr().strip()
    assert "state.backend: redis" in message and "\n" not in message


def test_workers_share_sessions_restart_and_drain(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two workers: a session and its logout are seen on every fresh connection; a SIGKILLed
    worker is replaced; SIGTERM stops them all cleanly."""
    extra = f"state: {{backend: redis, url: '{redis_server.url}'}}\n"
    config, port = write_config(tmp_path, tmp_path / "data", extra)
    server = ServeProcess(config, "--workers", "2")
    try:
        server.wait_healthy(port)
        workers = children(server.proc.pid)
        assert len(workers) == 2
        cookie = {"Cookie": f"clamshell_session={new_session(redis_server.url)}"}
        assert {get(port, "/menu", cookie) for _ in range(FRESH_CONNECTIONS)} == {200}
        origin = {"Origin": f"http://proxy.localhost:{port}"}
        assert get(port, "/logout", {**cookie, **origin}, method="POST") == 200
        assert {get(port, "/menu", cookie) for _ in range(FRESH_CONNECTIONS)} == {302}
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(children(server.proc.pid) - {victim}) < 2:
            time.sleep(0.2)
        replaced = children(server.proc.pid)
        assert victim not in replaced and len(replaced) == 2
        server.wait_healthy(port)
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.stderr()[-3000:]
    assert not children(server.proc.pid)
    assert "worker_died" in server.stderr()


def test_two_serve_nodes_on_their_own_data_dirs_share_sessions(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two `serve` processes (nodes) with their own data_dirs and the same secrets: a session
    is accepted by both; logout through node A is refused by node B at once."""
    extra = f"state: {{backend: redis, url: '{redis_server.url}'}}\n"
    first, second = tmp_path / "a", tmp_path / "b"
    second.mkdir(mode=0o700)
    config_a, port_a = write_config(tmp_path, first, extra)
    config_b, port_b = write_config(tmp_path, second, extra)
    node_a = ServeProcess(config_a)
    try:
        node_a.wait_healthy(port_a)
        for secret in ("pepper.key", "csrf.key"):
            shutil.copy2(first / secret, second / secret)
        node_b = ServeProcess(config_b)
        try:
            node_b.wait_healthy(port_b)
            cookie = {"Cookie": f"clamshell_session={new_session(redis_server.url)}"}
            assert get(port_a, "/menu", cookie) == 200
            assert get(port_b, "/menu", cookie) == 200
            origin = {"Origin": f"http://proxy.localhost:{port_a}"}
            assert get(port_a, "/logout", {**cookie, **origin}, method="POST") == 200
            assert get(port_b, "/menu", cookie) == 302
        finally:
            assert node_b.stop() == 0
    finally:
        assert node_a.stop() == 0


def test_workers_get_a_private_metrics_directory_removed_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/metrics (worker 0) must add up every worker: the supervisor hands the workers a fresh
    PROMETHEUS_MULTIPROC_DIR (mode 0700) and removes it at the end; an operator's own is kept."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with metrics_dir() as env:
        made = Path(env[MULTIPROC_ENV])
        assert made.is_dir() and not any(made.iterdir())
        assert made.stat().st_mode & 0o077 == 0
    assert not made.exists()
    monkeypatch.setenv(MULTIPROC_ENV, "/srv/metrics")
    with metrics_dir() as env:
        assert env[MULTIPROC_ENV] == "/srv/metrics"


def test_workers_die_with_a_killed_supervisor(tmp_path: Path, redis_server: RedisServer) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) takes its workers with it: no
    orphan keeps serving, and holding the port, without the data_dir lock."""
    extra = f"state: {{backend: redis, url: '{redis_server.url}'}}\n"
    config, port = write_config(tmp_path, tmp_path / "data", extra)
    server = ServeProcess(config, "--workers", "2")
    workers: set[int] = set()
    try:
        server.wait_healthy(port)
        workers = children(server.proc.pid)
        assert len(workers) == 2
        server.proc.kill()
        server.proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
            time.sleep(0.2)
        alive = [w for w in workers if Path(f"/proc/{w}/stat").exists()]
        zombies = [w for w in alive if ") Z " in Path(f"/proc/{w}/stat").read_text()]
        assert alive == zombies, "workers outlived their supervisor"
    finally:  # an orphan is no longer the supervisor's child: kill the ones seen at start
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)
        if server.proc.poll() is None:
            server.proc.kill()
