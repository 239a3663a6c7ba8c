"""The import's outcome: rules assembled across stanzas (ids, host claims, validation), read out.

Contract: pure. ``assemble(translations, findings, ...)`` gives every stanza a stable id
(a slug of its Title, deduplicated), keeps the first claim on a host or domain and drops
later ones with a warning, marks a stanza not importable when nothing servable is left, and
validates each rule with the schema (``VendorRule``) and the set with ``check_ruleset``, so
the rules it returns load together. ``render`` writes the summary the CLI prints;
``file_header`` the comments at the top of each rule file.
Not here: files (importer.py), what a stanza means (translate.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from proxy.core.rules import VendorRule
from proxy.core.ruleset import check_ruleset
from proxy.ezproxy.directives import Finding, Kind
from proxy.ezproxy.translate import Translation

MAX_SLUG: Final = 48  # room for a "-NN" suffix under the 64-character id limit
# "(updated 20230125)", "(OCLC IncludeFile updated 20241022)": dropped so ids stay stable.
_UPDATE_NOTE: Final = re.compile(r"\s*\([^)]*(?:updat|revis|\d{8})[^)]*\)", re.IGNORECASE)
_NOT_SLUG: Final = re.compile(r"[^a-z0-9]+")
# Latin letters that NFKD does not decompose into ASCII.
_LETTERS: Final = str.maketrans(
    {"æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L"}
)
_LINE_BREAKING: Final = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")  # YAML line breaks too
SECTIONS: Final[tuple[tuple[Kind, str], ...]] = (
    ("unimportable", "Not importable"),
    ("refused", "Refused for privacy"),
    ("dropped", "Dropped hosts and domains"),
    ("warning", "Warnings"),
    ("network", "Network rules for proxy.yaml (EZproxy IP rules; nothing was dropped silently)"),
    ("not_imported", "Not imported"),
    ("note", "Notes"),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One stanza's fate: its rule (with ``id``) when imported, and every finding about it."""

    translation: Translation
    rule: dict[str, Any] | None
    findings: tuple[Finding, ...]

    @property
    def rule_id(self) -> str | None:
        return None if self.rule is None else str(self.rule["id"])


@dataclass(frozen=True, slots=True)
class Existing:
    """Rules already in the output folder: their ids and who owns each host and domain."""

    ids: frozenset[str] = frozenset()
    owners: Mapping[str, str] = field(default_factory=dict)  # "hosts:x"/"domains:x" → owner


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Every stanza's outcome and the findings that belong to no stanza."""

    outcomes: tuple[Outcome, ...]
    findings: tuple[Finding, ...]

    @property
    def imported(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.rule is not None]

    def all_findings(self) -> list[Finding]:
        """Every finding once, global ones first, then stanza by stanza."""
        everything = [*self.findings, *(f for o in self.outcomes for f in o.findings)]
        return list(dict.fromkeys(everything))


def slug(title: str, url: str) -> str:
    """A rule id from a Title: ``"JSTOR (updated 20240101)"`` → ``"jstor"``."""
    text = unicodedata.normalize("NFKD", _UPDATE_NOTE.sub("", title).translate(_LETTERS))
    base = _NOT_SLUG.sub("-", text.encode("ascii", "ignore").decode().lower()).strip("-")
    if not base:  # e.g. a title in CJK script: fall back on the URL's host
        host = (urlsplit(url).hostname or "rule").removeprefix("www.")
        base = _NOT_SLUG.sub("-", host).strip("-") or "rule"
    if len(base) > MAX_SLUG:
        base = base[:MAX_SLUG].rsplit("-", 1)[0] if "-" in base[:MAX_SLUG] else base[:MAX_SLUG]
    return base


@dataclass(slots=True)
class _Assembler:
    context: dict[str, Any]  # pydantic validation context, as the loader passes it
    ids: set[str]
    owners: dict[str, str]
    checked: dict[int, VendorRule] = field(default_factory=dict)  # outcome index → rule

    def outcome(self, index: int, t: Translation) -> Outcome:
        if t.rule is None:
            return Outcome(t, None, t.findings)
        findings = list(t.findings)
        rule, owners = self._unclaimed(t, t.rule, findings)
        why = _unservable(rule, owners)
        if not why:
            rule = {"id": self._new_id(t.title, rule["url"]), **rule}
            why = self._schema_problems(index, rule)
        if why:
            return Outcome(t, None, (*findings, _unimportable(t, why)))
        self._claim(rule, t)
        return Outcome(t, rule, tuple(findings))

    def _unclaimed(
        self, t: Translation, rule: dict[str, Any], out: list[Finding]
    ) -> tuple[dict[str, Any], list[str]]:
        """The rule without what earlier rules claimed, and who claimed it."""
        rule, owners = dict(rule), []
        for key in ("hosts", "domains"):
            kept = []
            for entry in rule.get(key, []):
                owner = self.owners.get(f"{key}:{_name(entry)}")
                if owner is None:
                    kept.append(entry)
                    continue
                owners.append(owner)
                why = f"already claimed by {owner}; dropped from this rule"
                out.append(Finding("warning", t.stanza.title.where, f"{key} {entry}", why))
            rule[key] = kept
        if not rule["domains"]:
            del rule["domains"]
        return rule, list(dict.fromkeys(owners))

    def _new_id(self, title: str, url: str) -> str:
        base = candidate = slug(title, url)
        n = 1
        while candidate in self.ids:
            n += 1
            candidate = f"{base}-{n}"
        self.ids.add(candidate)
        return candidate

    def _schema_problems(self, index: int, rule: dict[str, Any]) -> str:
        try:
            self.checked[index] = VendorRule.model_validate(rule, context=self.context)
        except ValidationError as exc:
            return "; ".join(_problem(e) for e in exc.errors(include_url=False))
        return ""

    def _claim(self, rule: dict[str, Any], t: Translation) -> None:
        owner = f"rule {rule['id']!r} (Title at {t.stanza.title.where})"
        for key in ("hosts", "domains"):
            for entry in rule.get(key, []):
                self.owners.setdefault(f"{key}:{_name(entry)}", owner)


def _name(entry: str) -> str:
    """The host of a hosts entry (``http://a.b:8080`` → ``a.b``), or a domain as-is."""
    return (urlsplit(entry if "://" in entry else f"//{entry}").hostname or entry).lower()


def _unservable(rule: dict[str, Any], owners: list[str]) -> str:
    host = (urlsplit(rule["url"]).hostname or "").lower()
    names = {_name(h) for h in rule["hosts"]}
    domains = rule.get("domains", [])
    if host in names or any(host == d or host.endswith("." + d) for d in domains):
        return ""
    by = f" by {', '.join(owners[:3])}{' …' if len(owners) > 3 else ''}" if owners else ""
    if not names and not domains:
        return f"nothing left to serve: its hosts and domains were dropped or are claimed{by}"
    return f"its starting point's host {host} is claimed{by}; merge the stanzas by hand"


def _problem(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _unimportable(t: Translation, why: str) -> Finding:
    return Finding("unimportable", t.stanza.title.where, f"Title {t.title}", why)


def assemble(
    translations: Iterable[Translation],
    findings: Iterable[Finding],
    *,
    context: dict[str, Any],
    existing: Existing = Existing(),
) -> ImportResult:
    """Rules for the stanzas that can be imported, ready to load together."""
    assembler = _Assembler(context, set(existing.ids), dict(existing.owners))
    outcomes = [assembler.outcome(i, t) for i, t in enumerate(translations)]
    _set_checked(outcomes, assembler.checked, context)
    return ImportResult(tuple(outcomes), tuple(findings))


def _set_checked(
    outcomes: list[Outcome], checked: dict[int, VendorRule], context: dict[str, Any]
) -> None:
    """Belt and braces: what ``check_ruleset`` still finds makes that stanza not importable."""
    indexes = [i for i in checked if outcomes[i].rule is not None]
    rules = [checked[i] for i in indexes]
    for problem in check_ruleset(rules, is_public_suffix=context["is_public_suffix"]):
        o = outcomes[indexes[problem.rule_index]]
        why = f"{'.'.join(map(str, problem.key))}: {problem.message}"
        unimportable = _unimportable(o.translation, why)
        outcomes[indexes[problem.rule_index]] = Outcome(
            o.translation, None, (*o.findings, unimportable)
        )


# --- reading it out ------------------------------------------------------------------------
def render(result: ImportResult, *, source: str, written_to: str | None) -> str:
    """The summary printed at the end of an import."""
    found, imported = len(result.outcomes), result.imported
    lines = [
        f"EZproxy import of {source}: {found} stanzas found, {len(imported)} imported, "
        f"{found - len(imported)} not importable",
        f"Rules written to {written_to}:" if written_to else "Rules (dry run: nothing written):",
    ]
    lines += [_rule_line(o) for o in imported] or ["  (none)"]
    by_kind: dict[Kind, list[Finding]] = {}
    for f in result.all_findings():
        by_kind.setdefault(f.kind, []).append(f)
    for kind, heading in SECTIONS:
        if by_kind.get(kind):
            lines += ["", f"{heading} ({len(by_kind[kind])}):"]
            lines += [f"  {f}" for f in by_kind[kind]]
    return "\n".join(lines)


def _rule_line(o: Outcome) -> str:
    rule = o.rule or {}
    domains = rule.get("domains", [])
    shown = ", ".join(domains[:4]) + (", …" if len(domains) > 4 else "")
    counts = f"{len(rule['hosts'])} hosts, {len(domains)} domains" + (f": {shown}" if shown else "")
    return f"  {rule['id']:<28} {counts}  ({o.translation.stanza.title.where})"


def file_header(o: Outcome, *, source: str, marker: str) -> list[str]:
    """Comment lines for the top of a rule file: the stanza and what was not imported."""
    title = o.translation.stanza.title
    lines = [f"{marker} {source}", f"EZproxy stanza: {title.shown} at {title.where}"]
    kept = list(dict.fromkeys(o.findings))
    if kept:
        lines.append("What did not map one to one (see docs/moving-from-ezproxy.md):")
        lines += [f"  {f}" for f in kept]
    return [_comment_safe(line) for line in lines]


def _comment_safe(text: str) -> str:
    """One comment line: control characters (a stray CR, a NUL) would end or break it."""
    return _LINE_BREAKING.sub("?", text)
