"""The main configuration (``proxy.yaml``) as frozen, typed values.

Contract: ``Settings.model_validate(raw)`` turns the plain data of proxy.yaml into immutable
values or raises pydantic's ``ValidationError`` (the loader turns that into file:line:key
problems). Unknown keys are errors: a typo must never be silently ignored.
Not here: reading files or environment variables (proxy/config_loader.py), vendor rules
(core/rules.py).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from proxy.core.authconfig import LibraryAuth
from proxy.core.frozen import Frozen

LIBRARY_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
CheckDigit = Literal["luhn", "mod10_weighted_31", "none"]


def _override_origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"must be an origin like 'http://127.0.0.1:9001' (got {value!r})")
    return value.rstrip("/")


OverrideOrigin = Annotated[str, AfterValidator(_override_origin)]


class Listen(Frozen):
    """Where a listener binds."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080


class Library(Frozen):
    """A member library of the consortium and how its cards look."""

    code: str
    name: str
    prefix: str = ""
    length: Annotated[int, Field(ge=4, le=32)] = 14
    check_digit: CheckDigit = "none"
    remote_ptypes: tuple[str, ...] = ()
    login_with: Literal["pin", "last_name"] = "pin"
    auto_login_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    auth: LibraryAuth = LibraryAuth()  # #16: registry (default), sip2, ldap, or a list in order

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not LIBRARY_CODE.match(value):
            raise ValueError("library code must be 1-32 letters, digits, '_' or '-'")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and not value.isdigit():
            raise ValueError("barcode prefix must be digits")
        return value

    @model_validator(mode="after")
    def _prefix_fits(self) -> Library:
        if len(self.prefix) >= self.length:
            raise ValueError(f"prefix {self.prefix!r} is not shorter than length {self.length}")
        return self

    @model_validator(mode="after")
    def _live_auth_takes_a_pin(self) -> Library:  # #16: SIP2 sends a PIN, LDAP a password
        if self.auth.live and self.login_with != "pin":
            raise ValueError("auth sip2/ldap checks a PIN or password: login_with must be pin")
        return self


class Sessions(Frozen):
    """Patron session lifetimes."""

    idle_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 120
    lifetime_hours: Annotated[int, Field(ge=1, le=24 * 14)] = 12
    max_per_card: Annotated[int, Field(ge=1, le=1000)] = 10  # R11: the oldest session ends
    # #18.4: a browser-session cookie by default (shared PCs); True adds Max-Age=lifetime
    persistent_cookie: bool = False


class Timeouts(Frozen):
    """Upstream timeouts in seconds (a rule may override them), and the patron side's."""

    connect: Annotated[float, Field(gt=0, le=120)] = 10.0
    first_byte: Annotated[float, Field(gt=0, le=600)] = 30.0
    idle_read: Annotated[float, Field(gt=0, le=600)] = 60.0
    # A browser connection that has not sent a whole request within this many seconds (slow
    # headers, or idle keep-alive) is closed: aiohttp's only guard, default ~1 h otherwise.
    client_idle: Annotated[float, Field(gt=0, le=3600)] = 15.0
    # Longest silence while a request body is being uploaded.
    client_body: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # R9: a whole request body must arrive within client_body_total seconds plus its size
    # (declared, or seen so far) at client_body_min_rate bytes per second, or it gets a 408.
    client_body_total: Annotated[float, Field(gt=0, le=3600)] = 60.0
    client_body_min_rate: Annotated[float, Field(gt=0)] = 8192.0


# --- upstream: the connection pool to vendors and its DNS lookups ---------------------------


class Upstream(Frozen):
    """Limits of the connection pool to vendors and of its DNS lookups (R3, R14)."""

    max_total: Annotated[int, Field(ge=1, le=100_000)] = 256  # open connections in all
    max_per_host: Annotated[int, Field(ge=1, le=100_000)] = 100  # per vendor host and port
    # A request that waits longer than this for a free connection slot gets a 503 page.
    queue_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    # A vendor response the browser leaves unread this long is closed (its slot freed).
    unread_timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0
    dns_threads: Annotated[int, Field(ge=1, le=64)] = 4  # the resolver's own threads
    dns_per_domain: Annotated[int, Field(ge=1, le=64)] = 2  # lookups at once per domain
    dns_negative_ttl: Annotated[float, Field(ge=0, le=3600)] = 10.0  # failed lookups cached

    @model_validator(mode="after")
    def _per_host_fits(self) -> Upstream:
        if self.max_per_host > self.max_total:
            raise ValueError("max_per_host must not exceed max_total")
        return self


# --- end of upstream -------------------------------------------------------------------------


class Throttle(Frozen):
    """Failed-login limits (EZproxy IntruderUserAttempts / IntruderIPAttempts)."""

    card_attempts: Annotated[int, Field(ge=1, le=1000)] = 5
    ip_attempts: Annotated[int, Field(ge=1, le=100_000)] = 20
    global_attempts: Annotated[int, Field(ge=1, le=10_000_000)] = 2000
    window_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    lockout_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    # R4: failures per client network (IPv4 /ipv4_prefix, IPv6 /ipv6_prefix) before it locks;
    # global_attempts only raises an alarm (logged, counted) that slows logins by
    # alarm_delay_ms while it lasts, never a refusal.
    network_attempts: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    ipv4_prefix: Annotated[int, Field(ge=8, le=32)] = 24
    ipv6_prefix: Annotated[int, Field(ge=16, le=128)] = 64
    alarm_delay_ms: Annotated[int, Field(ge=0, le=5000)] = 1000
    card_logins_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 10  # R11: good logins


class LoginLimits(Frozen):
    """R9/R6: the login form's body limits, and whether logout sends Clear-Site-Data."""

    body_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0  # whole body within → else 408
    max_body_bytes: Annotated[int, Field(ge=1024, le=65536)] = 8192  # larger → 413
    # "auto": only when the proxy host is itself a registrable domain (docs/security.md).
    clear_site_data: Literal["auto", "always", "never"] = "auto"


class Retention(Frozen):
    """How long things are kept before the purge deletes them."""

    epoch_key_days: Annotated[int, Field(ge=1, le=3650)] = 90
    daily_stats_days: Annotated[int, Field(ge=1, le=3650)] = 400
    abuse_event_days: Annotated[int, Field(ge=1, le=3650)] = 30


class UsageLimits(Frozen):
    """Per-session abuse limits within an interval (EZproxy UsageLimit); null = no limit."""

    interval_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    requests: Annotated[int, Field(ge=1)] | None = 5000
    megabytes: Annotated[int, Field(ge=1)] | None = 2000
    downloads: Annotated[int, Field(ge=1)] | None = 300
    card_networks: Annotated[int, Field(ge=1)] | None = 4
    card_networks_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 60
    card_networks_action: Literal["log", "block"] = "log"
    # How long a card (or a card-less session) stays suspended after crossing a limit.
    suspension_minutes: Annotated[int, Field(ge=1, le=90 * 24 * 60)] = 24 * 60


# --- relay limits (R3) -------------------------------------------------------------------
class RelayLimits(Frozen):
    """What one patron may hold at once, so that one cannot hang vendors for everyone."""

    # Concurrent relayed requests per session and per client address; more → 429.
    concurrent_per_session: Annotated[int, Field(ge=1, le=10_000)] = 32
    concurrent_per_address: Annotated[int, Field(ge=1, le=100_000)] = 64
    # A browser that accepts none of a response for this many seconds is disconnected, and
    # the vendor connection it held goes back.
    client_write_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0


# --- end relay limits ---------------------------------------------------------------------


class TLS(Frozen):
    """HTTPS for the portal and every mapped host, from one wildcard certificate."""

    cert: str  # PEM chain: leaf for <proxy host> and *.<proxy host>, then intermediates
    key: str  # PEM private key, mode 0600
    http_redirect_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    # HSTS on portal pages always; includeSubDomains only on request (it pins every name under
    # the proxy host to HTTPS for a year).
    hsts_include_subdomains: bool = False


class ReviewCard(Frozen):
    """A staff test card for vendor reviews; its values are the review's canaries."""

    card: str
    pin: str
    name: str = "Review Canary"
    email: str = "review.canary@example.invalid"
    library: str = ""
    ptype: str = ""


class Admin(Frozen):
    """The admin console listener (loopback by default)."""

    enabled: bool = True
    listen: Listen = Listen(host="127.0.0.1", port=8081)
    # A console sign-in (server-side session) ends after this idle time or this age.
    session_idle_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 30
    session_hours: Annotated[int, Field(ge=1, le=24 * 7)] = 8
    # Staff actions (issue #20) are kept this long in data_dir/audit.sqlite3.
    audit_days: Annotated[int, Field(ge=1, le=3660)] = 365
    # /metrics without an API key from these addresses (e.g. the Prometheus host).
    metrics_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


class ServerLimits(Frozen):
    """Connection caps at accept time (a flood from one host must not starve the others)."""

    max_connections_per_address: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    # Lowered at start-up to what RLIMIT_NOFILE allows (half the free descriptors).
    max_connections: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000


class MenuSettings(Frozen):
    """#17: the database menu; ``public`` also lists every database before login, for
    library websites to link to (no licence is shown, links still need a login)."""

    public: bool = False


REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})  # redis-py's from_url: TCP, TLS, socket


class State(Frozen):
    """``state:``: where shared state lives (#15, docs/scaling.md). ``local``: SQLite files and
    memory, one process per data_dir; ``redis``: sessions, jars, throttles, suspensions and
    usage in Redis, shared by every worker and node."""

    backend: Literal["local", "redis"] = "local"
    url: str | None = None  # redis://host:6379/0, rediss:// (TLS), unix:///run/redis.sock
    password_file: str | None = None  # a secret file (mode 0600) holding the Redis password
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9:_.-]{1,64}$")] = "clamshell:"
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    command_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _redis_needs_url(self) -> State:
        if self.backend == "redis" and self.url is None:
            raise ValueError("backend redis needs url (e.g. redis://127.0.0.1:6379/0)")
        return self


class Pages(Frozen):
    """#21: the patron pages' override folder (templates and/or brand.yaml); None = defaults."""

    dir: str | None = None
    default_language: Literal["en", "es", "pt"] = "en"  # when Accept-Language matches none


class Settings(Frozen):
    """Everything in proxy.yaml."""

    consortium_name: str = "Library Consortium"
    public_url: str = "http://proxy.localhost:8080"
    listen: Listen = Listen()
    data_dir: str = "./data"
    rules_dir: str = "./vendor_rules"
    log_format: Literal["auto", "json", "console"] = "auto"
    libraries: tuple[Library, ...] = ()
    upstream_overrides: dict[str, OverrideOrigin] = Field(default_factory=dict)
    sessions: Sessions = Sessions()
    throttle: Throttle = Throttle()
    retention: Retention = Retention()
    limits: UsageLimits = UsageLimits()
    relay: RelayLimits = RelayLimits()  # R3: per-patron concurrency and slow-reader deadline
    access_log: bool = False
    # --- R23: the access log's path column (a reading history); see docs/privacy.md -------
    access_log_format: Literal["no_path", "combined", "ezpaarse"] = "no_path"  # #18: ezpaarse
    # ----------------------------------------------------------------------------------------
    max_rewrite_megabytes: Annotated[int, Field(ge=1, le=4096)] = 64  # decoded size cap
    tls: TLS | None = None
    upstream_ca: str | None = None  # extra CA bundle to trust for vendors (tests, private CAs)
    review: ReviewCard | None = None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    timeouts: Timeouts = Timeouts()
    admin: Admin = Admin()
    server: ServerLimits = ServerLimits()
    upstream: Upstream = Upstream()
    login: LoginLimits = LoginLimits()
    menu: MenuSettings = MenuSettings()  # #17
    state: State = State()  # #15: local (SQLite, one process) or redis (workers and nodes)
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1  # #15: auto = cores
    pages: Pages = Pages()  # #21: branding, template overrides, default language

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an origin like 'https://proxy.example.org'")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("must be an origin only (no path, query or user)")
        return value.rstrip("/")

    @field_validator("upstream_overrides")
    @classmethod
    def _overrides(cls, value: dict[str, str]) -> dict[str, str]:
        return {host.lower(): origin for host, origin in value.items()}

    @model_validator(mode="after")
    def _tls_needs_https(self) -> Settings:
        if self.tls is not None and self.public_scheme != "https":
            raise ValueError("tls is set, so public_url must start with https://")
        return self

    @model_validator(mode="after")
    def _unique_libraries(self) -> Settings:
        codes = [lib.code for lib in self.libraries]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate library code(s): {', '.join(dupes)}")
        return self

    @property
    def public_scheme(self) -> str:
        """``http`` or ``https`` — the patron-facing scheme."""
        return urlsplit(self.public_url).scheme

    @property
    def proxy_host(self) -> str:
        """The portal's hostname, e.g. ``proxy.localhost``."""
        return urlsplit(self.public_url).hostname or ""

    @property
    def proxy_port(self) -> int | None:
        """The portal's explicit port, or None for the scheme's default."""
        return urlsplit(self.public_url).port

    def library(self, code: str) -> Library | None:
        """The member library with this code, if any."""
        return next((lib for lib in self.libraries if lib.code == code), None)
