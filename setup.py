"""Builds the optional compiled hot loop of the rewriter (proxy/core/_referencescan.pyx).

Everything else about the package is in pyproject.toml. Why a compiled module at all: issue
19 measured the rewriter's cost on link-dense pages as interpreter work per URL reference,
which no ``re`` shape removes; Cython compiles the same loop with C byte tests. Why optional:
the quick start must work on a machine without a C compiler, and there the package runs the
identical Python loop (``proxy.core.hostpattern.ACCELERATED`` is False). CI has gcc and
asserts the compiled module is present (tests/core/test_rewrite.py).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A failed compile is a warning, not a failed install (the Python loop takes over)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # no compiler, no headers: both surface as several types
            print(f"warning: compiled rewriter loop not built ({error})", file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:
            print(f"warning: {ext.name} not built ({error})", file=sys.stderr)


def extensions() -> list[Extension]:
    """The Cython extension, or none when Cython itself is missing."""
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    module = Extension(
        "proxy.core._referencescan",
        ["proxy/core/_referencescan.pyx"],
        define_macros=[("_GNU_SOURCE", "1")],  # memmem
    )
    return list(cythonize([module], language_level=3, quiet=True))


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
