"""Exceptions that carry the HTTP status they become.

Contract: every error the proxy raises on purpose derives from ``ClamshellError`` and carries
``status_hint`` and a patron-safe ``public_message``; exactly one boundary (the web error
middleware) renders them. ``ConfigError`` carries a list of precise problems for admins.
Not here: rendering (web/errors), logging.
"""

from __future__ import annotations

from dataclasses import dataclass


class ClamshellError(Exception):
    """Base error. ``public_message`` is safe to show a patron; never upstream text."""

    status_hint: int = 500
    public_message: str = "Something went wrong on our side."


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem, rendered as ``path:line: key.path: message``."""

    path: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(ClamshellError):
    """A configuration or rule file is invalid; ``problems`` lists every problem found."""

    status_hint = 500

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
