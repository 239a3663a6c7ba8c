"""Staff accounts and API keys of the admin console (issue #20), in ``data_dir/staff.sqlite3``.

Contract: ``StaffStore.open(data_dir)`` opens the file (0600, WAL, ``synchronous=FULL``).
Passwords are kept only as argon2id hashes (argon2-cffi's defaults); an optional TOTP secret
(pyotp, RFC 6238) is the second factor, and a code is accepted once (its time step is kept, so a
seen code cannot be replayed). ``verify`` counts failures per account and locks it for
``LOCKOUT`` after ``MAX_FAILURES`` in a row; a locked, disabled or unknown account answers the
same ``None`` (an unknown name still costs one argon2 verification, so timing does not tell
names apart). API keys are ``csk_<id>_<secret>``; only SHA-256 of the secret is stored (256
random bits need no slow hash). Every method does SQLite I/O: call it from a worker thread in
the server. ``StaffError`` (400) names what is wrong in one line.
Not here: roles and what they grant (core/staffroles.py), sessions and cookies
(web/admin/auth.py), the audit log (stores/audit.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, cast

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from proxy.core.staffroles import ROLES, Principal, Role, check_scope
from proxy.errors import ClamshellError
from proxy.stores.sqlitedb import open_db

DB_FILE: Final = "staff.sqlite3"
SCHEMA_VERSION: Final = 1
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS staff (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    libraries   TEXT NOT NULL,        -- space-separated library codes ('' = every library)
    pw_hash     TEXT NOT NULL,        -- argon2id
    totp_secret TEXT,                 -- base32; NULL: no second factor
    totp_step   INTEGER NOT NULL DEFAULT 0,  -- last accepted time step (no replay)
    disabled    INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,                -- ISO datetime, UTC
    created     TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    role      TEXT NOT NULL,
    libraries TEXT NOT NULL,
    key_hash  TEXT NOT NULL,          -- SHA-256 hex of the secret part
    revoked   INTEGER NOT NULL DEFAULT 0,
    created   TEXT NOT NULL
) WITHOUT ROWID;
"""
NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD: Final = 12  # NIST SP 800-63B §5.1.1.2 asks for at least 8; staff get more
MAX_FAILURES: Final = 5
LOCKOUT: Final = timedelta(minutes=15)
KEY_SHAPE: Final = re.compile(r"^csk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TOTP_STEP: Final = 30  # RFC 6238 §4.1 default


class StaffError(ClamshellError):
    """A staff or API-key command that cannot be done; the message says why, in one line."""

    status_hint = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.public_message = message


@dataclass(frozen=True, slots=True)
class StaffAccount:
    """A staff account as listings show it (no hash, no TOTP secret)."""

    name: str
    role: Role
    libraries: tuple[str, ...]
    totp: bool
    disabled: bool
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as listings show it (never the secret)."""

    id: str
    name: str
    role: Role
    libraries: tuple[str, ...]
    revoked: bool


class StaffStore:
    """Staff accounts and API keys in one SQLite file."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._hasher = PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def open(cls, data_dir: Path) -> StaffStore:
        """Open ``data_dir/staff.sqlite3``, creating it 0600 when missing."""
        conn = open_db(
            data_dir / DB_FILE,
            schema=SCHEMA,
            version=SCHEMA_VERSION,
            secure_delete=True,
            what="the staff accounts",
        )
        return cls(conn)

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    # --- accounts ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        role: str,
        libraries: Iterable[str],
        password: str,
        *,
        totp: bool,
        now: datetime,
    ) -> str | None:
        """Create an account; returns the TOTP secret to enrol (once) when ``totp``."""
        checked_role, libs = _checked(name, role, libraries)
        _check_password(password)
        secret = pyotp.random_base32() if totp else None
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO staff (name, role, libraries, pw_hash, totp_secret, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        checked_role,
                        " ".join(libs),
                        self._hasher.hash(password),
                        secret,
                        now.isoformat(),
                    ),
                )
            except sqlite3.IntegrityError:
                raise StaffError(f"staff account {name!r} already exists") from None
        return secret

    def accounts(self) -> list[StaffAccount]:
        """Every account, by name."""
        rows = self._conn.execute(
            "SELECT name, role, libraries, totp_secret IS NOT NULL, disabled, locked_until"
            " FROM staff ORDER BY name"
        ).fetchall()
        return [
            StaffAccount(n, cast(Role, r), tuple(libs.split()), bool(t), bool(d), _when(lock))
            for n, r, libs, t, d, lock in rows
        ]

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (or enable again) an account; its sessions stop at their next request."""
        self._update(name, "UPDATE staff SET disabled = ? WHERE name = ?", (int(disabled), name))

    def reset(self, name: str, password: str, *, totp: bool | None) -> str | None:
        """New password, lockout cleared; a new TOTP secret when ``totp`` (None: unchanged)."""
        _check_password(password)
        self._update(
            name,
            "UPDATE staff SET pw_hash = ?, failures = 0, locked_until = NULL WHERE name = ?",
            (self._hasher.hash(password), name),
        )
        if totp is None:
            return None
        secret = pyotp.random_base32() if totp else None
        self._update(
            name, "UPDATE staff SET totp_secret = ?, totp_step = 0 WHERE name = ?", (secret, name)
        )
        return secret

    def is_active(self, name: str) -> bool:
        """The account exists and is not disabled (checked on every console request)."""
        row = self._conn.execute("SELECT disabled FROM staff WHERE name = ?", (name,)).fetchone()
        return row is not None and not row[0]

    def exists(self, name: str) -> bool:
        """An account of this name exists (enabled or not)."""
        return (
            self._conn.execute("SELECT 1 FROM staff WHERE name = ?", (name,)).fetchone() is not None
        )

    def verify(self, name: str, password: str, code: str, now: datetime) -> Principal | None:
        """The principal when name, password (and code, if enrolled) are right, else None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT role, libraries, pw_hash, totp_secret, totp_step, disabled, failures,"
                " locked_until FROM staff WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                _verify(self._hasher, self._dummy, password)
                return None
            role, libs, pw_hash, secret, last_step, disabled, failures, locked = row
            locked_until = _when(locked)
            if disabled or (locked_until is not None and now < locked_until):
                return None
            step = _totp_step(secret, code, now) if secret else 0
            ok = _verify(self._hasher, pw_hash, password) and step is not None
            if ok and secret and step is not None and step <= last_step:
                ok = False  # a code already used: a replay
            self._record(name, ok=ok, failures=failures, step=step or last_step, now=now)
        return Principal(name, cast(Role, role), frozenset(libs.split())) if ok else None

    def _record(self, name: str, *, ok: bool, failures: int, step: int, now: datetime) -> None:
        if ok:
            self._conn.execute(
                "UPDATE staff SET failures = 0, locked_until = NULL, totp_step = ? WHERE name = ?",
                (step, name),
            )
            return
        failures += 1
        until = (now + LOCKOUT).isoformat() if failures >= MAX_FAILURES else None
        self._conn.execute(
            "UPDATE staff SET failures = ?, locked_until = ? WHERE name = ?",
            (0 if until else failures, until, name),
        )

    def _update(self, name: str, sql: str, params: tuple[object, ...]) -> None:
        with self._lock:
            if self._conn.execute(sql, params).rowcount == 0:
                raise StaffError(f"there is no staff account {name!r}")

    # --- API keys ---------------------------------------------------------------------------

    def create_key(self, name: str, role: str, libraries: Iterable[str], now: datetime) -> str:
        """A new API key (shown once; only its hash is kept)."""
        checked_role, libs = _checked(name, role, libraries)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_keys (id, name, role, libraries, key_hash, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, checked_role, " ".join(libs), _sha(secret), now.isoformat()),
            )
        return f"csk_{key_id}_{secret}"

    def api_keys(self) -> list[ApiKey]:
        """Every API key, newest first (without secrets)."""
        rows = self._conn.execute(
            "SELECT id, name, role, libraries, revoked FROM api_keys ORDER BY created DESC"
        ).fetchall()
        return [ApiKey(i, n, cast(Role, r), tuple(lb.split()), bool(x)) for i, n, r, lb, x in rows]

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key at once."""
        with self._lock:
            cur = self._conn.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,))
        if cur.rowcount == 0:
            raise StaffError(f"there is no API key {key_id!r}")

    def key_principal(self, presented: str) -> Principal | None:
        """The key's principal, or None for anything that is not a live key."""
        match = KEY_SHAPE.match(presented)
        if match is None:
            return None
        row = self._conn.execute(
            "SELECT name, role, libraries, key_hash FROM api_keys WHERE id = ? AND revoked = 0",
            (match[1],),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[3], _sha(match[2])):
            return None
        return Principal(f"key:{row[0]}", cast(Role, row[1]), frozenset(row[2].split()))


def _checked(name: str, role: str, libraries: Iterable[str]) -> tuple[Role, tuple[str, ...]]:
    if not NAME.match(name):
        raise StaffError(
            f"name {name!r}: use 1-64 of a-z 0-9 . _ @ - (starting with a letter or digit)"
        )
    checked = next((r for r in ROLES if r == role), None)
    if checked is None:
        raise StaffError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    libs = tuple(sorted(set(libraries)))
    problem = check_scope(checked, libs)
    if problem:
        raise StaffError(problem)
    return checked, libs


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must be at least {MIN_PASSWORD} characters")


def _verify(hasher: PasswordHasher, pw_hash: str, password: str) -> bool:
    try:
        return hasher.verify(pw_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _totp_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code matches (±1 step of clock drift, RFC 6238 §5.2), else None."""
    totp = pyotp.TOTP(secret)
    base = int(now.timestamp()) // TOTP_STEP
    for step in (base - 1, base, base + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code.strip()):
            return step
    return None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
