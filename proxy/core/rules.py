"""The vendor rule schema: one YAML file per vendor, as frozen, typed values.

Contract: ``VendorRule.model_validate(raw)`` checks one rule on its own (types, unknown keys,
hostnames, header names) and returns an immutable value. Checks across files (duplicate ids,
a host claimed twice, undefined libraries, public-suffix domains) are in core/ruleset.py.
Not here: YAML and files (proxy/rules_loader.py), lookup by host (core/ruleset.RuleIndex).
Each key maps to an EZproxy directive, noted beside it; vendor_rules/README.md documents them.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from proxy.core.databases import Anonymous, Database, check_library_codes
from proxy.core.headers import (
    ALLOWED_REQUEST_HEADERS,
    HOP_BY_HOP,
    IDENTIFYING_REQUEST_HEADERS,
    NEXT_HOP_AUTH,
    SET_BY_PROXY,
)
from proxy.core.hostmap import HostMapError, Origin, hostname_problem
from proxy.core.useragent import UserAgentPolicy

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 §5.6.2 token
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")  # no CR/LF header injection via `set`

# The content types rewritten when a rule does not list its own (issue: HTML, XHTML, CSS,
# JavaScript, JSON, XML/RSS; text/plain off).
DEFAULT_REWRITE_TYPES: tuple[str, ...] = (
    "text/html",
    "application/xhtml+xml",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/json",
    "application/ld+json",
    "text/xml",
    "application/xml",
    "application/rss+xml",
    "application/atom+xml",
)

Rotate = Literal["session", "daily", "weekly", "monthly", "never"]

# --- R17: what a rule may never set, and which ports it may name ---------------------------
# Request framing and body negotiation: a rule-set copy beside the proxy's own lets the vendor
# read a different request boundary than the proxy wrote (RFC 9112 §6.3, request smuggling;
# a duplicate Content-Length did). core/headers.py has no such table, so it is named here.
FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "expect"})
PROXY_HEADER_PREFIX: Final = "proxy-"  # RFC 9110 §11.7: meant for a proxy, never a vendor
# Never in ``headers.set`` nor as ``pseudonym.header``: framing, hop-by-hop, next-hop auth,
# what the proxy itself sets (Host), and everything that identifies a patron (DESIGN P1).
NEVER_SET_BY_RULE: Final = (
    FRAMING_HEADERS | HOP_BY_HOP | NEXT_HOP_AUTH | SET_BY_PROXY | IDENTIFYING_REQUEST_HEADERS
)
# The pseudonym gets a header of its own: not one the browser sends and the policy forwards.
NEVER_PSEUDONYM: Final = NEVER_SET_BY_RULE | ALLOWED_REQUEST_HEADERS
# Ports a rule may always name (RFC 9110 §4.2.1/§4.2.2 defaults and their usual alternates).
WEB_PORTS: Final = frozenset({80, 443, 8080, 8443})
# Registered ports of services that are not web servers (IANA service names): a rule naming
# one would point the relay at a mail, database, remote-shell or cluster-admin service (P6).
# Ports below 1024 other than WEB_PORTS are refused as a whole.
NON_WEB_PORTS: Final = frozenset(
    {
        1080,  # socks
        1433,  # ms-sql-s
        1521,  # oracle
        1883,  # mqtt
        2049,  # nfs
        2375,  # docker
        2376,  # docker-s
        2379,  # etcd-client
        2380,  # etcd-server
        3306,  # mysql
        3389,  # ms-wbt-server (RDP)
        4369,  # epmd
        5432,  # postgresql
        5672,  # amqp
        5900,  # rfb (VNC)
        5984,  # couchdb
        6379,  # redis
        6443,  # kubernetes API
        8500,  # consul
        9042,  # cassandra
        9092,  # kafka
        9200,  # elasticsearch
        9300,  # elasticsearch transport
        10250,  # kubelet
        11211,  # memcache
        27017,  # mongodb
    }
)


def port_problem(port: int) -> str | None:
    """Why a rule may not name ``port``, or None: WEB_PORTS (the scheme defaults among them),
    or ≥ 1024 and not a known non-web service."""
    if port in WEB_PORTS:
        return None
    if port < 1024 or port in NON_WEB_PORTS:
        return (
            f"port {port} is not a web port (allowed: 80, 443, 8080, 8443, or 1024 and above "
            "unless a known non-web service)"
        )
    return None


def _host_entry(raw: str) -> str:
    text = raw.strip().rstrip("/")  # EZproxy configs often carry a stray trailing slash
    try:
        origin = Origin.parse(text)
    except HostMapError as exc:
        raise ValueError(str(exc)) from None
    problem = hostname_problem(origin.host) or port_problem(origin.port)
    if problem:
        raise ValueError(problem)
    return origin.url_prefix()


def _domain_entry(raw: str, info: ValidationInfo) -> str:
    name = raw.strip().lower().removeprefix("*.").removeprefix(".")
    if name and "." not in name and name.isalnum():
        raise ValueError(
            f"{name!r} is a top-level domain, far too wide (expected e.g. 'jstor.org')"
        )
    problem = hostname_problem(name)
    if problem:
        raise ValueError(problem)
    # The public-suffix list is data, passed in by the loader as validation context.
    is_public_suffix = (info.context or {}).get("is_public_suffix")
    if info.field_name == "domains" and is_public_suffix and is_public_suffix(name):
        raise ValueError(
            f"{name!r} is a public suffix: it would proxy every site under it "
            "(expected a vendor's own domain like 'jstor.org')"
        )
    return name


def _third_party_host(raw: str) -> str:
    """A host (or ``*.domain``) for a CSP source list: no scheme, port or path."""
    text = raw.strip().lower()
    name = text.removeprefix("*.")
    problem = hostname_problem(name) if name and "." in name else "expected a host name"
    if problem or "/" in text or ":" in text:
        raise ValueError(f"{raw!r}: {problem or 'a bare host name, no scheme, port or path'}")
    return text


HostEntry = Annotated[str, AfterValidator(_host_entry)]
ThirdPartyHost = Annotated[str, AfterValidator(_third_party_host)]
DomainEntry = Annotated[str, AfterValidator(_domain_entry)]


class Frozen(BaseModel):
    """Immutable; unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Pseudonym(Frozen):
    """The one patron-derived value a vendor may get (DESIGN P2)."""

    header: str = "X-Patron-Pseudonym"
    # #18: `never` keeps one key for good, so the vendor's pseudonyms can always be traced back
    # to patrons (no cryptographic erasure, DESIGN P5): the rule must say why.
    never_reason: Annotated[str, Field(min_length=1)] | None = None
    rotate: Rotate = "session"

    @field_validator("rotate")
    @classmethod
    def _rotate(cls, value: Rotate, info: ValidationInfo) -> Rotate:
        reason = info.data.get("never_reason")
        if value == "never" and not reason:
            raise ValueError(
                "rotate: never keeps this vendor's pseudonyms traceable to patrons for good "
                "(its key is never destroyed): state why in pseudonym.never_reason"
            )
        if value != "never" and reason:
            raise ValueError("never_reason is only for rotate: never")
        return value

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        _check_header_name(value)
        lower = value.lower()
        if lower in NEVER_PSEUDONYM or lower.startswith(PROXY_HEADER_PREFIX):
            raise ValueError(
                f"{value!r} cannot carry the pseudonym: it frames the request, is set by the "
                "proxy or the browser, or identifies the patron (use e.g. X-Patron-Pseudonym)"
            )
        return value


class HeaderRules(Frozen):
    """Request headers beyond the allow-list (EZproxy ``HTTPHeader``)."""

    allow: tuple[str, ...] = ()
    set: dict[str, str] = Field(default_factory=dict)
    user_agent: UserAgentPolicy = "reduced"  # #18: family, major version, platform family

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _check_forwardable(name)
        return tuple(_check_header_name(v).lower() for v in value)

    @field_validator("set")
    @classmethod
    def _set(cls, value: dict[str, str]) -> dict[str, str]:
        for name, val in value.items():
            _check_header_name(name)
            _check_forwardable(name)
            _check_settable(name)
            if CONTROL_CHARS.search(str(val)):
                raise ValueError(f"{name}: header value must not contain control characters")
        return {name: str(val) for name, val in value.items()}


class FindReplace(Frozen):
    """EZproxy ``Find``/``Replace``: a literal substitution in rewritten bodies."""

    find: Annotated[str, Field(min_length=1)]
    replace: str = ""
    content_types: tuple[str, ...] = ()
    url_pattern: str | None = None

    @field_validator("url_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class RewriteRules(Frozen):
    """What bodies are rewritten and how (EZproxy ``MimeFilter``, ``Find``/``Replace``)."""

    content_types: tuple[str, ...] = DEFAULT_REWRITE_TYPES
    find_replace: tuple[FindReplace, ...] = ()
    request_params: tuple[str, ...] = ()


class RuleTimeouts(Frozen):
    """Per-vendor overrides of the global upstream timeouts (seconds)."""

    connect: Annotated[float, Field(gt=0, le=120)] | None = None
    first_byte: Annotated[float, Field(gt=0, le=600)] | None = None
    idle_read: Annotated[float, Field(gt=0, le=600)] | None = None


class RuleLimits(Frozen):
    """Per-vendor overrides of the per-session abuse limits (EZproxy UsageLimit)."""

    requests: Annotated[int, Field(ge=1)] | None = None
    megabytes: Annotated[int, Field(ge=1)] | None = None
    downloads: Annotated[int, Field(ge=1)] | None = None


class VendorRule(Frozen):
    """A platform (hosts, policy) and the databases on it (EZproxy stanzas sharing hosts).

    A rule without ``databases`` is its own one database (its id, title, url, licence);
    with ``databases``, ``title``/``url`` default to the first database's.
    """

    id: str
    title: str  # EZproxy Title
    url: str  # EZproxy URL: the starting point
    description: str = ""
    hide: bool = False  # EZproxy Title -Hide (a one-database rule)
    databases: tuple[Database, ...] = ()
    anonymous: tuple[Anonymous, ...] = ()  # EZproxy AnonymousURL
    hosts: tuple[HostEntry, ...] = ()  # EZproxy Host / HJ: host[:port], optional http:// prefix
    domains: tuple[DomainEntry, ...] = ()  # EZproxy Domain / DJ: the domain and any subdomain
    never_proxy: tuple[DomainEntry, ...] = ()  # EZproxy NeverProxy
    libraries: Literal["all"] | tuple[str, ...] = "all"  # EZproxy Group
    ptypes: tuple[str, ...] | None = None
    pseudonym: Pseudonym | None = None
    headers: HeaderRules = HeaderRules()
    cookies: Literal["server_side", "pass"] = "server_side"
    rewrite: RewriteRules = RewriteRules()
    # #18.8: contained by default; a vendor's truly needed hosts (a font or MathJax CDN) go in
    # third_party_allow, added to that rule's CSP source list.
    third_party: Literal["allow", "report", "block"] = "block"
    third_party_allow: tuple[ThirdPartyHost, ...] = ()
    timeouts: RuleTimeouts = RuleTimeouts()
    limits: RuleLimits = RuleLimits()

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError("id must be a slug: lowercase letters, digits, '-' or '_'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _platform_defaults(cls, data: object) -> object:
        """With ``databases``, the rule's title and url default to the first database's."""
        if not isinstance(data, dict) or not isinstance(data.get("databases"), list | tuple):
            return data
        first = next((d for d in data["databases"] if isinstance(d, dict)), None)
        if first is None:
            return data
        return {"title": first.get("title"), "url": first.get("url"), **data}

    @field_validator("libraries")
    @classmethod
    def _libraries(
        cls, value: Literal["all"] | tuple[str, ...], info: ValidationInfo
    ) -> Literal["all"] | tuple[str, ...]:
        checked = check_library_codes(value, info)  # codes from proxy.yaml, via the loader
        return value if checked is None else checked

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {value!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"not an http(s) URL: {value!r}") from None
        problem = port_problem(port) if port is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _url_is_covered(self) -> VendorRule:
        if not self.hosts and not self.domains:
            raise ValueError("a rule needs at least one entry in hosts or domains")
        host = (urlsplit(self.url).hostname or "").lower()
        if not self.covers(host):
            raise ValueError(f"url host {host!r} is not in this rule's hosts or domains")
        for i, db in enumerate(self.databases):
            host = (urlsplit(db.url).hostname or "").lower()
            if not self.covers(host):
                raise ValueError(
                    f"databases[{i}] ({db.id}): url host {host!r} is not in this rule's hosts "
                    "or domains"
                )
        return self

    @model_validator(mode="after")
    def _anonymous_stays_on_own_hosts(self) -> VendorRule:
        """P6: an anonymous URL pattern names only hosts this rule covers."""
        for i, entry in enumerate(self.anonymous):
            for host in entry.url_hosts():
                bare = host.removeprefix("*.")
                if "*" in bare or not self.covers(bare):
                    raise ValueError(
                        f"anonymous[{i}]: host {host!r} is not one of this rule's hosts or "
                        "domains (an anonymous pattern cannot widen them)"
                    )
        return self

    @model_validator(mode="after")
    def _database_ids_unique(self) -> VendorRule:
        seen: set[str] = set()
        for db in self.databases:
            if db.id in seen:
                raise ValueError(f"databases: id {db.id!r} appears twice")
            seen.add(db.id)
        return self

    def all_databases(self) -> tuple[Database, ...]:
        """The databases on this platform, licence defaults filled in from the rule."""
        return self._catalogue

    @cached_property
    def _catalogue(self) -> tuple[Database, ...]:  # built once: licensed_to runs per request
        if not self.databases:
            return (
                Database(
                    id=self.id,
                    title=self.title,
                    url=self.url,
                    description=self.description,
                    libraries=self.libraries,
                    ptypes=self.ptypes,
                    hide=self.hide,
                ),
            )
        return tuple(
            db.model_copy(
                update={
                    "libraries": self.libraries if db.libraries is None else db.libraries,
                    "ptypes": self.ptypes if db.ptypes is None else db.ptypes,
                }
            )
            for db in self.databases
        )

    @model_validator(mode="after")
    def _third_party_allow_blocks(self) -> VendorRule:
        if self.third_party_allow and self.third_party != "block":
            raise ValueError("third_party_allow applies only with third_party: block")
        return self

    def third_party_allowed(self, host: str) -> bool:
        """True when ``host`` is in third_party_allow (``*.d`` covers hosts under d)."""
        host = host.lower()
        return any(
            host.endswith(a[1:]) if a.startswith("*.") else host == a
            for a in self.third_party_allow
        )

    @property
    def origins(self) -> tuple[Origin, ...]:
        """The exact hosts as origins (scheme, host, port)."""
        return tuple(Origin.parse(h) for h in self.hosts)

    def covers(self, host: str) -> bool:
        """True when ``host`` is one of this rule's hosts or under one of its domains."""
        host = host.lower()
        if any(host == n or host.endswith("." + n) for n in self.never_proxy):
            return False
        if any(o.host == host for o in self.origins):
            return True
        return any(host == d or host.endswith("." + d) for d in self.domains)

    def licensed_to(self, library: str, ptype: str | None = None) -> bool:
        """True when the library (and patron type) licenses at least one of the platform's
        databases: as EZproxy, the vendor enforces which databases it subscribes to.
        A loop, not ``any(generator)``: this runs on every relayed request (2.1 → 1.0 µs)."""
        for db in self._catalogue:  # noqa: SIM110 (see the docstring)
            if db.licensed_to(library, ptype):
                return True
        return False

    def anonymous_allows(self, method: str, scheme: str, host: str, path: str) -> bool:
        """True when an ``anonymous`` entry lets this request through without a session."""
        return any(a.matches(method, scheme, host, path) for a in self.anonymous)


def _check_forwardable(name: str) -> None:
    lower = name.lower()
    if lower in IDENTIFYING_REQUEST_HEADERS or lower in HOP_BY_HOP or lower == "host":
        raise ValueError(
            f"{name!r} is never sent to vendors (it identifies the patron or "
            "belongs to one connection; DESIGN P1)"
        )


def _check_settable(name: str) -> None:
    lower = name.lower()
    if lower in NEVER_SET_BY_RULE or lower.startswith(PROXY_HEADER_PREFIX):
        raise ValueError(
            f"{name!r} may not be set by a rule: it frames the request or is the proxy's own "
            "(a second Content-Length smuggles requests)"
        )


def _check_header_name(value: str) -> str:
    if not HEADER_NAME.match(value):
        raise ValueError(f"not a header name: {value!r}")
    return value
