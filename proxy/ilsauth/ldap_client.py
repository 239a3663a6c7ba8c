"""Asking a library's directory about a user: bind, then the configured conditions.

Why ldap3 (2.9): pure Python (no libldap/OpenSSL build like ``python-ldap``, no C extension
like ``bonsai``), maintained, strict TLS options, and ``escape_filter_chars``/``escape_rdn``
for RFC 4515/4514 escaping. It is synchronous, so every call runs in a worker thread
(``asyncio.to_thread``), at most ``pool_size`` at once per directory (a semaphore): a slow
directory can hold ``pool_size`` threads, never the event loop or the whole thread pool.

Contract: ``LdapChecker(settings, service_password).check(card, password)`` → ``LdapResult``
(core/ilsauth.py: bound?, conditions met?, the patron-type attribute's value — nothing else
of the entry is even requested). An empty password is "not bound" without asking (an empty
simple bind is an anonymous bind that succeeds, RFC 4513 §5.1.2). It raises
``LdapUnavailable`` (503) when the directory cannot be reached, times out, refuses the service
account or answers oddly. In search-then-bind, a card the search does not find still costs one
bind (to a DN that does not exist), so an unknown card and a wrong password do the same work.
Connections are reused (at most ``pool_size``, each by one thread at a time, rebound per
check) and dropped after any error. Logs ``ldap_unavailable`` with
the host and error type only.
Not here: the settings (core/authconfig.py), what the result means (core/ilsauth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import threading
from typing import Final
from urllib.parse import urlsplit

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from proxy.core.authconfig import LdapSettings
from proxy.core.ilsauth import LdapResult
from proxy.ilsauth.ldap_errors import LdapUnavailable
from proxy.logconfig import get_logger

log = get_logger("ldap")

# RFC 4511 §4.1.9 result codes a bind gets for a bad user or password: invalidCredentials (49),
# and for a DN a hostile card made unusable: noSuchObject (32), invalidDNSyntax (34).
REFUSED_BIND: Final = frozenset({32, 34, 49})
QUEUE_WAIT_FACTOR: Final = 3  # a check waits at most 3 × timeout for a free connection
DEFAULT_PORTS: Final = {"ldap": 389, "ldaps": 636}


class _Refused(Exception):
    """The bind was refused with invalidCredentials (unknown user or wrong password)."""


class LdapChecker:
    """Binds against one directory, over a few reused connections."""

    def __init__(self, settings: LdapSettings, service_password: str | None = None) -> None:
        if settings.service_dn is not None and not service_password:
            raise ValueError("search-then-bind needs the service password")
        self._settings = settings
        self._service_password = service_password
        self._server = _server(settings)
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()  # guards _idle across worker threads
        self.connections_opened = 0

    async def check(self, card: str, password: str) -> LdapResult:
        """Bind as the user of ``card`` with ``password`` and check the conditions."""
        if not password or not card:
            return LdapResult(bound=False, conditions_met=False, ptype_value=None)
        try:
            async with asyncio.timeout(self._settings.timeout * QUEUE_WAIT_FACTOR):
                await self._slots.acquire()
        except TimeoutError:
            raise self._unavailable("QueueTimeout") from None
        try:
            return await asyncio.to_thread(self._check_blocking, card, password)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Unbind every idle connection (blocking; call on shutdown in a thread)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _drop(conn)

    def _check_blocking(self, card: str, password: str) -> LdapResult:
        conn = self._take()
        try:
            result = self._ask(conn, card, password)
        except LDAPException as exc:
            _drop(conn)
            raise self._unavailable(type(exc).__name__) from None
        except BaseException:
            _drop(conn)
            raise
        with self._lock:
            self._idle.append(conn)
        return result

    def _ask(self, conn: Connection, card: str, password: str) -> LdapResult:
        dn = self._user_dn(conn, card)
        if dn is None:  # still one bind, as for a wrong password (no existence oracle)
            with contextlib.suppress(_Refused):
                _bind(conn, self._decoy_dn(), password)
            return LdapResult(bound=False, conditions_met=False, ptype_value=None)
        try:
            _bind(conn, dn, password)
        except _Refused:
            return LdapResult(bound=False, conditions_met=False, ptype_value=None)
        values = self._entry_values(conn, dn)
        met = self._group_ok(conn, dn) and all(
            set(values.get(name, ())) & set(wanted)
            for name, wanted in self._settings.require_attribute.items()
        )
        ptype_from = self._settings.ptype_from
        ptype_values = values.get(ptype_from, ()) if ptype_from else ()
        return LdapResult(True, met, ptype_values[0] if ptype_values else None)

    def _user_dn(self, conn: Connection, card: str) -> str | None:
        settings = self._settings
        if settings.bind_dn_template is not None:
            return settings.bind_dn_template.replace("{card}", escape_rdn(card))
        assert settings.service_dn is not None and settings.base is not None
        try:
            _bind(conn, settings.service_dn, self._service_password or "")
        except _Refused:
            raise self._unavailable("ServiceBindRefused") from None
        query = settings.filter.replace("{card}", escape_filter_chars(card))
        conn.search(settings.base, query, SUBTREE, attributes=[], size_limit=2)
        entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
        return str(entries[0]["dn"]) if len(entries) == 1 else None  # 0 or ambiguous: unknown

    def _decoy_dn(self) -> str:
        """A DN under ``base`` that no entry has: its bind is refused like a wrong password."""
        return f"cn=clamshell-no-such-user,{self._settings.base}"

    def _entry_values(self, conn: Connection, dn: str) -> dict[str, tuple[str, ...]]:
        """Only the attributes a condition or the patron type needs (nothing personal)."""
        names = set(self._settings.require_attribute)
        if self._settings.ptype_from:
            names.add(self._settings.ptype_from)
        if not names:
            return {}
        conn.search(dn, "(objectClass=*)", BASE, attributes=sorted(names))
        entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
        if not entries:
            return {}
        attributes = entries[0].get("attributes", {})
        return {name: tuple(str(v) for v in _as_list(attributes.get(name))) for name in names}

    def _group_ok(self, conn: Connection, dn: str) -> bool:
        group = self._settings.require_group
        if group is None:
            return True
        member = escape_filter_chars(dn)
        query = f"(|(member={member})(uniqueMember={member}))"
        conn.search(group, query, BASE, attributes=[])
        return any(e.get("type") == "searchResEntry" for e in conn.response or ())

    def _take(self) -> Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return self._open()

    def _open(self) -> Connection:
        settings = self._settings
        conn = Connection(
            self._server,
            receive_timeout=math.ceil(settings.timeout),  # ldap3 packs it as whole seconds
            raise_exceptions=False,
            read_only=True,
            auto_referrals=False,
        )
        try:
            conn.open()
            if settings.start_tls and not conn.start_tls():
                raise self._unavailable("StartTlsRefused")
        except LDAPException as exc:
            _drop(conn)
            raise self._unavailable(type(exc).__name__) from None
        self.connections_opened += 1
        return conn

    def _unavailable(self, error: str) -> LdapUnavailable:
        log.warning("ldap_unavailable", host=self._settings.host, error=error)
        return LdapUnavailable(f"directory unavailable: {error}")


def _bind(conn: Connection, dn: str, password: str) -> None:
    """Rebind ``conn`` as ``dn``; ``_Refused`` on invalidCredentials, LDAPException else."""
    try:
        if conn.rebind(user=dn, password=password):
            return
    except LDAPInvalidDnError:
        raise _Refused from None
    code = conn.result.get("result") if conn.result else None
    if code in REFUSED_BIND:
        raise _Refused
    raise LDAPException(f"bind failed with result {code}")


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _drop(conn: Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()


def _server(settings: LdapSettings) -> Server:
    parts = urlsplit(settings.url)
    use_ssl = parts.scheme == "ldaps"
    tls = None
    if use_ssl or settings.start_tls:
        ca = str(settings.ca_file) if settings.ca_file else None
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=ca,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return Server(
        parts.hostname or "",
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        use_ssl=use_ssl,
        tls=tls,
        get_info=NONE,
        connect_timeout=settings.timeout,
    )
