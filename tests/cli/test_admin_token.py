"""Issue #18 item 7: the demo says where its admin console is and how to get its token."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config_loader import settings_from
from proxy.demo.run import print_banner
from proxy.demo.settings import demo_config
from proxy.web.admin.auth import admin_token

REPO = Path(__file__).resolve().parents[2]


def test_item7_demo_banner_command_prints_the_demo_consoles_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """#18.7: the demo prints its console URL and a command whose token the console accepts."""
    monkeypatch.delenv("CLAMSHELL_ADMIN_TOKEN", raising=False)
    raw = demo_config(port=8080, vendor_port=9001, data_dir=tmp_path / "demo-data")
    settings = settings_from(raw, where="<demo defaults>", base=tmp_path)
    print_banner(settings, [])
    out = capsys.readouterr().out
    listen = settings.admin.listen
    assert f"Admin console:   http://{listen.host}:{listen.port}/" in out
    (line,) = [x for x in out.splitlines() if "admin-token" in x]
    command = shlex.split(line.split(":", 1)[1])
    assert command[:2] == ["clamshell", "admin-token"]  # the console script (#20)
    result = subprocess.run(  # run where no proxy.yaml exists, as after `demo`
        [sys.executable, str(REPO / "run_proxy.py"), *command[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == admin_token(settings, {})
