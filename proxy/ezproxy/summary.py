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

import copy
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from proxy.core.rules import VendorRule
from proxy.core.ruleset import check_ruleset
from proxy.ezproxy.directives import Finding, Kind
from proxy.ezproxy.merge import merge_stanza, name_of, prune_anonymous
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
    ("merged", "Merged into platforms (stanzas sharing hosts; each is a database)"),
    ("conflict", "Conflicts in merged platforms (the first stanza's value is kept)"),
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
    merged_into: str | None = None  # the platform rule's id when merged as a database

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
        """The stanzas that became rules (platforms)."""
        return [o for o in self.outcomes if o.rule is not None]

    @property
    def merged(self) -> list[Outcome]:
        """The stanzas merged into an earlier platform rule as databases."""
        return [o for o in self.outcomes if o.merged_into is not None]

    @property
    def stanzas_imported(self) -> int:
        """Stanzas imported as rules or as databases of a platform."""
        return len(self.imported) + len(self.merged)

    @property
    def missing_includes(self) -> int:
        """IncludeFile lines whose file was not found."""
        return sum(1 for f in self.findings if f.why.startswith("included file not found"))

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
    outcomes: list[Outcome] = field(default_factory=list)
    platform_of: dict[str, int] = field(default_factory=dict)  # "hosts:x" → outcome index

    def add(self, t: Translation) -> None:
        self.outcomes.append(self.outcome(len(self.outcomes), t))

    def outcome(self, index: int, t: Translation) -> Outcome:
        if t.rule is None:
            return Outcome(t, None, t.findings)
        findings = list(t.findings)
        target = self._platform_for(t.rule)
        rule, owners = self._unclaimed(t, t.rule, findings, target)
        if target is not None:
            return self._merge(target, t, rule, findings)
        why = _unservable(rule, owners)
        if not why:
            rule = {"id": self._new_id(rule["title"], rule["url"]), **rule}
            findings += prune_anonymous(rule, t.stanza.title.where)
            why = self._schema_problems(index, rule)
        if why:
            return Outcome(t, None, (*findings, _unimportable(t, why)))
        self._claim(rule, t, index)
        return Outcome(t, rule, tuple(findings))

    def _platform_for(self, rule: dict[str, Any]) -> int | None:
        """The platform imported in this run that serves the stanza's starting point."""
        host = (urlsplit(rule["url"]).hostname or "").lower()
        found = self.platform_of.get(f"hosts:{host}")
        labels = host.split(".")
        for cut in range(len(labels)):
            if found is not None:
                break
            found = self.platform_of.get(f"domains:{'.'.join(labels[cut:])}")
        return found

    def _merge(
        self, target: int, t: Translation, rule: dict[str, Any], findings: list[Finding]
    ) -> Outcome:
        """#17: the stanza becomes one more database of the platform at ``target``."""
        platform = self.outcomes[target]
        assert platform.rule is not None  # platform_of only names imported outcomes
        before = copy.deepcopy(platform.rule)
        here, there = t.stanza.title.where, platform.translation.stanza.title.where
        db_id = self._new_id(rule["title"], rule["url"])
        merged = merge_stanza(platform.rule, rule, db_id, here=here, there=there)
        merged += prune_anonymous(platform.rule, here)
        why = self._schema_problems(target, platform.rule)
        if why:
            platform.rule.clear()
            platform.rule.update(before)
            self._schema_problems(target, platform.rule)
            self.ids.discard(db_id)
            return Outcome(t, None, (*findings, _unimportable(t, f"merging failed: {why}")))
        self._claim(platform.rule, platform.translation, target)
        pid = str(platform.rule["id"])
        host = (urlsplit(rule["url"]).hostname or "").lower()
        note = Finding(
            "merged",
            here,
            f"Title {t.title}",
            f"database {db_id!r} of platform {pid!r} (Title at {there}); both serve {host}",
        )
        self.outcomes[target] = replace(platform, findings=(*platform.findings, note, *merged))
        return Outcome(t, None, (*findings, note, *merged), merged_into=pid)

    def _unclaimed(
        self, t: Translation, rule: dict[str, Any], out: list[Finding], target: int | None
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
                if target is not None and self.platform_of.get(f"{key}:{_name(entry)}") == target:
                    continue  # the platform it merges into serves it already
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

    def _claim(self, rule: dict[str, Any], t: Translation, index: int) -> None:
        owner = f"rule {rule['id']!r} (Title at {t.stanza.title.where})"
        for key in ("hosts", "domains"):
            for entry in rule.get(key, []):
                self.owners.setdefault(f"{key}:{_name(entry)}", owner)
                self.platform_of.setdefault(f"{key}:{_name(entry)}", index)


_name = name_of


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
    for t in translations:
        assembler.add(t)
    outcomes = assembler.outcomes
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
        for k, m in enumerate(outcomes):  # its merged databases go with it
            if o.rule is not None and m.merged_into == o.rule["id"]:
                gone = _unimportable(m.translation, f"its platform {m.merged_into!r}: {why}")
                outcomes[k] = Outcome(m.translation, None, (*m.findings, gone))


# --- reading it out ------------------------------------------------------------------------
def render(result: ImportResult, *, source: str, written_to: str | None) -> str:
    """The summary printed at the end of an import."""
    found, imported, done = len(result.outcomes), result.imported, result.stanzas_imported
    missing = result.missing_includes
    lines = [
        f"EZproxy import of {source}: {found} stanzas found, {done} imported "
        f"({len(imported)} rules, {len(result.merged)} merged into them as databases), "
        f"{found - done} not importable"
        + (f"; {missing} included files missing" if missing else ""),
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
    if rule.get("databases"):
        counts = f"{len(rule['databases'])} databases, " + counts
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
