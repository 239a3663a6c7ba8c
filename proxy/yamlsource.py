"""YAML with line numbers: load a file into plain values plus a map key-path → line.

Contract: ``load_yaml(text, path)`` returns ``(data, lines)`` where ``lines[("hosts", 2)]`` is
the 1-based line of that node; YAML syntax errors and duplicate mapping keys become
``ConfigError`` with file, line and column. Uses PyYAML's composer (safe: only plain YAML
types are constructed) because the line of each node is what makes errors actionable.
Not here: what the values mean (core.settings, core.rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from proxy.errors import ConfigError, Problem

KeyPath = tuple[str | int, ...]


def load_yaml(text: str, path: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML text; return plain data and the line of every key path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [Problem(path, line, "", f"YAML syntax error{col}: {exc.problem}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(path, None, "", f"YAML error: {exc}")]) from None
    lines: dict[KeyPath, int] = {}
    problems: list[Problem] = []
    if node is None:
        return None, lines
    data = _build(node, (), lines, problems, path)
    if problems:
        raise ConfigError(problems)
    return data, lines


def _build(
    node: yaml.Node, where: KeyPath, lines: dict[KeyPath, int], problems: list[Problem], path: str
) -> Any:
    lines[where] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)  # scalar keys only
            if key in out:
                problems.append(
                    Problem(
                        path,
                        key_node.start_mark.line + 1,
                        dotted((*where, key)),
                        "duplicate key (each key may appear once)",
                    )
                )
            out[key] = _build(value_node, (*where, key), lines, problems, path)
            lines[(*where, key)] = key_node.start_mark.line + 1  # errors point at the key
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, (*where, i), lines, problems, path) for i, v in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node)


def dotted(where: KeyPath) -> str:
    """Render a key path as ``hosts[2].scheme``."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(lines: Mapping[KeyPath, int], where: KeyPath) -> int | None:
    """The line of the deepest known node on ``where`` (a missing key points at its parent)."""
    for cut in range(len(where), -1, -1):
        if where[:cut] in lines:
            return lines[where[:cut]]
    return None
