"""The live back-ends of every member library, built once from the settings.

Contract: ``LiveBackends.open(libraries)`` (blocking: it reads the password files) creates one
``Sip2Client`` per library using SIP2 and one ``LdapChecker`` per library using LDAP.
``ask(library, backend, barcode, secret, patron_key=..., today=...)`` asks one of them and
returns a core/ilsauth.py ``Answer``: ``Known``/``NotKnown``, or ``Unavailable`` when the
back-end could not answer (it never raises for an outage). A card or PIN that SIP2 cannot
carry is ``NotKnown`` (the same answer as any unknown card). Every call is recorded in the
``BackendHealth`` registry (latency, last success/failure, error type) and an outage is logged
as ``card_check_unavailable`` (library, back-end, error type). Nothing the back-end returned
beyond the decision survives this call.
``CardCheckUnavailable`` (503) is what the login raises when the chain could not decide.
Not here: the order of back-ends and the fallback (web/card_check.py), the registry, the wire
protocols (sip2_client.py, ldap_client.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Final

from proxy.core.authconfig import BackendName
from proxy.core.ilsauth import Answer, NotKnown, Unavailable, ldap_answer, sip2_answer
from proxy.core.settings import Library
from proxy.errors import ClamshellError
from proxy.ilsauth.credentials import read_password_file
from proxy.ilsauth.health import BackendHealth
from proxy.ilsauth.ldap_errors import LdapUnavailable
from proxy.ilsauth.sip2_client import (
    UNAVAILABLE_MESSAGE,
    Sip2Client,
    Sip2Credentials,
    Sip2InputRejected,
    Sip2Unavailable,
)
from proxy.logconfig import get_logger

if TYPE_CHECKING:
    from proxy.ilsauth.ldap_client import LdapChecker
# ldap_client.py (and ldap3, ~5 MiB) is imported only when a library uses LDAP (issue 19).

log = get_logger("ilsauth")

OUTAGES: Final = (Sip2Unavailable, LdapUnavailable)  # errors that mean "could not ask"


class CardCheckUnavailable(ClamshellError):
    """No back-end could decide about a card: the patron is asked to try again later."""

    status_hint = 503
    public_message = UNAVAILABLE_MESSAGE


class LiveBackends:
    """SIP2 clients and LDAP checkers by library code, and their health."""

    def __init__(
        self,
        sip2: dict[str, Sip2Client],
        ldap: dict[str, LdapChecker],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._sip2, self._ldap, self._clock = sip2, ldap, clock
        self.health = BackendHealth()
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}  # card hash -> (lock, users)

    @classmethod
    def open(cls, libraries: Iterable[Library], *, clock: Callable[[], datetime]) -> LiveBackends:
        """Build these libraries' clients (reads secret files: call in a worker thread)."""
        libraries = tuple(libraries)
        sip2 = {lib.code: sip2_client(lib) for lib in libraries if lib.auth.sip2}
        ldap = {lib.code: ldap_checker(lib) for lib in libraries if lib.auth.ldap}
        return cls(sip2, ldap, clock=clock)

    async def ask(
        self,
        library: Library,
        backend: BackendName,
        barcode: str,
        secret: str,
        *,
        patron_key: str,
        today: date,
    ) -> Answer:
        """One back-end's answer about ``barcode`` (never raises for an outage)."""
        started = time.perf_counter()
        try:
            answer = await self._ask(library, backend, barcode, secret, patron_key)
        except OUTAGES as exc:
            answer = Unavailable(backend, type(exc).__name__)
        error = answer.error if isinstance(answer, Unavailable) else None
        ok = error is None
        self.health.record(
            library.code,
            backend,
            ok=ok,
            latency=time.perf_counter() - started,
            now=self._clock(),
            error=error,
        )
        if not ok:
            log.warning(
                "card_check_unavailable", library=library.code, backend=backend, error=error
            )
        return answer

    async def _ask(
        self, library: Library, backend: BackendName, barcode: str, secret: str, patron_key: str
    ) -> Answer:
        if backend == "sip2":
            settings = library.auth.sip2
            assert settings is not None
            try:
                verdict = await self._sip2[library.code].check(barcode, secret)
            except Sip2InputRejected:
                return NotKnown("sip2", "the card or PIN cannot travel in SIP2")
            return sip2_answer(
                verdict, library=library.code, ptype=settings.ptype, patron_key=patron_key
            )
        if backend == "ldap":
            assert library.auth.ldap is not None
            result = await self._ldap[library.code].check(barcode, secret)
            return ldap_answer(
                result, library.auth.ldap, library=library.code, patron_key=patron_key
            )
        raise ValueError(f"not a live back-end: {backend}")

    @contextlib.asynccontextmanager
    async def card_turn(self, card_key: str) -> AsyncIterator[None]:
        """One live check per card at a time: a parallel burst of guesses for one card waits
        here, so each is throttled with the failures counted before it (and the ILS, which
        may lock a patron after N bad PINs, never sees more than the throttle allows)."""
        lock, users = self._turns.get(card_key, (asyncio.Lock(), 0))
        self._turns[card_key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[card_key]
            if users == 1:
                del self._turns[card_key]  # nothing held per card once nobody waits
            else:
                self._turns[card_key] = (lock, users - 1)

    async def close(self) -> None:
        """Close every connection (on shutdown)."""
        await asyncio.gather(*(client.close() for client in self._sip2.values()))
        for checker in self._ldap.values():
            await asyncio.to_thread(checker.close)


def sip2_client(library: Library) -> Sip2Client:
    """The SIP2 client of ``library``, with its passwords read from their files."""
    settings = library.auth.sip2
    assert settings is not None
    where = f"libraries[{library.code}].auth.sip2"
    login = terminal = None
    if settings.login_password_file is not None:
        login = read_password_file(settings.login_password_file, key=f"{where}.login_password_file")
    if settings.terminal_password_file is not None:
        terminal = read_password_file(
            settings.terminal_password_file, key=f"{where}.terminal_password_file"
        )
    return Sip2Client(settings, Sip2Credentials(login, terminal or ""))


def ldap_checker(library: Library) -> LdapChecker:
    """The LDAP checker of ``library``, with its service password read from its file."""
    from proxy.ilsauth.ldap_client import LdapChecker

    settings = library.auth.ldap
    assert settings is not None
    password = None
    if settings.service_password_file is not None:
        password = read_password_file(
            settings.service_password_file,
            key=f"libraries[{library.code}].auth.ldap.service_password_file",
        )
    return LdapChecker(settings, password)
