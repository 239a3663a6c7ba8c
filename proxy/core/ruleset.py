"""A validated set of vendor rules and the host → rule index the proxy looks up per request.

Contract: ``check_ruleset`` takes rules already valid on their own and returns every problem
across them (duplicate ids, a host or domain claimed twice, libraries proxy.yaml does not
define, public-suffix domains, IP literals or localhost, the proxy's own host, wildcard-DNS
and shared-hosting domains); ``RuleIndex`` answers "which rule
covers this host?" in O(labels). Pure: the public-suffix test is passed in as a function.
Not here: files and YAML (rules_loader), the per-request decision (core/decide).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from proxy.core.databases import Database
from proxy.core.hostmap import Origin
from proxy.core.rules import VendorRule


def slug(text: str) -> str:
    """'Acme Journal Archive' → 'acme-journal-archive' (how /login/<name> links match)."""
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


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
    # database id or slug of its title → (rule, database); /login/<name> (first claim wins)
    databases: dict[str, tuple[VendorRule, Database]] = field(default_factory=dict)

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
        for rule in rules:
            for db in rule.all_databases():
                index.databases.setdefault(db.id, (rule, db))
        for rule in rules:  # titles after ids: an id always wins over another's title
            for db in rule.all_databases():
                index.databases.setdefault(slug(db.title), (rule, db))
        return index

    def database_named(self, name: str) -> tuple[VendorRule, Database] | None:
        """``/login/<id or title>``: the database with that id, or whose title slugs to it."""
        found = self.databases.get(name) or self.databases.get(slug(name))
        if found is None and name in self.by_id:  # a platform's own id: its first database
            rule = self.by_id[name]
            found = (rule, rule.all_databases()[0])
        return found

    def database_for_url(self, rule: VendorRule, url: str) -> Database | None:
        """The database whose starting URL a link is (for statistics), or None.

        Exact URL first, then the longest starting URL the link begins with.
        """
        dbs = rule.all_databases()
        if len(dbs) == 1:
            return dbs[0]
        exact = next((d for d in dbs if d.url == url), None)
        if exact is not None:
            return exact
        prefixes = [d for d in dbs if url.startswith(d.url)]
        return max(prefixes, key=lambda d: len(d.url), default=None)

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
    proxy_host: str | None = None,
) -> list[SetProblem]:
    """Every problem across the rules; an empty list means the set may be loaded.

    ``proxy_host`` (from proxy.yaml's public_url; None without a config) may be neither a
    rule's host or domain, nor under one, nor above one.
    """
    problems: list[SetProblem] = []
    problems += _duplicate_ids(rules)
    problems += _claimed_twice(rules)
    problems += database_problems(rules)
    for i, rule in enumerate(rules):
        problems += _rule_hosts(i, rule, is_public_suffix)
        problems += _shared_names(i, rule)
        if proxy_host:
            problems += _proxy_host(i, rule, proxy_host.lower())
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


# Wildcard-DNS services: any name under them resolves to the address it spells
# (10.0.0.1.nip.io → 10.0.0.1), so a rule naming them names every address (DESIGN P6, R17).
# None is on the public suffix list, so the PSL check cannot catch them.
WILDCARD_DNS_DOMAINS: Final = frozenset(
    {
        "nip.io",
        "sslip.io",
        "xip.io",
        "traefik.me",
        "localtest.me",
        "lvh.me",
        "vcap.me",
        "lacolhost.com",
    }
)
# Shared hosting and CDN domains: one tenant's site sits beside any other's, so a rule may
# name one tenant's host (d123.cloudfront.net) but never the shared domain itself (R17).
# Most are on the PSL's private section too (checked with the bundled list: cloudfront.net,
# herokuapp.com, azurewebsites.net, appspot.com, github.io… are; amazonaws.com, fastly.net,
# windows.net, googleusercontent.com, wordpress.com are not): named here so the check does
# not depend on the list's version.
SHARED_HOSTING_DOMAINS: Final = frozenset(
    {
        "amazonaws.com",
        "cloudfront.net",
        "herokuapp.com",
        "azurewebsites.net",
        "azureedge.net",
        "windows.net",
        "appspot.com",
        "googleapis.com",
        "googleusercontent.com",
        "firebaseapp.com",
        "web.app",
        "github.io",
        "gitlab.io",
        "vercel.app",
        "netlify.app",
        "pages.dev",
        "workers.dev",
        "fastly.net",
        "akamaihd.net",
        "blogspot.com",
        "wordpress.com",
        "ngrok.io",
        "ngrok-free.app",
        "readthedocs.io",
    }
)


def _under(name: str, parent: str) -> bool:
    """True when ``name`` is ``parent`` or a subdomain of it."""
    return name == parent or name.endswith("." + parent)


def _names(rule: VendorRule) -> list[tuple[tuple[str | int, ...], str]]:
    """Every (key, name) a rule claims: exact hosts and domains."""
    out: list[tuple[tuple[str | int, ...], str]] = [
        (("hosts", j), o.host) for j, o in enumerate(rule.origins)
    ]
    return out + [(("domains", j), d) for j, d in enumerate(rule.domains)]


def _shared_names(i: int, rule: VendorRule) -> list[SetProblem]:
    out = []
    for key, name in _names(rule):
        wildcard = next((w for w in WILDCARD_DNS_DOMAINS if _under(name, w)), None)
        if wildcard is not None:
            out.append(
                SetProblem(
                    i,
                    key,
                    f"{name!r} is under {wildcard!r}, a wildcard-DNS domain whose names resolve "
                    "to any address; never a vendor",
                )
            )
        elif key[0] == "domains" and name in SHARED_HOSTING_DOMAINS:
            out.append(
                SetProblem(
                    i,
                    key,
                    f"{name!r} is a shared hosting domain: it would proxy every tenant's site "
                    "(name the vendor's own host under it in hosts instead)",
                )
            )
    return out


def _proxy_host(i: int, rule: VendorRule, proxy_host: str) -> list[SetProblem]:
    out = []
    for key, name in _names(rule):
        if _under(name, proxy_host):
            message = f"{name!r} is the proxy's own host {proxy_host!r} or under it"
        elif key[0] == "domains" and _under(proxy_host, name):
            message = f"{name!r} covers the proxy's own host {proxy_host!r}"
        else:
            continue
        out.append(SetProblem(i, key, message + ": the proxy would relay to itself"))
    return out


def database_problems(rules: Sequence[VendorRule]) -> list[SetProblem]:
    """#17: a database whose starting URL is excluded by any rule's never_proxy (the link
    could never be proxied, and one such entry broke the menu), or whose id another
    database already uses (``/login/<id>`` would be ambiguous)."""
    never = [(r.id, n) for r in rules for n in r.never_proxy]
    ids: dict[str, str] = {}
    out: list[SetProblem] = []
    for i, rule in enumerate(rules):
        for j, db in enumerate(rule.all_databases()):
            key: tuple[str | int, ...] = ("databases", j) if rule.databases else ("url",)
            host = (urlsplit(db.url).hostname or "").lower()
            by = next((f"{o}'s never_proxy {n!r}" for o, n in never if _under(host, n)), None)
            if by:
                why = f"{db.id}: starting URL host {host!r} is excluded by {by}"
                out.append(SetProblem(i, key, why + ": the link could never be proxied"))
            other = ids.setdefault(db.id, rule.id)
            if other != rule.id:
                out.append(SetProblem(i, key, f"database id {db.id!r} is also in rule {other!r}"))
    return out


def title_collisions(rules: Sequence[VendorRule]) -> list[SetProblem]:
    """Databases whose titles slug alike: ``/login/<title>`` picks the first (a warning)."""
    owners: dict[str, str] = {}
    out: list[SetProblem] = []
    for i, rule in enumerate(rules):
        for j, db in enumerate(rule.all_databases()):
            name, me = slug(db.title), f"{rule.id}/{db.id}"
            owner = owners.setdefault(name, me)
            if owner != me:
                key: tuple[str | int, ...] = ("databases", j) if rule.databases else ("title",)
                why = f"title {db.title!r} is also {owner}'s: /login/{name} goes to {owner}"
                out.append(SetProblem(i, key, why))
    return out
