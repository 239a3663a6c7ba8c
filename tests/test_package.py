"""The package is ours, and the pure core stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import proxy

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "proxy" / "core"
# I/O, frameworks and logging stay in the shell (CONVENTIONS 2: "no IO code whatsoever", as h11)
FORBIDDEN_IN_CORE = frozenset(
    {
        "aiohttp",
        "asyncio",
        "httptools",
        "mitmproxy",
        "selectors",
        "socket",
        "sqlite3",
        "ssl",
        "structlog",
        "subprocess",
        "threading",
        "yaml",
        "http.client",
        "http.server",
        "urllib.request",
    }
)


def test_proxy_package_is_this_repository() -> None:
    """`import proxy` resolves to this repository, never the unrelated PyPI project."""
    assert Path(proxy.__file__).resolve().is_relative_to(REPO)


def imported_modules(path: Path) -> set[str]:
    """Fully qualified names of the modules a Python file imports (relative ones resolved)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            names.add(".".join(part for part in (base, node.module or "") if part))
    return names


def forbidden_in_core(module: str) -> bool:
    """An I/O import, or a ``proxy`` module outside ``proxy.core``."""
    parts = module.split(".")
    io = any(".".join(parts[:n]) in FORBIDDEN_IN_CORE for n in range(1, len(parts) + 1))
    shell = parts[0] == "proxy" and parts[:2] != ["proxy", "core"]
    return io or shell


def test_core_imports_no_io_and_nothing_outside_the_core() -> None:
    """#14: every module under proxy/core (subpackages too) imports no I/O and no shell module."""
    modules = sorted(CORE.rglob("*.py"))
    offenders = {
        f"{path.relative_to(CORE)}: {mod}"
        for path in modules
        for mod in imported_modules(path)
        if forbidden_in_core(mod)
    }
    assert not offenders
    assert any(path.parent != CORE for path in modules)  # subpackages (core/review) are checked


def test_the_core_check_catches_io_and_shell_imports() -> None:
    """#14: the purity check flags I/O, dotted I/O and shell imports, and passes pure ones."""
    assert forbidden_in_core("asyncio")
    assert forbidden_in_core("urllib.request")
    assert forbidden_in_core("proxy.web.app")
    assert forbidden_in_core("proxy")
    assert not forbidden_in_core("urllib.parse")
    assert not forbidden_in_core("proxy.core.review.canaries")


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


def reexported(source: str) -> list[str]:
    """Names a module imports and lists in ``__all__``, or imports as themselves
    (``import x as x``, the explicit re-export idiom): what makes it a re-export shim."""
    tree = ast.parse(source)
    aliased = {
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name
    }
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    listed: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            listed = [
                e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)
            ]
    return sorted((set(listed) & imported) | aliased)


def test_no_module_reexports_what_another_defines() -> None:
    """No re-export shims: callers import a name from the module that defines it."""
    shims = {
        str(p.relative_to(REPO)): names
        for p in (REPO / "proxy").rglob("*.py")
        if (names := reexported(p.read_text(encoding="utf-8")))
    }
    assert shims == {}


def test_the_shim_check_finds_a_reexport() -> None:
    """The shim check itself sees an imported name listed in __all__."""
    shim = "from proxy.core.setcookie import parse\n__all__ = ['parse', 'own']\nown = 1\n"
    assert reexported(shim) == ["parse"]
    assert reexported("from proxy.core.useragent import UA as UA\n") == ["UA"]
