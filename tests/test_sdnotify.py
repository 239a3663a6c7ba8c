"""sd_notify: readiness reaches a real AF_UNIX datagram listener standing in for systemd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.sdnotify import notify

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket like systemd's notification socket, and its path."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield sock, path
    sock.close()


def test_notify_sends_one_datagram(listener: tuple[socket.socket, str]) -> None:
    """The state arrives as one datagram at the socket NOTIFY_SOCKET names."""
    sock, path = listener
    assert notify("READY=1\nSTATUS=x", {"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=x"


def test_abstract_socket_name() -> None:
    """``@name`` is the abstract namespace (a leading NUL byte)."""
    name = f"clamshell-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(64) == b"READY=1"


def test_without_notify_socket_nothing_happens() -> None:
    """Outside systemd: no socket, no error."""
    assert not notify("READY=1", {})


def test_a_dead_socket_is_not_fatal(tmp_path: Path) -> None:
    """A NOTIFY_SOCKET nobody listens on is logged, not raised."""
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})


def test_serve_says_ready_after_binding_and_stopping_on_sigterm(
    listener: tuple[socket.socket, str], tmp_path: Path
) -> None:
    """`clamshell serve` sends READY=1 only once its port accepts connections, STOPPING=1 at
    SIGTERM."""
    sock, path = listener
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rules = tmp_path / "rules"
    rules.mkdir()
    config = tmp_path / "proxy.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\nrules_dir: {rules}\n"
        f"listen:\n  host: 127.0.0.1\n  port: {port}\nadmin:\n  enabled: false\n"
    )
    env = {**os.environ, "NOTIFY_SOCKET": path, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_proxy.py"), "--config", str(config), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ready = sock.recv(4096).decode()
        assert ready.startswith("READY=1\n") and f":{port}" in ready
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # bound before READY
        proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
