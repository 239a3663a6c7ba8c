"""Issue #15: `demo --redis --workers 2` serves the demo on two workers and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.scaling.procs import REPO, ServeProcess, free_port
from tests.scaling.redisserver import require_redis


def test_demo_on_two_workers_and_redis(tmp_path: Path) -> None:
    """The scaled demo answers /healthz, refuses --workers without --redis, stops on SIGINT."""
    require_redis()
    base = [sys.executable, str(REPO / "run_proxy.py"), "demo", "--data-dir", str(tmp_path)]
    refused = subprocess.run([*base, "--workers", "2"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--redis" in refused.stderr
    port = free_port()
    vendor = str(free_port())
    extra = ["--data-dir", str(tmp_path), "--port", str(port), "--vendor-port", vendor]
    extra += ["--admin-port", str(free_port())]  # not the default 8081: another demo may run
    demo = ServeProcess(
        tmp_path / "unused.yaml", "--redis", "--workers", "2", *extra, command="demo"
    )
    try:
        demo.wait_healthy(port)
        assert (tmp_path / "demo-proxy.yaml").exists()
    finally:
        code = demo.stop(signal.SIGINT)
    assert code == 0, demo.stderr()[-4000:]
