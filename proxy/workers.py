"""Worker processes on one host (#15): ``serve --workers N`` and ``workers:`` in proxy.yaml.

Contract: ``worker_count(setting, override)`` resolves ``auto`` (one per core) and the CLI's
override, and ``check_workers(count, settings)`` refuses N > 1 with ``backend: local`` (each
process would hold its own sessions and throttles: a patron logged in on one worker would be
sent back to the login page by the next) with a one-line error naming ``state.backend:
redis``. ``supervise(argv, count)`` runs N copies of ``run_proxy.py ... serve --worker I``
(each its own process and event loop; their listeners share the port with ``SO_REUSEPORT``,
so the kernel spreads connections over them) and returns the exit code when they are done:
- a worker that exits while the supervisor is not stopping is logged (``worker_died``, its
  exit code) and started again, after a pause that grows while workers keep dying quickly;
- SIGTERM or SIGINT is passed on to every worker, each drains (finishes its requests, closes
  its stores) and the supervisor waits for them all, killing none that stop within
  ``DRAIN_S``;
- SIGHUP is passed on to every worker: each reloads its rules and certificate;
- ``/metrics`` (served by worker 0's admin listener) must count every worker: unless the
  operator set ``PROMETHEUS_MULTIPROC_DIR``, the supervisor makes a fresh private directory,
  passes it to the workers (prometheus-client's multiprocess mode) and removes it at the end;
  a dead worker's live gauges are marked dead there.
Why separate processes (spawned, not forked): a fork copies a running event loop, threads and
open SQLite connections; a fresh interpreter per worker shares nothing by accident.
The supervisor holds the data_dir lock (workers run under it and do not take it again).
``die_with_supervisor(ppid)``, called by each worker first: a supervisor that is killed
outright (SIGKILL, OOM) takes its workers with it (Linux ``PR_SET_PDEATHSIG``), so no orphan
keeps serving — and holding ports — without the lock.
Not here: serving (server.py), what the workers share (stores/redis_*.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, Literal

from proxy.core.settings import Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger

log = get_logger("workers")
DRAIN_S: Final = 30.0  # a worker still running this long after SIGTERM is killed
POLL_S: Final = 0.2
RESTART_PAUSE_S: Final = (0.5, 30.0)  # first and longest pause before restarting a worker
QUICK_DEATH_S: Final = 10.0  # a worker that dies younger than this doubles the pause
INTERRUPTED: Final = 130  # the CLI's exit code after KeyboardInterrupt
FORWARDED: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode


PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


def die_with_supervisor(supervisor_pid: int) -> None:
    """Ask the kernel to send this worker SIGTERM when its parent dies; if the parent is
    already gone (it died before this call), stop now. The standard library has no prctl, and
    this one call is all that is needed, so ctypes rather than a dependency."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != supervisor_pid:
        raise SystemExit(0)


class WorkersNeedRedis(ClamshellError):
    """More than one worker on local state."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"workers: {count} needs state.backend: redis (with state.backend: local every "
            "process would keep its own sessions); set state.backend: redis or use 1 worker"
        )


def worker_count(setting: int | Literal["auto"], override: int | None) -> int:
    """How many workers: the CLI's ``--workers``, else proxy.yaml's (``auto`` = cores)."""
    chosen = override if override is not None else setting
    return (os.cpu_count() or 1) if chosen == "auto" else int(chosen)


def check_workers(count: int, settings: Settings) -> None:
    """Refuse several workers on local state."""
    if count > 1 and settings.state.backend == "local":
        raise WorkersNeedRedis(count)


class Supervisor:
    """N worker processes, restarted when they die, signalled together."""

    def __init__(self, argv: Sequence[str], count: int, env: dict[str, str] | None = None) -> None:
        self.argv, self.count, self.env = list(argv), count, env
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.pause = RESTART_PAUSE_S[0]
        self.stopping: int | None = None  # the signal that asked us to stop

    def spawn(self, index: int) -> None:
        """Start worker ``index``."""
        command = [sys.executable, *self.argv, "--worker", str(index)]
        command += ["--supervisor-pid", str(os.getpid())]
        self.procs[index] = subprocess.Popen(command, env=self.env)
        self.started[index] = time.monotonic()
        log.info("worker_started", worker=index, pid=self.procs[index].pid)

    def forward(self, signum: int, _frame: object = None) -> None:
        """Pass a signal on to every worker; SIGTERM/SIGINT also mean "stop"."""
        if signum != signal.SIGHUP:
            self.stopping = signum
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    def reap(self) -> None:
        """Restart the workers that died (unless stopping)."""
        for index, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None or self.stopping is not None:
                continue
            lived = time.monotonic() - self.started[index]
            log.error("worker_died", worker=index, exit_code=code, lived_s=round(lived, 1))
            mark_metrics_dead(proc.pid, self.env)
            self.pause = (
                min(self.pause * 2, RESTART_PAUSE_S[1])
                if lived < QUICK_DEATH_S
                else RESTART_PAUSE_S[0]
            )
            time.sleep(self.pause)
            if self.stopping is None:
                self.spawn(index)

    def drain(self) -> int:
        """Wait for every worker to stop; kill those that outlive ``DRAIN_S``."""
        deadline = time.monotonic() + DRAIN_S
        codes = []
        for index, proc in self.procs.items():
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.error("worker_killed", worker=index)
                proc.kill()
                codes.append(proc.wait())
        # A worker still starting when the signal came dies of it (SIGINT there is Python's
        # KeyboardInterrupt: exit 130): it had nothing to drain.
        clean = {0, -(self.stopping or signal.SIGTERM), INTERRUPTED}
        return 0 if all(code in clean for code in codes) else 1


def supervise(argv: Sequence[str], count: int) -> int:
    """Run ``count`` workers until SIGTERM/SIGINT; returns 0 when all stopped cleanly."""
    with metrics_dir() as env:
        return _supervise(Supervisor(argv, count, env), count)


@contextlib.contextmanager
def metrics_dir() -> Iterator[dict[str, str]]:
    """The workers' environment with ``PROMETHEUS_MULTIPROC_DIR``: the operator's, or a fresh
    private directory removed afterwards (a stale one would add a past run's counts)."""
    if os.environ.get(MULTIPROC_ENV):
        yield dict(os.environ)
        return
    made = tempfile.mkdtemp(prefix="clamshell-metrics-")  # mode 0700
    try:
        yield {**os.environ, MULTIPROC_ENV: made}
    finally:
        shutil.rmtree(made, ignore_errors=True)


def mark_metrics_dead(pid: int, env: dict[str, str] | None) -> None:
    """Drop a dead worker's live gauges from the shared metrics files."""
    if env and env.get(MULTIPROC_ENV) and Path(env[MULTIPROC_ENV]).is_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, env[MULTIPROC_ENV])  # type: ignore[no-untyped-call]


def _supervise(supervisor: Supervisor, count: int) -> int:
    previous = {sig: signal.signal(sig, supervisor.forward) for sig in FORWARDED}
    try:
        for index in range(count):
            supervisor.spawn(index)
        log.info("supervisor_started", workers=count)
        while supervisor.stopping is None:
            time.sleep(POLL_S)
            supervisor.reap()
        log.info("supervisor_stopping", signal=signal.Signals(supervisor.stopping).name)
        return supervisor.drain()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
