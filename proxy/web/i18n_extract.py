"""A babel extraction method for the patron-facing texts of Python modules (scripts/catalogues.sh).

Contract: ``extract(fileobj, keywords, comment_tags, options)`` yields what babel's own Python
extractor finds (``_()``/``N_()`` calls) plus the string constants that reach patrons without
a call: values assigned to ``public_message`` (every ``ClamshellError``), to names ending in
``_MESSAGE``, and the message argument of a ``Deny(status, "…", …)``. So the errors raised all
over the package are translated on the error page (``_(message)`` in error.html) without
marking them in modules that must not import the web layer (proxy/core stays pure).
Not here: choosing or loading languages (web/i18n.py). Used only when extracting, never at run
time.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any

from babel.messages.extract import extract_python

Extracted = tuple[Any, ...]  # (line, function name, message, comments), as babel yields them


def extract(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any],
    comment_tags: Collection[str],
    options: Any,
) -> Iterator[Extracted]:
    """babel's Python extraction, then the patron-facing constants (see the module doc)."""
    source = fileobj.read()
    fileobj.seek(0)
    yield from extract_python(fileobj, keywords, comment_tags, options)
    for lineno, text in public_texts(ast.parse(source)):
        yield lineno, None, text, []


def public_texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every patron-facing string constant in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_is_message_name(t) for t in targets) and node.value is not None:
                yield from _constant(node.value)
        elif isinstance(node, ast.Call) and _called(node) == "Deny" and len(node.args) >= 2:
            yield from _constant(node.args[1])


def _is_message_name(target: ast.expr) -> bool:
    name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
    return name == "public_message" or name.endswith("_MESSAGE")


def _called(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else ""


def _constant(value: ast.expr) -> Iterator[tuple[int, str]]:
    if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value:
        yield value.lineno, value.value
