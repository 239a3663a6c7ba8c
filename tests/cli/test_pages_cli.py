"""`pages check`: a library's pages folder validated before the proxy loads it (#21)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import REPO, run


def test_pages_check_passes_on_the_shipped_pages() -> None:
    """Without a folder the shipped templates are checked and pass."""
    result = run("--config", str(REPO / "proxy.yaml"), "pages", "check")
    assert result.returncode == 0, result.stderr
    assert "templates OK" in result.stdout


def test_pages_check_names_every_broken_file_and_line(tmp_path: Path) -> None:
    """A broken template and a low-contrast brand: file:line problems, exit 1, no traceback."""
    (tmp_path / "menu.html").write_text("<p>\n{% for x in %}\n")
    (tmp_path / "brand.yaml").write_text("consortium:\n  colours: {paper: '#777777'}\n")
    result = run("pages", "check", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{tmp_path}/brand.yaml:2: consortium.colours: ink on paper")
    assert lines[1].startswith(f"{tmp_path}/menu.html:2: template error")
    assert "Traceback" not in result.stderr
