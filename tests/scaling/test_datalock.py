"""Issue #15.4: one process per data_dir in local mode (an flock naming the holder's PID)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from proxy.stores.datalock import LOCK_FILE, DataDirLocked, hold_data_dir
from tests.scaling.procs import ServeProcess, write_config


def test_second_serve_on_same_data_dir_refuses_naming_the_pid(tmp_path: Path) -> None:
    """A second `serve` on the data_dir of a running one exits 2 with one line naming its PID."""
    data = tmp_path / "data"
    first_config, first_port = write_config(tmp_path, data)
    second_config, _ = write_config(tmp_path, data)
    first = ServeProcess(first_config)
    try:
        first.wait_healthy(first_port)
        second = ServeProcess(second_config)
        assert second.wait() == 2
        message = second.stderr().strip()
        assert message.count("\n") == 0, message
        assert f"PID {first.proc.pid}" in message
        assert "state.backend: redis" in message
        assert "Traceback" not in message
    finally:
        assert first.stop(signal.SIGTERM) == 0


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    """A SIGKILLed server leaves its lock file behind, and the next one starts anyway."""
    data = tmp_path / "data"
    config, port = write_config(tmp_path, data)
    first = ServeProcess(config)
    first.wait_healthy(port)
    first.stop(signal.SIGKILL)
    assert (data / LOCK_FILE).exists()
    again = ServeProcess(config)
    try:
        again.wait_healthy(port)
    finally:
        assert again.stop() == 0


def test_lock_in_one_process_refuses_a_second_holder(tmp_path: Path) -> None:
    """Within a process a second open of the lock file also conflicts (flock is per open file)."""
    with hold_data_dir(tmp_path / "d"):
        assert (tmp_path / "d" / LOCK_FILE).read_text().strip() == str(os.getpid())
        with (
            pytest.raises(DataDirLocked, match=f"PID {os.getpid()}"),
            hold_data_dir(tmp_path / "d"),
        ):
            pass
    with hold_data_dir(tmp_path / "d"):  # released on exit
        pass
