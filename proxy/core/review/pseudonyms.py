"""P2 review detectors: each vendor gets its pseudonym only in its own header, unlinkably.

Contract: pure functions over ``ObservedRequest`` values and the rule index. ``pseudonym_check``
returns a ``PseudonymUse`` summary per vendor and the P2 failures (one value sent to several
vendors, another vendor's pseudonym header, a pseudonym outside its header); pseudonym values
are counted, never listed.
Not here: deriving pseudonyms (core/pseudonym.py), P1 detectors (identifying.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from proxy.core.review.observed import Finding, ObservedRequest, request_parts
from proxy.core.ruleset import RuleIndex


@dataclass(frozen=True, slots=True)
class PseudonymUse:
    """How one vendor received its pseudonym (values are counted, never listed)."""

    vendor: str
    header: str | None
    requests_with: int
    requests_without: int
    distinct_values: int


def _pseudonym_headers(index: RuleIndex) -> dict[str, str]:
    """Lowercase pseudonym header -> vendor id, for every rule that has one."""
    return {r.pseudonym.header.lower(): r.id for r in index.rules if r.pseudonym is not None}


def pseudonym_values(
    requests: Iterable[ObservedRequest], index: RuleIndex
) -> dict[str, dict[str, int]]:
    """Vendor id -> {pseudonym value -> requests carrying it in the vendor's own header}."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for request in requests:
        rule = index.rule_for(request.host)
        if rule is None or rule.pseudonym is None:
            continue
        for value in request.values(rule.pseudonym.header):
            out[rule.id][value] = out[rule.id].get(value, 0) + 1
    return dict(out)


def pseudonym_check(
    requests: Sequence[ObservedRequest], index: RuleIndex
) -> tuple[list[PseudonymUse], list[Finding]]:
    """P2: each vendor gets its pseudonym only in its own header, unlinkable to others'."""
    values = pseudonym_values(requests, index)
    owners: dict[str, set[str]] = defaultdict(set)
    for vendor, seen in values.items():
        for value in seen:
            owners[value].add(vendor)
    findings = [
        Finding("P2", f"one pseudonym value sent to {len(vendors)} vendors", "pseudonym", "")
        for vendors in owners.values()
        if len(vendors) > 1
    ]
    for request in requests:
        findings += _misplaced_pseudonyms(request, index, owners)
    return _uses(requests, index, values), findings


def _misplaced_pseudonyms(
    request: ObservedRequest, index: RuleIndex, owners: Mapping[str, set[str]]
) -> list[Finding]:
    rule = index.rule_for(request.host)
    own_vendor = rule.id if rule is not None else ""
    own_header = rule.pseudonym.header.lower() if rule and rule.pseudonym else None
    found = [
        Finding("P2", f"vendor {vendor!r}'s pseudonym header sent", f"header {name}", request.host)
        for name, vendor in _pseudonym_headers(index).items()
        if vendor != own_vendor and request.values(name)
    ]
    for where, text in request_parts(request):
        if own_header and where.lower() == f"header {own_header}":
            continue
        for value, vendors in owners.items():
            if value and value in text:
                whose = "its own" if vendors == {own_vendor} else "another vendor's"
                found.append(
                    Finding("P2", f"{whose} pseudonym outside its header", where, request.host)
                )
    return found


def _uses(
    requests: Sequence[ObservedRequest], index: RuleIndex, values: Mapping[str, Mapping[str, int]]
) -> list[PseudonymUse]:
    totals = Counter(rule.id for r in requests if (rule := index.rule_for(r.host)) is not None)
    out = []
    for vendor, total in sorted(totals.items()):
        rule = index.by_id[vendor]
        header = rule.pseudonym.header if rule.pseudonym is not None else None
        carrying = sum(values.get(vendor, {}).values())
        out.append(
            PseudonymUse(vendor, header, carrying, total - carrying, len(values.get(vendor, {})))
        )
    return out
