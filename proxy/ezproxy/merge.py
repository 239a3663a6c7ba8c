"""Stanzas sharing hosts become one platform rule with several databases (#17).

Contract: pure functions on the plain rule dicts the translation produces. ``as_platform``
turns a one-database rule into the ``databases:`` form; ``merge_stanza`` adds one stanza to a
platform as a database, in config order: its unclaimed hosts and domains join the platform,
compatible options are merged (lists unioned), and every option that cannot be merged is a
``conflict`` finding naming both stanzas' file:line and both values; nothing is dropped
silently. ``prune_anonymous`` drops anonymous patterns whose host the rule no longer covers.
Not here: who claims which host and ids (summary.py), the schema (core/rules.py).
"""

from __future__ import annotations

import copy
from typing import Any, Final
from urllib.parse import urlsplit

from proxy.ezproxy.directives import Finding, Where

# Keys a database carries from its stanza (the rest belongs to the platform).
DATABASE_KEYS: Final = ("title", "url", "description", "hide")
# Options whose lists are unioned when stanzas merge (order kept, duplicates once).
UNION_LISTS: Final = (("never_proxy",), ("headers", "allow"), ("rewrite", "content_types"))
# Scalar options that must agree; the platform's (first stanza's) value is kept otherwise.
MUST_AGREE: Final = ("cookies", "third_party")


def name_of(entry: str) -> str:
    """The host of a hosts entry (``http://a.b:8080`` → ``a.b``), or a domain as-is."""
    return (urlsplit(entry if "://" in entry else f"//{entry}").hostname or entry).lower()


def covered(rule: dict[str, Any], host: str) -> bool:
    """True when the rule dict's hosts or domains cover ``host`` (and never_proxy does not)."""
    if any(host == n or host.endswith("." + n) for n in rule.get("never_proxy", [])):
        return False
    if host in {name_of(h) for h in rule.get("hosts", [])}:
        return True
    return any(host == d or host.endswith("." + d) for d in rule.get("domains", []))


def database_of(rule: dict[str, Any], db_id: str) -> dict[str, Any]:
    """A stanza's database entry: id, title, url, description, hide, licence."""
    db: dict[str, Any] = {"id": db_id, **{k: rule[k] for k in DATABASE_KEYS if k in rule}}
    if rule.get("libraries", "all") != "all":
        db["libraries"] = rule["libraries"]
    return db


def as_platform(rule: dict[str, Any]) -> None:
    """Turn a one-database rule into the platform form, in place (licence moves down)."""
    if "databases" in rule:
        return
    rule["databases"] = [database_of(rule, rule["id"])]
    for key in ("url", "description", "hide"):
        rule.pop(key, None)
    rule.pop("libraries", None)


def merge_stanza(
    platform: dict[str, Any],
    stanza: dict[str, Any],
    db_id: str,
    *,
    here: Where,
    there: Where,
) -> list[Finding]:
    """Add ``stanza`` (hosts already pruned of other platforms' claims) to ``platform``."""
    as_platform(platform)
    platform["databases"].append(database_of(stanza, db_id))
    for key in ("hosts", "domains"):
        merged = dict.fromkeys([*platform.get(key, []), *stanza.get(key, [])])
        if merged:
            platform[key] = list(merged)
    for path in UNION_LISTS:
        _union(platform, stanza, path)
    findings = _merge_find_replace(platform, stanza, here, there)
    findings += _merge_scalars(platform, stanza, here, there)
    anonymous = [*platform.get("anonymous", []), *stanza.get("anonymous", [])]
    if anonymous:
        platform["anonymous"] = [a for i, a in enumerate(anonymous) if a not in anonymous[:i]]
    return findings


def _get(rule: dict[str, Any], path: tuple[str, ...]) -> list[Any]:
    node: Any = rule
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return list(node) if isinstance(node, list) else []


def _union(platform: dict[str, Any], stanza: dict[str, Any], path: tuple[str, ...]) -> None:
    values = list(dict.fromkeys([*_get(platform, path), *_get(stanza, path)]))
    if not values:
        return
    node = platform
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = values


def _merge_find_replace(
    platform: dict[str, Any], stanza: dict[str, Any], here: Where, there: Where
) -> list[Finding]:
    """Different Find/Replace pairs all apply; the same Find with another Replace conflicts."""
    mine = _get(platform, ("rewrite", "find_replace"))
    findings = []
    for pair in _get(stanza, ("rewrite", "find_replace")):
        same = next((p for p in mine if p["find"] == pair["find"]), None)
        if same is None:
            mine.append(copy.deepcopy(pair))
        elif same != pair:
            why = (
                f"Find {pair['find']!r}: Replace {same.get('replace', '')!r} (Title at "
                f"{there}) kept; {pair.get('replace', '')!r} (Title at {here}) not applied"
            )
            findings.append(Finding("conflict", here, "Find/Replace", why))
    if mine:
        platform.setdefault("rewrite", {})["find_replace"] = mine
    return findings


def _merge_scalars(
    platform: dict[str, Any], stanza: dict[str, Any], here: Where, there: Where
) -> list[Finding]:
    findings = []
    for key in MUST_AGREE:
        kept, other = platform.get(key), stanza.get(key)
        if other is not None and kept is not None and kept != other:
            why = f"{kept!r} (Title at {there}) kept; {other!r} (Title at {here}) not applied"
            findings.append(Finding("conflict", here, key, why))
    return findings


def prune_anonymous(rule: dict[str, Any], where: Where) -> list[Finding]:
    """Anonymous URL patterns whose host the rule does not cover are left out (P6)."""
    kept, findings = [], []
    for entry in rule.get("anonymous", []):
        pattern = entry["patterns"][0]
        host = ""
        if "://" in pattern:
            host = pattern.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0].lower()
        bare = host.removeprefix("*.")
        if not host or ("*" not in bare and covered(rule, bare)):
            kept.append(entry)
        else:
            why = f"{host} is not among this rule's hosts (claimed by another rule); left out"
            findings.append(Finding("not_imported", where, f"AnonymousURL {pattern}", why))
    if kept:
        rule["anonymous"] = kept
    else:
        rule.pop("anonymous", None)
    return findings
