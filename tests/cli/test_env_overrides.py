"""Issue #18 item 3: the documented CLAMSHELL_* environment overrides reach every command."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from proxy.cli.startup import settings_of

REPO = Path(__file__).resolve().parents[2]
MAIN_CARD = "21234000000018"  # a luhn-valid MAIN card


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A proxy.yaml whose own data_dir (./config-data) the overrides must replace."""
    path = tmp_path / "proxy.yaml"
    path.write_text(
        f"data_dir: ./config-data\nrules_dir: {REPO / 'vendor_rules'}\n"
        "libraries: [{code: MAIN, name: Main, prefix: '21234', length: 14, check_digit: luhn, "
        "remote_ptypes: [adult]}]\n",
        encoding="utf-8",
    )
    return path


def cli(
    config: Path, env_dir: Path, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run run_proxy.py with CLAMSHELL_DATA_DIR set to ``env_dir``."""
    env = {**os.environ, "CLAMSHELL_DATA_DIR": str(env_dir), **(extra or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "run_proxy.py"), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=config.parent,
    )


def assert_used(config: Path, env_dir: Path, filename: str) -> None:
    """The command wrote ``filename`` under the override and nothing under the config's dir."""
    assert (env_dir / filename).exists(), sorted(p.name for p in env_dir.glob("*"))
    assert not (config.parent / "config-data").exists()


def test_item3_purge_uses_data_dir_override(config: Path, tmp_path: Path) -> None:
    """#18.3: `purge` opens its stores under CLAMSHELL_DATA_DIR."""
    result = cli(config, tmp_path / "env", "purge")
    assert result.returncode == 0, result.stderr
    assert_used(config, tmp_path / "env", "stats.sqlite3")


def test_item3_stats_export_uses_data_dir_override(config: Path, tmp_path: Path) -> None:
    """#18.3: `stats export` reads the statistics under CLAMSHELL_DATA_DIR."""
    result = cli(config, tmp_path / "env", "stats", "export")
    assert result.returncode == 0, result.stderr
    assert_used(config, tmp_path / "env", "stats.sqlite3")


def test_item3_patrons_import_uses_data_dir_override(config: Path, tmp_path: Path) -> None:
    """#18.3: `patrons import` writes the registry under CLAMSHELL_DATA_DIR."""
    export = tmp_path / "export.csv"
    export.write_text(
        f"barcode,pin,last_name,library,ptype,expires,status\n"
        f"{MAIN_CARD},1111,,MAIN,adult,2099-12-31,ok\n"
    )
    result = cli(config, tmp_path / "env", "patrons", "import", str(export))
    assert result.returncode == 0, result.stderr
    assert_used(config, tmp_path / "env", "patrons.sqlite3")


def test_item3_admin_token_uses_data_dir_override(config: Path, tmp_path: Path) -> None:
    """#18.3: `admin-token` prints the token kept under CLAMSHELL_DATA_DIR."""
    result = cli(config, tmp_path / "env", "admin-token")
    assert result.returncode == 0, result.stderr
    assert_used(config, tmp_path / "env", "admin.token")
    again = cli(config, tmp_path / "env", "admin-token")
    assert again.stdout == result.stdout


def test_item3_rules_check_uses_rules_dir_override(config: Path, tmp_path: Path) -> None:
    """#18.3: `rules check` (no DIR) checks CLAMSHELL_RULES_DIR, not the config's rules_dir."""
    rules = tmp_path / "env-rules"
    rules.mkdir()
    (rules / "bad.yaml").write_text("id: bad\ntitle: [\n")
    result = cli(
        config, tmp_path / "env", "rules", "check", extra={"CLAMSHELL_RULES_DIR": str(rules)}
    )
    assert result.returncode == 1
    assert f"{rules}/bad.yaml" in result.stderr


def test_item3_public_url_override_reaches_commands(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#18.3: the settings every command loads carry CLAMSHELL_PUBLIC_URL."""
    monkeypatch.setenv("CLAMSHELL_PUBLIC_URL", "https://proxy.example.edu")
    settings = settings_of(argparse.Namespace(config=str(config)))
    assert settings.public_url == "https://proxy.example.edu"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_item3_serve_starts_and_stops_on_data_dir_override(config: Path, tmp_path: Path) -> None:
    """#18.3: `serve` keeps its files under CLAMSHELL_DATA_DIR and stops cleanly on SIGINT."""
    port, admin = free_port(), free_port()
    config.write_text(
        config.read_text()
        + f"listen: {{host: 127.0.0.1, port: {port}}}\n"
        + f"admin: {{listen: {{host: 127.0.0.1, port: {admin}}}}}\n"
    )
    env = {**os.environ, "CLAMSHELL_DATA_DIR": str(tmp_path / "env")}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_proxy.py"), "--config", str(config), "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_used(config, tmp_path / "env", "sessions.sqlite3")
