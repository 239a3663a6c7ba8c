"""The rewriter's compiled helpers (proxy/core/_referencescan.pyx), when they were built.

Contract: ``compiled`` is the compiled module, typed by ``Compiled``, or None when setup.py
could not build it (no C compiler); callers read ``accelerated.compiled`` at call time and
use the Python code that each function names otherwise. Both give the same results
(tests/core/test_accelerated.py, and the rewriter tests run once with each); which one runs
changes only the speed (docs/benchmarks.md). CI builds it and a test fails there without it.
Not here: the algorithms (hostpattern.py, rewrite.py, htmlfixups.py and the .pyx itself).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from proxy.core.hostpattern import HostMatcher, Reference


class Compiled(Protocol):
    """What proxy/core/_referencescan.pyx provides; each mirrors a Python function."""

    def references(
        self,
        matcher: HostMatcher,
        data: bytes,
        low: bytes,
        start: int,
        limit: int,
        lookback: int,
        unknown: object,
    ) -> list[Reference]:
        """``HostMatcher._references``."""

    def candidates(self, matcher: HostMatcher, low: bytes, start: int) -> list[tuple[int, int]]:
        """The spans ``HostMatcher.tld_scan_lower.finditer(low, start)`` yields."""

    def splice(self, data: bytes, start: int, edits: list[Reference], resume: int) -> bytes:
        """``rewrite.splice_python``."""

    def third_party_hosts(
        self,
        data: bytes,
        start: int,
        limit: int,
        stop: int,
        near: int,
        seen: list[bytes],
        edits: list[Reference],
    ) -> None:
        """``rewrite.HostStage._collect_third_party``'s two scans (less covered hosts)."""

    def contains_any(self, text: bytes, words: tuple[bytes, ...]) -> bool:
        """``any(word in text for word in words)``."""

    def lower(self, data: bytes) -> bytes:
        """``data.lower()``."""


def _load() -> Compiled | None:
    try:
        return cast(Compiled, importlib.import_module("proxy.core._referencescan"))
    except ImportError:  # not built: no C compiler when the package was installed
        return None


compiled: Compiled | None = _load()
