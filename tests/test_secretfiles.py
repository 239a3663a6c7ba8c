"""Private folders for secrets: a loose existing data_dir is tightened or refused (R24)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from proxy.secretfiles import SecretFileError, ensure_private_dir, read_or_create_secret


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def test_R24_loose_data_dir_is_tightened_and_logged(tmp_path: Path) -> None:
    """R24: an existing data_dir with mode 0755 becomes 0700, and an event says so."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.chmod(data_dir, 0o755)  # noqa: S103 - the loose folder under test
    with capture_logs() as events:
        read_or_create_secret(data_dir / "pepper.key")
    assert mode(data_dir) == 0o700
    assert [e for e in events if e["event"] == "data_dir_tightened"] == [
        {
            "component": "secrets",
            "event": "data_dir_tightened",
            "log_level": "warning",
            "path": str(data_dir),
            "old_mode": "0755",
            "new_mode": "0700",
        }
    ]


def test_R24_private_data_dir_is_left_alone(tmp_path: Path) -> None:
    """R24: a data_dir that is already 0700 is not touched and nothing is logged."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    os.chmod(data_dir, 0o700)
    with capture_logs() as events:
        ensure_private_dir(data_dir)
    assert mode(data_dir) == 0o700 and events == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_R24_loose_data_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    """R24: a loose data_dir owned by someone else is refused with a message, not changed."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.chmod(data_dir, 0o755)  # noqa: S103 - the loose folder under test
    os.chown(data_dir, 12345, 12345)
    with pytest.raises(SecretFileError, match=r"mode 0755 lets other users in.*uid 12345"):
        ensure_private_dir(data_dir)
    assert mode(data_dir) == 0o755
