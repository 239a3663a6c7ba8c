"""Databases on a platform, and which requests a platform relays without a session.

Contract: ``Database`` is one thing patrons pick and libraries license (EZproxy's stanza
Title/URL/Group): id, title, starting URL, description, licence, ``hide``. ``Anonymous`` is
one ``anonymous:`` entry of a rule (EZproxy ``AnonymousURL``): a method set and glob
patterns, matched only against requests already on the rule's own hosts, so a pattern can
never widen the hosts the proxy serves (DESIGN P6). Both are frozen pydantic values checked on
their own; checks needing the whole rule (a starting URL its rule covers) are in core/rules.py,
checks across rules (id/title collisions, never_proxy) in core/ruleset.py.
Not here: relaying (web/relay.py), the menu (core/menu.py).
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

DATABASE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Methods an anonymous entry may name: what browsers send without credentials for
# subresources and CORS preflights (Fetch standard, CORS-safelisted methods + OPTIONS).
ANONYMOUS_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "POST"})
# Path parts that match every path on a host (EZproxy ``+https://host/*``).
MATCH_ALL_PATHS: Final = frozenset({"", "*", "/*", "/**", "*.*", "**", "*/*"})

Libraries = Literal["all"] | tuple[str, ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def check_library_codes(value: Libraries | None, info: ValidationInfo) -> Libraries | None:
    """Library codes must be the ones proxy.yaml defines (passed as validation context)."""
    codes = (info.context or {}).get("library_codes")
    if value is None or value == "all" or codes is None:
        return value
    unknown = [c for c in value if c not in codes]
    if unknown:
        raise ValueError(
            f"library {unknown[0]!r} is not defined in proxy.yaml (expected one "
            f"of: {', '.join(sorted(codes)) or 'none defined'})"
        )
    return value


def check_http_url(value: str) -> str:
    """An absolute http(s) URL with a host (the port is checked by core/rules.py)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    try:
        parts.port  # noqa: B018 — raises on a port that does not parse
    except ValueError:
        raise ValueError(f"not an http(s) URL: {value!r}") from None
    return value


class Database(_Frozen):
    """One database on a platform: what the menu lists and a library licenses.

    ``libraries``/``ptypes`` left out (None) take the rule's.
    """

    id: str
    title: Annotated[str, Field(min_length=1)]
    url: str
    description: str = ""
    libraries: Libraries | None = None
    ptypes: tuple[str, ...] | None = None
    hide: bool = False  # EZproxy ``Title -Hide``: not in the menu, reachable by link

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not DATABASE_ID.match(value):
            raise ValueError("id must be a slug: lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("libraries")
    @classmethod
    def _libraries(cls, value: Libraries | None, info: ValidationInfo) -> Libraries | None:
        return check_library_codes(value, info)

    def licensed_to(self, library: str, ptype: str | None = None) -> bool:
        """True when the library (and patron type, if limited) licenses this database."""
        libraries = "all" if self.libraries is None else self.libraries
        if libraries != "all" and library not in libraries:
            return False
        return self.ptypes is None or ptype is None or ptype in self.ptypes


class Anonymous(_Frozen):
    """Requests on the rule's hosts relayed without a session (EZproxy ``AnonymousURL``).

    A pattern is a glob on the path and query (``/api/*``, ``*.woff*``) or on a whole URL
    (``https://api.example.com/v1/*``, host globs as ``*.example.com``); a URL pattern's host
    must be one the rule covers. A pattern matching every path on a host needs
    ``allow_all: true`` and a ``reason``.
    """

    methods: tuple[str, ...] = ("GET", "HEAD")
    patterns: Annotated[tuple[str, ...], Field(min_length=1)]
    allow_all: bool = False
    reason: str | None = None

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(m.upper() for m in value)
        bad = [m for m in upper if m not in ANONYMOUS_METHODS]
        if bad:
            raise ValueError(
                f"method {bad[0]!r} is never relayed anonymously (allowed: "
                f"{', '.join(sorted(ANONYMOUS_METHODS))})"
            )
        return upper

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern or any(c in pattern for c in " \t\r\n\\"):
                raise ValueError(f"not a URL or path pattern: {pattern!r}")
            if "://" in pattern and not pattern.lower().startswith(("http://", "https://")):
                raise ValueError(f"only http(s) URL patterns: {pattern!r}")
        return value

    @model_validator(mode="after")
    def _match_all_needs_reason(self) -> Anonymous:
        wide = [p for p in self.patterns if matches_everything(p)]
        if wide and not (self.allow_all and self.reason):
            raise ValueError(
                f"pattern {wide[0]!r} matches every request on a host: relaying all of it "
                "without a session needs allow_all: true and a reason"
            )
        if self.allow_all and not self.reason:
            raise ValueError("allow_all: true needs a reason")
        return self

    def matches(self, method: str, scheme: str, host: str, path_and_query: str) -> bool:
        """True when this entry lets the request through without a session."""
        if method.upper() not in self.methods:
            return False
        del scheme  # a pattern's scheme is EZproxy's; the rule decides the upstream scheme
        return any(_pattern_matches(p, host, path_and_query) for p in self.patterns)

    def url_hosts(self) -> tuple[str, ...]:
        """The host part of each URL pattern (may hold a leading ``*.``)."""
        return tuple(_split_url_pattern(p)[0] for p in self.patterns if "://" in p)


def _split_url_pattern(pattern: str) -> tuple[str, str]:
    """``https://*.x.org/a/*`` → (``*.x.org``, ``/a/*``); port dropped, host lower-cased."""
    rest = pattern.split("://", 1)[1]
    host, slash, path = rest.partition("/")
    return host.split(":", 1)[0].lower(), slash + path


def matches_everything(pattern: str) -> bool:
    """True when a pattern matches every path (on its host, or on every rule host)."""
    if "://" in pattern:
        return _split_url_pattern(pattern)[1] in MATCH_ALL_PATHS
    return pattern in MATCH_ALL_PATHS


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    # fnmatch's translation, case-sensitive; '*' may span '/' as EZproxy's wildcards do.
    return re.compile(fnmatch.translate(pattern))


def _pattern_matches(pattern: str, host: str, path_and_query: str) -> bool:
    if "://" not in pattern:
        return _glob(pattern).match(path_and_query) is not None
    pattern_host, path = _split_url_pattern(pattern)
    if not _glob(pattern_host).match(host.lower()):
        return False
    return path in MATCH_ALL_PATHS or _glob(path).match(path_and_query) is not None
