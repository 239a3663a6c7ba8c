"""The package is ours, and the pure core stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import proxy

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "proxy" / "core"
FORBIDDEN_IN_CORE = ("aiohttp", "yaml", "mitmproxy", "socket", "sqlite3", "asyncio", "structlog")


def test_proxy_package_is_this_repository() -> None:
    """`import proxy` resolves to this repository, never the unrelated PyPI project."""
    assert Path(proxy.__file__).resolve().is_relative_to(REPO)


def imported_modules(path: Path) -> set[str]:
    """Top-level module names imported by a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_io_frameworks() -> None:
    """No module in proxy/core imports aiohttp, yaml, mitmproxy, sockets or SQLite."""
    offenders = {
        f"{path.name}: {mod}"
        for path in CORE.glob("*.py")
        for mod in imported_modules(path)
        if mod in FORBIDDEN_IN_CORE
    }
    assert not offenders
    assert len(list(CORE.glob("*.py"))) >= 4  # the check really looked at the core


def test_no_module_shadows_the_stdlib() -> None:
    """No module in the package is named like a stdlib module (mitmproxy's loader trap)."""
    import sys

    ours = {p.stem for p in (REPO / "proxy").rglob("*.py")} - {"__init__", "__main__"}
    assert not ours & set(sys.stdlib_module_names)


def test_every_module_has_a_docstring() -> None:
    """Every module opens with its contract."""
    missing = [
        str(p.relative_to(REPO))
        for p in (REPO / "proxy").rglob("*.py")
        if ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) is None
    ]
    assert not missing
