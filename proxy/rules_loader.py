"""Load vendor rules from a directory: every file, every problem, all or nothing.

Contract: ``load_rules(dir, library_codes)`` returns a ``LoadedRules`` (the rules, their index,
the file each came from) or raises ``ConfigError`` listing every problem in every file as
``path:line: key.path: message``. The caller keeps the previous rules when it raises, which is
what makes reloads safe.
Not here: the schema itself (core/rules.py), cross-rule checks (core/ruleset.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from publicsuffixlist import PublicSuffixList
from pydantic import ValidationError

from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex, check_ruleset
from proxy.errors import ConfigError, Problem
from proxy.yamlsource import KeyPath, dotted, line_of, load_yaml, read_limited

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class LoadedRules:
    """A rule set that passed every check, and where each rule came from."""

    rules: tuple[VendorRule, ...]
    index: RuleIndex
    sources: dict[str, str]  # rule id -> file path


@cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # bundled, maintained list; no network


def is_public_suffix(domain: str) -> bool:
    """True for 'com', 'co.uk', 'ac.uk'… (and for unlisted TLDs, per the PSL '*' rule)."""
    return bool(_public_suffixes().is_public(domain))


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory, sorted (README and hidden files are skipped)."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in RULE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def load_rules(
    directory: Path | str, library_codes: Iterable[str] | None, *, proxy_host: str | None = None
) -> LoadedRules:
    """Load and check every rule file; raise ConfigError with all problems.

    ``library_codes`` None skips the check that rules name defined libraries (no proxy.yaml);
    ``proxy_host`` (``Settings.proxy_host``) None skips the check that no rule covers it.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory), None, "", "rules directory not found")])
    codes = None if library_codes is None else frozenset(library_codes)
    problems: list[Problem] = []
    parsed: list[tuple[VendorRule, str, dict[KeyPath, int]]] = []
    for path in rule_files(directory):
        rule, lines, file_problems = parse_rule_file(path, codes)
        problems += file_problems
        if rule is not None:
            parsed.append((rule, str(path), lines))
    rules = [r for r, _, _ in parsed]
    for sp in check_ruleset(rules, is_public_suffix=is_public_suffix, proxy_host=proxy_host):
        _, source, lines = parsed[sp.rule_index]
        problems.append(Problem(source, line_of(lines, sp.key), dotted(sp.key), sp.message))
    if problems:
        raise ConfigError(problems)
    return LoadedRules(tuple(rules), RuleIndex.build(rules), {r.id: p for r, p, _ in parsed})


def parse_rule_file(
    path: Path, library_codes: frozenset[str] | None = None
) -> tuple[VendorRule | None, dict[KeyPath, int], list[Problem]]:
    """One file → (rule or None, line map, problems); ``library_codes`` None skips that check."""
    try:
        data, lines = load_yaml(read_limited(path), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        return None, {}, [Problem(str(path), None, "", f"cannot read: {exc}")]
    except ConfigError as exc:
        return None, {}, exc.problems
    if not isinstance(data, dict):
        return None, lines, [Problem(str(path), 1, "", "a rule file must be a YAML mapping")]
    try:
        rule = VendorRule.model_validate(
            data, context={"is_public_suffix": is_public_suffix, "library_codes": library_codes}
        )
        return rule, lines, []
    except ValidationError as exc:
        problems = validation_problems(exc, str(path), lines)
        return None, lines, sorted(problems, key=lambda p: p.line or 0)


def validation_problems(
    exc: ValidationError, path: str, lines: dict[KeyPath, int]
) -> list[Problem]:
    """Turn pydantic errors into file:line: key.path problems an admin can act on."""
    out = []
    for err in exc.errors(include_url=False):
        where = _clean_loc(err["loc"])
        out.append(Problem(path, line_of(lines, where), dotted(where), _message(err)))
    return out


def _clean_loc(loc: tuple[Any, ...]) -> KeyPath:
    # pydantic inserts union branch names ('literal[...]', 'tuple[...]') into locations.
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and "function-" not in p))


FRIENDLY = {
    "extra_forbidden": "unknown key (check the spelling; see vendor_rules/README.md)",
    "missing": "required key is missing",
}


def _message(err: Any) -> str:
    kind = err["type"]
    if kind in FRIENDLY:
        return str(FRIENDLY[kind])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and kind not in ("value_error", "assertion_error"):
        msg += f" (got {err['input']!r})"
    return msg
