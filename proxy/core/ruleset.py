"""A validated set of vendor rules and the host → rule index the proxy looks up per request.

Contract: ``check_ruleset`` takes rules already valid on their own and returns every problem
across them (duplicate ids, a host or domain claimed twice, libraries proxy.yaml does not
define, public-suffix domains, IP literals or localhost); ``RuleIndex`` answers "which rule
covers this host?" in O(labels). Pure: the public-suffix test is passed in as a function.
Not here: files and YAML (rules_loader), the per-request decision (core/decide).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from proxy.core.hostmap import Origin
from proxy.core.rules import VendorRule


@dataclass(frozen=True, slots=True)
class SetProblem:
    """A problem found across rules: which rule (by index), which key, what."""

    rule_index: int
    key: tuple[str | int, ...]
    message: str


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """Host → rule, built once per rule set; lookups are a dict hit per label suffix."""

    rules: tuple[VendorRule, ...]
    by_id: dict[str, VendorRule] = field(default_factory=dict)
    exact: dict[str, VendorRule] = field(default_factory=dict)
    by_domain: dict[str, VendorRule] = field(default_factory=dict)
    never: frozenset[str] = frozenset()
    origins: dict[str, Origin] = field(default_factory=dict)

    @classmethod
    def build(cls, rules: Iterable[VendorRule]) -> RuleIndex:
        """Index rules by exact host and by domain (first claim wins; check_ruleset reports)."""
        rules = tuple(rules)
        index = cls(rules=rules, never=frozenset(n for r in rules for n in r.never_proxy))
        for rule in rules:
            index.by_id.setdefault(rule.id, rule)
            for origin in rule.origins:
                index.exact.setdefault(origin.host, rule)
                index.origins.setdefault(origin.host, origin)
            for domain in rule.domains:
                index.by_domain.setdefault(domain, rule)
        return index

    def rule_for(self, host: str) -> VendorRule | None:
        """The rule covering ``host``, or None (also None for never_proxy hosts)."""
        host = host.lower()
        if self._never_proxied(host):
            return None
        rule = self.exact.get(host)
        if rule is not None:
            return rule
        labels = host.split(".")
        for cut in range(len(labels)):
            rule = self.by_domain.get(".".join(labels[cut:]))
            if rule is not None:
                return rule
        return None

    def origin_for(self, host: str) -> Origin:
        """The origin to use for a covered host: an exact host's scheme/port, else https."""
        return self.origins.get(host.lower()) or Origin(scheme="https", host=host.lower(), port=443)

    def _never_proxied(self, host: str) -> bool:
        if not self.never:
            return False
        labels = host.split(".")
        return any(".".join(labels[cut:]) in self.never for cut in range(len(labels)))


def check_ruleset(
    rules: Sequence[VendorRule],
    *,
    is_public_suffix: Callable[[str], bool],
) -> list[SetProblem]:
    """Every problem across the rules; an empty list means the set may be loaded."""
    problems: list[SetProblem] = []
    problems += _duplicate_ids(rules)
    problems += _claimed_twice(rules)
    for i, rule in enumerate(rules):
        problems += _rule_hosts(i, rule, is_public_suffix)
    return problems


def _duplicate_ids(rules: Sequence[VendorRule]) -> list[SetProblem]:
    seen: dict[str, int] = {}
    out = []
    for i, rule in enumerate(rules):
        if rule.id in seen:
            out.append(
                SetProblem(i, ("id",), f"duplicate id {rule.id!r} (also rule #{seen[rule.id] + 1})")
            )
        seen.setdefault(rule.id, i)
    return out


def _claimed_twice(rules: Sequence[VendorRule]) -> list[SetProblem]:
    owner: dict[str, int] = {}
    out = []
    for i, rule in enumerate(rules):
        claims = [("hosts", j, o.host) for j, o in enumerate(rule.origins)]
        claims += [("domains", j, d) for j, d in enumerate(rule.domains)]
        for key, j, name in claims:
            other = owner.setdefault(f"{key}:{name}", i)
            if other != i:
                out.append(
                    SetProblem(
                        i, (key, j), f"{name!r} is already claimed by vendor {rules[other].id!r}"
                    )
                )
    return out


LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})  # never a vendor (DESIGN P6)


def _rule_hosts(
    i: int, rule: VendorRule, is_public_suffix: Callable[[str], bool]
) -> list[SetProblem]:
    out = []
    for j, origin in enumerate(rule.origins):
        if origin.host in LOCAL_NAMES or origin.host.endswith(".localhost"):
            out.append(
                SetProblem(i, ("hosts", j), f"{origin.host!r} is a local name, not a vendor host")
            )
    for j, domain in enumerate(rule.domains):
        if is_public_suffix(domain):  # also checked per file when the loader passes the list
            out.append(
                SetProblem(
                    i,
                    ("domains", j),
                    f"{domain!r} is a public suffix: it would proxy every site under it "
                    "(expected a vendor's own domain like 'jstor.org')",
                )
            )
        if domain in LOCAL_NAMES or domain.endswith(".localhost"):
            out.append(
                SetProblem(i, ("domains", j), f"{domain!r} is a local name, not a vendor domain")
            )
    return out
