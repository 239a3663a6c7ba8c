"""What the relay compiles once per rule set, so the hot path only looks things up.

Contract: ``RuleSetCache(hostmap, settings).tools(loaded)`` hands out one ``RuleSetTools``
per rule set (compared by identity, rebuilt when a reload swaps the rules): the URL mapper,
the body rewriter, the third-party CSP, and per rule id its outgoing header policy,
request_params names and merged abuse limits. Nothing in them changes after they are built.
Not here: using them (web/relay.py), the policies themselves (core/headers.py,
core/abuse.py, core/rewrite.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from proxy.core.abuse import AbuseLimits, merged_limits
from proxy.core.headers import OutgoingPolicy
from proxy.core.hostmap import HostMap
from proxy.core.rewrite import HostRewriter
from proxy.core.rules import VendorRule
from proxy.core.settings import Settings
from proxy.core.urlmap import UrlMapper
from proxy.rules_loader import LoadedRules
from proxy.web.bodies import third_party_csp


@dataclass(frozen=True, slots=True)
class RuleTools:
    """One rule's values, derived once (profiled: rebuilding them cost per request)."""

    policy: OutgoingPolicy
    request_params: frozenset[str]
    limits: AbuseLimits


@dataclass(frozen=True, slots=True)
class RuleSetTools:
    """The URL mapper, the rewriter and every rule's ``RuleTools``."""

    mapper: UrlMapper
    rewriter: HostRewriter
    per_rule: Mapping[str, RuleTools]
    block_csp: str  # the Content-Security-Policy added for ``third_party: block`` rules


def rule_tools(rule: VendorRule, settings: Settings) -> RuleTools:
    """A rule's header policy, request_params and limits (global limits merged in)."""
    headers = rule.headers
    return RuleTools(
        OutgoingPolicy(frozenset(headers.allow), headers.set, headers.user_agent),
        frozenset(rule.rewrite.request_params),
        merged_limits(settings.limits, rule.limits),
    )


def compile_tools(loaded: LoadedRules, hostmap: HostMap, settings: Settings) -> RuleSetTools:
    """Everything the relay needs for one rule set."""
    scheme = settings.public_scheme
    return RuleSetTools(
        UrlMapper(hostmap, loaded.index, scheme),
        HostRewriter.build(loaded.index, hostmap, scheme),
        {rule.id: rule_tools(rule, settings) for rule in loaded.rules},
        third_party_csp(scheme, settings.proxy_host, settings.proxy_port),
    )


class RuleSetCache:
    """One ``RuleSetTools`` per rule set (rebuilt when a reload swaps the rules)."""

    def __init__(self, hostmap: HostMap, settings: Settings) -> None:
        self._hostmap = hostmap
        self._settings = settings
        self._for: LoadedRules | None = None
        self._tools: RuleSetTools | None = None

    def tools(self, loaded: LoadedRules) -> RuleSetTools:
        """The tools for ``loaded`` (compared by identity)."""
        if self._tools is None or self._for is not loaded:
            self._tools = compile_tools(loaded, self._hostmap, self._settings)
            self._for = loaded
        return self._tools
