"""How a member library's cards are checked (``libraries[].auth`` in proxy.yaml), as frozen values.

Contract: ``LibraryAuth`` names the back-ends in the order they are asked (``use``), the
settings of each live one (``sip2``: core/sip2.py's ``Sip2Settings``; ``ldap``:
``LdapSettings``) and the optional ``fallback: registry`` for when a live back-end cannot be
reached. Shorthands: ``auth: registry`` and ``auth: [registry]`` mean ``use: [registry]``.
Secrets (SIP2 login and terminal passwords, the LDAP service password) are never values here:
only the paths of the files that hold them. LDAP over plain ``ldap://`` without StartTLS is
refused unless ``allow_plaintext: true`` says so on purpose.
Not here: reading the secret files or talking to anything (proxy/ilsauth/), the decision
made from an answer (core/ilsauth.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from proxy.core.frozen import Frozen
from proxy.core.sip2 import Sip2Settings

BackendName = Literal["registry", "sip2", "ldap"]
LIVE_BACKENDS: Final = frozenset({"sip2", "ldap"})  # the ones that make a network call
LDAP_SCHEMES: Final = frozenset({"ldap", "ldaps"})  # RFC 4516 URL schemes
CARD_PLACEHOLDER: Final = "{card}"


class LdapSettings(Frozen):
    """One directory: how to find the patron's entry, bind as them, and what else must hold.

    Either ``bind_dn_template`` (the card is put into the DN, RFC 4514-escaped) or
    search-then-bind: ``service_dn`` + ``service_password_file`` + ``base`` + ``filter`` (the
    card is RFC 4515-escaped into the filter).
    """

    url: str
    start_tls: bool = False
    allow_plaintext: bool = False
    ca_file: Path | None = None
    bind_dn_template: str | None = None
    service_dn: str | None = None
    service_password_file: Path | None = None
    base: str | None = None
    filter: str = "(uid={card})"
    # Conditions for remote access, checked after a good bind (else: "no remote access").
    require_group: str | None = None  # a group DN listing the user as member/uniqueMember
    require_attribute: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    ptype_from: str | None = None  # an attribute of the entry, e.g. employeeType
    ptype_map: dict[str, str] = Field(default_factory=dict)  # attribute value -> patron type
    ptype: str = "ldap"  # the patron type when ptype_from is unset, absent or unmapped
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    pool_size: Annotated[int, Field(ge=1, le=32)] = 2

    @model_validator(mode="after")
    def _coherent(self) -> LdapSettings:
        parts = urlsplit(self.url)
        if parts.scheme not in LDAP_SCHEMES or not parts.hostname:
            raise ValueError("url must look like ldaps://host[:port] or ldap://host[:port]")
        if parts.scheme == "ldap" and not self.start_tls and not self.allow_plaintext:
            raise ValueError(
                "ldap:// sends passwords in clear: use ldaps://, start_tls: true, "
                "or allow_plaintext: true on purpose"
            )
        if parts.scheme == "ldaps" and self.start_tls:
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is TLS already")
        search = (self.service_dn, self.service_password_file, self.base)
        if (self.bind_dn_template is None) == all(v is None for v in search):
            raise ValueError(
                "give either bind_dn_template or service_dn, "
                "service_password_file and base (search-then-bind)"
            )
        if self.bind_dn_template is None and any(v is None for v in search):
            raise ValueError("search-then-bind needs service_dn, service_password_file and base")
        for key, value in (("bind_dn_template", self.bind_dn_template), ("filter", self.filter)):
            if value is not None and CARD_PLACEHOLDER not in value:
                raise ValueError(f"{key} must contain {CARD_PLACEHOLDER}")
        return self

    @property
    def host(self) -> str:
        """The directory's host name (for logs and the health view)."""
        return urlsplit(self.url).hostname or ""


class LibraryAuth(Frozen):
    """The back-ends of one library, asked in order; the first that knows the card decides."""

    use: tuple[BackendName, ...] = ("registry",)
    sip2: Sip2Settings | None = None
    ldap: LdapSettings | None = None
    fallback: Literal["registry"] | None = None  # off by default: an ILS outage is a 503

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        if isinstance(value, str):
            return {"use": [value]}
        if isinstance(value, list | tuple):
            return {"use": list(value)}
        return value

    @model_validator(mode="after")
    def _sections_match(self) -> LibraryAuth:
        if not self.use or len(set(self.use)) != len(self.use):
            raise ValueError("use must name each back-end at most once, and at least one")
        for name in ("sip2", "ldap"):
            configured = getattr(self, name) is not None
            if (name in self.use) != configured:
                raise ValueError(f"{name} is in use but has no {name}: section, or the reverse")
        if self.fallback is not None and not self.live:
            raise ValueError("fallback only applies when a live back-end (sip2, ldap) is in use")
        return self

    @property
    def live(self) -> bool:
        """True when any back-end makes a network call."""
        return any(name in LIVE_BACKENDS for name in self.use)
