"""One rule set, compiled: the immutable value a relayed request reads once and keeps.

Contract: ``compile_snapshot(rules, index, sources, hostmap, settings)`` returns a
``RuleSnapshot`` — the rules, their index, the URL mapper, the body rewriter and, per rule
id, the values derived from it once (outgoing header policy, request_params names, merged
abuse limits, the third-party CSP with the rule's allowed hosts). ``Rulebook``
(proxy/rulebook.py) builds one per successful (re)load and swaps it in one assignment; the
relay reads the live one once per request and passes it down, so a reload never mixes two
sets in one request. Nothing in a snapshot changes after it is built.
Not here: loading the rules (rules_loader.py), the live holder (rulebook.py), using the
values (core/decision.py, core/responseplan.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from proxy.core.abuse import AbuseLimits, merged_limits
from proxy.core.headers import OutgoingPolicy
from proxy.core.hostmap import HostMap
from proxy.core.rewrite import HostRewriter
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex
from proxy.core.settings import Settings
from proxy.core.urlmap import UrlMapper


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule and its values derived once (profiled: rebuilding them cost per request)."""

    rule: VendorRule
    policy: OutgoingPolicy
    request_params: frozenset[str]
    limits: AbuseLimits
    csp: str | None  # the containing Content-Security-Policy (``third_party: block``), or None


@dataclass(frozen=True, slots=True)
class RuleSnapshot:
    """A rule set that passed every check, compiled for the relay."""

    rules: tuple[VendorRule, ...]
    index: RuleIndex
    sources: Mapping[str, str]  # rule id -> file path
    hostmap: HostMap
    mapper: UrlMapper
    rewriter: HostRewriter
    compiled: Mapping[str, CompiledRule]  # rule id -> its compiled values
    public_url: str  # where /login lives
    max_decoded: int  # bytes a rewritten body may decode to (decompression bombs)


def compile_rule(rule: VendorRule, settings: Settings) -> CompiledRule:
    """A rule's header policy, request_params and limits (global limits merged in)."""
    headers = rule.headers
    return CompiledRule(
        rule,
        OutgoingPolicy(frozenset(headers.allow), headers.set, headers.user_agent),
        frozenset(rule.rewrite.request_params),
        merged_limits(settings.limits, rule.limits),
        rule_csp(rule, settings),
    )


def rule_csp(rule: VendorRule, settings: Settings) -> str | None:
    """The rule's containing CSP (its third_party_allow hosts added), or None if not blocking."""
    if rule.third_party != "block":
        return None
    port = settings.proxy_port
    return third_party_csp(
        settings.public_scheme, settings.proxy_host, port, rule.third_party_allow
    )


def compile_snapshot(
    rules: tuple[VendorRule, ...],
    index: RuleIndex,
    sources: Mapping[str, str],
    hostmap: HostMap,
    settings: Settings,
) -> RuleSnapshot:
    """Everything the relay needs for one rule set, built once per (re)load."""
    scheme = settings.public_scheme
    return RuleSnapshot(
        rules,
        index,
        sources,
        hostmap,
        UrlMapper(hostmap, index, scheme),
        HostRewriter.build(index, hostmap, scheme),
        {rule.id: compile_rule(rule, settings) for rule in rules},
        settings.public_url,
        settings.max_rewrite_megabytes * 2**20,
    )


SnapshotCompiler = Callable[[tuple[VendorRule, ...], RuleIndex, Mapping[str, str]], RuleSnapshot]


def third_party_csp(
    public_scheme: str, proxy_host: str, proxy_port: int | None, allow: tuple[str, ...] = ()
) -> str:
    """A CSP that lets a page load only from proxy hosts, data:, blob: and the rule's
    ``third_party_allow`` hosts over https (third_party: block).

    Inline scripts and styles stay allowed: vendor pages depend on them, and they run on the
    proxy's hosts anyway; what the policy stops is the browser contacting other hosts.
    """
    port = f":{proxy_port}" if proxy_port else ""
    hosts = f"{public_scheme}://{proxy_host}{port} {public_scheme}://*.{proxy_host}{port}"
    allowed = "".join(f" https://{host}" for host in allow)  # fonts, scripts, images, ...
    return (
        f"default-src 'self' {hosts}{allowed} data: blob: 'unsafe-inline' 'unsafe-eval'; "
        f"form-action 'self' {hosts}; frame-ancestors 'self' {hosts}"
    )
