"""YAML with line numbers: load a file into plain values plus a map key-path → line.

Contract: ``load_yaml(text, path)`` returns ``(data, lines)`` where ``lines[("hosts", 2)]`` is
the 1-based line of that node; YAML syntax errors and duplicate mapping keys become
``ConfigError`` with file, line and column. Uses PyYAML's composer (safe: only plain YAML
types are constructed) because the line of each node is what makes errors actionable.
Anchors and aliases (``&a`` / ``*a``) are refused at the first one, before anything is built:
nested aliases expand exponentially (a "billion laughs" alias bomb froze the proxy during a
SIGHUP reload, R12), and no rule or proxy.yaml needs them. ``read_limited`` reads a file of
at most ``MAX_YAML_BYTES``.
Not here: what the values mean (core.settings, core.rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from proxy.errors import ConfigError, Problem

KeyPath = tuple[str | int, ...]

# A rule file is a few kB; proxy.yaml too. Bounds what one reload may parse (R12).
MAX_YAML_BYTES: Final = 1024 * 1024
NO_ALIASES: Final = "YAML anchors and aliases are not allowed"


class _AliasFound(Exception):
    """An anchor or alias event; carries the line where it starts."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader whose composer stops at the first anchor or alias (an alias bomb's fuse)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasFound(event.start_mark.line + 1)
        return super().compose_node(parent, index)


def read_limited(path: Path, limit: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of ``path``; ConfigError naming the file when it is over ``limit`` bytes.

    Reads at most ``limit + 1`` bytes, so a huge (or endless) file costs no more than that.
    OSError and UnicodeDecodeError pass through to the caller, which names the file.
    """
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(
            [Problem(str(path), None, "", f"file is larger than {limit} bytes; refused")]
        )
    return data.decode("utf-8")


def load_yaml(text: str, path: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML text; return plain data and the line of every key path."""
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
    except _AliasFound as exc:
        raise ConfigError([Problem(path, exc.line, "", NO_ALIASES)]) from None
    except RecursionError:
        raise ConfigError([Problem(path, None, "", "YAML nested too deeply")]) from None
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
    try:
        data = _build(node, (), lines, problems, path)
    except RecursionError:
        raise ConfigError([Problem(path, None, "", "YAML nested too deeply")]) from None
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
