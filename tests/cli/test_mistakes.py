"""Ordinary operator mistakes end in one ``error:`` line and exit 2, never a traceback (#20)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import __version__
from tests.cli.test_cli import REPO, run


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, one stderr line starting with ``error:`` and naming each needle."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def minimal_config(tmp_path: Path, port: int) -> Path:
    """A proxy.yaml listening on ``port`` with the admin console off."""
    config, rules = tmp_path / "proxy.yaml", tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\nrules_dir: {rules}\n"
        f"listen:\n  host: 127.0.0.1\n  port: {port}\nadmin:\n  enabled: false\n"
    )
    return config


def test_port_in_use(tmp_path: Path) -> None:
    """`serve` on a port another process holds: one line naming the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("--config", str(minimal_config(tmp_path, port)), "serve", cwd=tmp_path)
    assert_one_line_error(result, str(port), "address already in use")


def test_stats_export_into_a_missing_folder(tmp_path: Path) -> None:
    """`stats export --out` into a folder that does not exist names the path."""
    out = tmp_path / "missing" / "usage.csv"
    config = minimal_config(tmp_path, 8080)
    result = run("--config", str(config), "stats", "export", "--out", str(out), cwd=tmp_path)
    assert_one_line_error(result, str(out), "No such file or directory")


def test_certs_dev_into_an_unwritable_dir(tmp_path: Path) -> None:
    """`certs dev --dir` where no directory can be made (a file is in the way)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = minimal_config(tmp_path, 8080)
    result = run("--config", str(config), "certs", "dev", "--dir", str(blocker / "certs"))
    assert_one_line_error(result, str(blocker))


def test_review_analyze_a_missing_file(tmp_path: Path) -> None:
    """`review --analyze` on a capture that does not exist names it."""
    missing = tmp_path / "flows.mitm"
    config = minimal_config(tmp_path, 8080)
    result = run("--config", str(config), "review", "--analyze", str(missing), cwd=tmp_path)
    assert_one_line_error(result, str(missing))


def test_broken_pipe_into_head(tmp_path: Path) -> None:
    """Output piped into a reader that stops early: no traceback, the SIGPIPE exit code."""
    writer = subprocess.Popen(
        [sys.executable, str(REPO / "run_proxy.py"), "--help"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert writer.stdout is not None
    writer.stdout.close()  # the reader went away before the first byte
    _, err = writer.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert writer.returncode in (0, 141)  # --help may fit the pipe buffer before it closes


def test_broken_pipe_in_a_command(tmp_path: Path) -> None:
    """A command whose output outgrows the pipe after the reader left ends quietly with 141."""
    script = (
        "import sys, os; r, w = os.pipe(); os.close(r); os.dup2(w, 1);"
        "from proxy.cli import main; sys.exit(main(['rules', 'check', "
        f"{str(REPO / 'vendor_rules')!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 141


@pytest.mark.parametrize("flag", ["--version"])
def test_version(flag: str) -> None:
    """`--version` prints the version and exits 0."""
    result = run(flag)
    assert result.returncode == 0 and result.stdout.strip() == f"clamshell {__version__}"
