"""Real ``run_proxy.py serve`` processes on loopback for the scaling tests.

Contract: ``write_config`` writes a proxy.yaml with the demo rules, one MAIN library, free
ports and the given extra YAML; ``ServeProcess`` starts ``serve`` on it, waits for
``/healthz`` and stops it with a signal (killing it if it does not stop).
Not here: the Redis server (tests/scaling/redisserver.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 30.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, data_dir: Path, extra: str = "") -> tuple[Path, int]:
    """A proxy.yaml in ``directory`` serving on a free port; returns (path, port)."""
    port, admin = free_port(), free_port()
    path = directory / f"proxy-{port}.yaml"
    path.write_text(
        f"data_dir: {data_dir}\nrules_dir: {REPO / 'vendor_rules'}\n"
        f"public_url: http://proxy.localhost:{port}\n"
        f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        f"admin: {{listen: {{host: 127.0.0.1, port: {admin}}}}}\n"
        "libraries: [{code: MAIN, name: Main, prefix: '21234', length: 14, check_digit: luhn, "
        "remote_ptypes: [adult]}]\n" + extra,
        encoding="utf-8",
    )
    return path, port


class ServeProcess:
    """One ``run_proxy.py serve`` child process."""

    def __init__(self, config: Path, *args: str, command: str = "serve") -> None:
        where = ["--config", str(config), command] if command == "serve" else [command]
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "run_proxy.py"), *where, *args],
            cwd=config.parent,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_healthy(self, port: int) -> None:
        """Return once ``/healthz`` answers; fail with the process's stderr if it exits."""
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.stderr()}")
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/healthz",
                    headers={"Host": f"proxy.localhost:{port}"},
                )
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise AssertionError("serve did not become healthy")

    def stderr(self) -> str:
        """What the process wrote to stderr (once it has exited)."""
        return self.proc.stderr.read() if self.proc.stderr else ""

    def wait(self, timeout: float = 30.0) -> int:
        """Its exit code."""
        return self.proc.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop it with ``sig``; kill it if it has not stopped within 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
