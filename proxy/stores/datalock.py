"""One server process per ``data_dir``: an exclusive ``flock`` on ``data_dir/clamshell.lock``.

Contract: ``hold_data_dir(path)`` is a context manager that takes the lock without waiting
and writes this process's PID into the file; when another process holds it, it raises
``DataDirLocked`` whose message names the folder and the PID found in the file. The kernel
drops the lock when the holder exits, however it exits (kill -9 included), so a stale file
never blocks a restart. Forked children inherit the lock (same open file description), so
a supervisor's workers share it.
Why flock and not a PID file alone: a PID file outlives a crash and its PID may be reused;
the flock is released by the kernel with the last descriptor.
Not here: what the folder holds (stores/*), Redis mode across nodes (each node has its own
``data_dir``; docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from proxy.errors import ClamshellError
from proxy.secretfiles import ensure_private_dir

LOCK_FILE: Final = "clamshell.lock"


class DataDirLocked(ClamshellError):
    """Another process serves from the same ``data_dir``."""

    def __init__(self, data_dir: Path, pid: str) -> None:
        holder = f"PID {pid}" if pid else "another process"
        super().__init__(
            f"data_dir {data_dir} is in use by {holder}; stop it, or give this process "
            "another data_dir (several processes share state only with state.backend: redis)"
        )


@contextlib.contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``data_dir`` for the ``with`` block."""
    ensure_private_dir(data_dir)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirLocked(data_dir, _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock (the file stays: removing it would race a new holder)


def _holder(fd: int) -> str:
    """The PID the holder wrote (digits only: the file is ours, but never echo junk)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else ""
