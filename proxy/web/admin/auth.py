"""The admin credential: where the token comes from, and how a request proves it holds it.

Contract: ``admin_token(settings)`` is ``$CLAMSHELL_ADMIN_TOKEN`` when set (32+ URL-safe
characters, else ``AdminTokenError``), else the unpadded URL-safe base64 of the 32 random
bytes in ``data_dir/admin.token`` (created 0600 on first use). ``authenticate(request)`` accepts
``Authorization: Bearer <token>`` or the ``COOKIE`` the login form sets, compared in constant
time, or a live console session, and otherwise raises ``AdminRefused(401)`` with
``WWW-Authenticate: Bearer``. The console's cookie holds only the random id of a server-side
``AdminSessions`` entry (idle and absolute expiry, revoked by sign-out), never the token, and is
named ``__Host-clamshell_admin`` over HTTPS (``cookie_name``);
``require_csrf(request)`` makes a cookie-authenticated change carry ``AdminAuth.csrf``.
Also here, because every admin module needs them and AUTH is typed by ``AdminAuth``: the admin
app's keys (``MAIN``, ``AUTH``, ``STYLES``) and ``AdminRefused``, the console's one refusal.
Staff (issue #20): a console session holds the ``Principal`` who signed in (a staff account
checked by stores/staff.py, or the admin token as ``consortium-admin``); a bearer value is the
admin token or an API key (``csk_…``, stored hashed). ``authenticate`` returns the principal
and re-checks on every request that a staff account is still enabled. ``audit(request, …)``
records a staff action in the audit log.
Not here: the middleware that calls these and renders refusals (app.py), the sign-in form
and cookie (dashboard.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from aiohttp import web

from proxy.core.settings import Settings
from proxy.core.staffroles import Principal
from proxy.errors import ClamshellError
from proxy.secretfiles import read_or_create_secret
from proxy.stores.audit import AuditLog
from proxy.stores.staff import StaffStore
from proxy.web.keys import CLOCK

TOKEN_ENV: Final = "CLAMSHELL_ADMIN_TOKEN"  # noqa: S105 — a variable name
TOKEN_FILE: Final = "admin.token"  # noqa: S105 — a file name
TOKEN_SHAPE: Final = re.compile(r"^[A-Za-z0-9._~-]{32,256}$")  # safe in a header and a cookie
COOKIE: Final = "clamshell_admin"
# Over HTTPS: no Domain, Path=/, Secure, so no sibling host can set or shadow it (RFC 6265bis
# §4.1.3.2).
SECURE_COOKIE: Final = "__Host-" + COOKIE
MAX_ADMIN_SESSIONS: Final = 64  # a few people sign in; the oldest goes first beyond this
CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="clamshell-admin"'}
TOKEN_PRINCIPAL: Final = Principal("admin-token", "consortium-admin")


class AdminTokenError(ClamshellError):
    """``CLAMSHELL_ADMIN_TOKEN`` is set but too short or has unsafe characters."""


class AdminRefused(ClamshellError):
    """A request the console refuses, with its status, message and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        problems: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_hint, self.public_message = status, message
        self.problems, self.headers = list(problems), dict(headers or {})


@dataclass(frozen=True, slots=True)
class AdminAuth:
    """The admin token and the form CSRF token derived from it."""

    token: str

    @property
    def csrf(self) -> str:
        """An HMAC of a fixed label under the token: only a holder of the token can know it."""
        mac = hmac.digest(self.token.encode(), b"clamshell-admin-csrf", hashlib.sha256)
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def accepts(self, presented: object, *, expected: str | None = None) -> bool:
        """Constant-time comparison with the token (or with ``expected``)."""
        if not isinstance(presented, str):
            return False
        want = self.token if expected is None else expected
        return hmac.compare_digest(_raw(presented), _raw(want))


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # compare_digest refuses non-ASCII str


class AdminSessions:
    """Console sign-ins held server-side: random ids (kept as SHA-256), idle and absolute expiry."""

    def __init__(self, idle: timedelta, lifetime: timedelta) -> None:
        self.idle, self.lifetime = idle, lifetime
        # digest → (created, seen, who)
        self._live: dict[bytes, tuple[datetime, datetime, Principal]] = {}

    def create(self, now: datetime, who: Principal = TOKEN_PRINCIPAL) -> str:
        """A new session's id (the cookie value); the oldest is dropped beyond the maximum."""
        self._live = {k: v for k, v in self._live.items() if self._alive(v, now)}
        while len(self._live) >= MAX_ADMIN_SESSIONS:
            del self._live[min(self._live, key=lambda k: self._live[k][0])]
        session_id = secrets.token_urlsafe(32)
        self._live[_digest(session_id)] = (now, now, who)
        return session_id

    def touch(self, session_id: str, now: datetime) -> Principal | None:
        """Who signed in (and the idle clock restarts) while the session lives, else None."""
        key = _digest(session_id)
        entry = self._live.get(key)
        if entry is None:
            return None
        if not self._alive(entry, now):
            del self._live[key]
            return None
        self._live[key] = (entry[0], now, entry[2])
        return entry[2]

    def revoke(self, session_id: str) -> None:
        """Sign-out: the id stops working at once."""
        self._live.pop(_digest(session_id), None)

    def revoke_all(self, name: str) -> None:
        """End every session of one staff account (disabled, or password reset)."""
        self._live = {k: v for k, v in self._live.items() if v[2].name != name}

    def _alive(self, entry: tuple[datetime, datetime, Principal], now: datetime) -> bool:
        created, seen, _ = entry
        return now - seen < self.idle and now - created < self.lifetime


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(_raw(session_id)).digest()


def cookie_name(secure: bool) -> str:
    """The console cookie's name: ``__Host-`` prefixed over HTTPS."""
    return SECURE_COOKIE if secure else COOKIE


MAIN: web.AppKey[web.Application] = web.AppKey("admin_main", web.Application)
CONSOLE_SESSIONS: web.AppKey[AdminSessions] = web.AppKey("admin_sessions", AdminSessions)
AUTH: web.AppKey[AdminAuth] = web.AppKey("admin_auth", AdminAuth)
STYLES: web.AppKey[str] = web.AppKey("admin_styles", str)
STAFF: web.AppKey[StaffStore] = web.AppKey("admin_staff", StaffStore)
AUDIT: web.AppKey[AuditLog] = web.AppKey("admin_audit", AuditLog)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("admin_principal", Principal)


def admin_token(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """The admin token: from the environment, else derived from ``data_dir/admin.token``."""
    given = environ.get(TOKEN_ENV, "").strip()
    if given:
        if not TOKEN_SHAPE.match(given):
            raise AdminTokenError(
                f"{TOKEN_ENV} must be 32-256 characters from A-Z a-z 0-9 . _ ~ - "
                "(e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        return given
    raw = read_or_create_secret(Path(settings.data_dir) / TOKEN_FILE)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


async def authenticate(request: web.Request) -> tuple[Literal["bearer", "cookie"], Principal]:
    """Which credential matched and whose it is; an ``Authorization`` header, if sent, must be
    the admin token or a live API key."""
    auth = request.app[AUTH]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, presented = header.strip().partition(" ")
        presented = presented.strip()
        if scheme.lower() == "bearer" and auth.accepts(presented):
            return "bearer", TOKEN_PRINCIPAL
        if scheme.lower() == "bearer":
            who = await asyncio.to_thread(request.app[STAFF].key_principal, presented)
            if who is not None:
                return "bearer", who
        raise AdminRefused(
            401, "The bearer token is not an admin token or API key.", headers=CHALLENGE
        )
    session_id = request.cookies.get(cookie_name(request.secure))
    now = request.app[MAIN][CLOCK]()
    who = request.app[CONSOLE_SESSIONS].touch(session_id, now) if session_id else None
    if (
        who is not None
        and who is not TOKEN_PRINCIPAL
        and not await asyncio.to_thread(request.app[STAFF].is_active, who.name)
    ):
        request.app[CONSOLE_SESSIONS].revoke_all(who.name)
        who = None
    if who is None:
        raise AdminRefused(
            401, "Sign in with your staff account or the admin token.", headers=CHALLENGE
        )
    return "cookie", who


def principal_of(request: web.Request) -> Principal:
    """Who is asking (set by the guard middleware before any protected handler runs)."""
    if PRINCIPAL not in request:  # a public route has no principal
        raise AdminRefused(
            401, "Sign in with your staff account or the admin token.", headers=CHALLENGE
        )
    return request[PRINCIPAL]


async def audit(
    request: web.Request,
    action: str,
    *,
    library: str = "",
    detail: str = "",
    actor: str | None = None,
) -> None:
    """Record a staff action (who, when, what) in the audit log, in a worker thread."""
    name = actor if actor is not None else principal_of(request).name
    now = request.app[MAIN][CLOCK]()
    await asyncio.to_thread(
        request.app[AUDIT].record, name, action, now, library=library, detail=detail
    )


async def require_csrf(request: web.Request) -> None:
    """A cookie-authenticated change must carry the page's token (form field or header)."""
    presented: object = request.headers.get("X-CSRF-Token")
    if presented is None and request.content_type == "application/x-www-form-urlencoded":
        presented = (await request.post()).get("csrf")
    auth = request.app[AUTH]
    if not auth.accepts(presented, expected=auth.csrf):
        raise AdminRefused(403, "The form is out of date; reload the page and try again.")
