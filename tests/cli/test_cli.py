"""The command line: exit codes and messages an admin can act on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run run_proxy.py as a person would."""
    return subprocess.run(
        [sys.executable, str(REPO / "run_proxy.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rules_check_passes_on_shipped_rules() -> None:
    """`rules check vendor_rules/` exits 0 on the shipped rules."""
    result = run("rules", "check", "vendor_rules/")
    assert result.returncode == 0, result.stderr
    assert "rules OK" in result.stdout


def test_rules_check_lists_each_rules_third_party_policy(tmp_path: Path) -> None:
    """#18.8: `rules check` prints per rule its third-party policy and the hosts it allows."""
    base = "title: {0}\nurl: https://www.{0}.org/\nhosts: [www.{0}.org]\n"
    (tmp_path / "a.yaml").write_text("id: a\n" + base.format("a"))
    (tmp_path / "b.yaml").write_text(
        "id: b\n" + base.format("b") + "third_party_allow: [fonts.gstatic.com, '*.mathjax.org']\n"
    )
    (tmp_path / "c.yaml").write_text("id: c\n" + base.format("c") + "third_party: report\n")
    result = run("rules", "check", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  a: third_party block; allowed third parties: none" in result.stdout
    assert "  b: third_party block; allowed third parties: fonts.gstatic.com, *.mathjax.org" in (
        result.stdout
    )
    assert "  c: third_party report" in result.stdout


def test_rules_check_lists_every_problem(tmp_path: Path) -> None:
    """Several broken files: every problem as file:line: key, exit 1, no traceback."""
    (tmp_path / "a.yaml").write_text(
        "id: a\ntitle: A\nurl: https://www.a.org/\n"
        "hosts: [www.a.org, 'www..a.org']\ncookeis: pass\n"
    )
    (tmp_path / "b.yaml").write_text("id: b\ntitle: [\n")
    result = run("--config", str(REPO / "proxy.yaml"), "rules", "check", str(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"{tmp_path}/a.yaml:4: hosts[1]: not a hostname: 'www..a.org' (empty label)" in lines
    assert any(line.startswith(f"{tmp_path}/a.yaml:5: cookeis: unknown key") for line in lines)
    assert any(line.startswith(f"{tmp_path}/b.yaml:") for line in lines)
    assert "Traceback" not in result.stderr


def test_broken_config_is_one_clear_message(tmp_path: Path) -> None:
    """A broken proxy.yaml names file, line and key; exit 1, no traceback."""
    config = tmp_path / "proxy.yaml"
    config.write_text("listen:\n  port: seventy\n")
    result = run("--config", str(config), "serve")
    assert result.returncode == 1
    assert result.stderr.startswith(f"{config}:2: listen.port:")
    assert "Traceback" not in result.stderr


def test_unknown_command_prints_usage_and_exits_2() -> None:
    """An unknown command or option is a usage error."""
    assert run("frobnicate").returncode == 2
    result = run("--nope", "serve")
    assert result.returncode == 2
    assert "usage:" in result.stderr
