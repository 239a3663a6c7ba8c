"""Server-side vendor cookie jars (RFC 6265 §5.3-§5.4), one per patron session and vendor.

Contract: pure, synchronous, stdlib only; the clock is always passed in (``now``, timezone-aware).
A ``CookieJar`` holds one patron session's cookies for one vendor (``cookies: server_side``, the
default): ``store`` takes the vendor's Set-Cookie values (parsed by setcookie.py, stored per
§5.3) and ``header_for`` builds the Cookie header of an upstream request (§5.4). A
``JarRegistry`` keys jars by (session key, vendor id), so two patrons never share a jar, and
``drop_session`` empties and forgets a session's jars (DESIGN P5). Memory is bounded: at most
``max_cookies`` per jar (least recently sent evicted first), at most 4096 bytes of name+value per
cookie. As in RFC 6265bis (draft -12, §5.6), a Secure cookie from an http upstream is ignored and
an http upstream cannot overwrite a Secure cookie.

Why not ``http.cookiejar``: its policy objects work on urllib ``Request``/response objects that
we would have to fake for every upstream request (and its parsing is lenient, see setcookie.py).

Not here: parsing Set-Cookie and the §5.1 matching algorithms (setcookie.py); rewriting a
Set-Cookie for the browser (cookierescope.py); reading Set-Cookie from and writing Cookie to
aiohttp messages, and removing the browser's own Cookie header (the relay and the header policy);
the public suffix list (the shell passes ``is_public_suffix``); SameSite enforcement (it is kept
as an attribute, but every upstream request is made by the proxy on the patron's behalf, so there
is no "site" to compare). Hosts are host names without a port (cookies are not port-specific).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from proxy.core.setcookie import (
    SetCookie,
    canonical_host,
    cookie_domain,
    default_path,
    domain_match,
    never_public,
    parse_set_cookie,
    path_match,
    prefix_allows,
    request_path_of,
)

__all__ = ["DEFAULT_MAX_COOKIES", "EARLIEST", "LATEST", "CookieJar", "JarRegistry", "StoredCookie"]

DEFAULT_MAX_COOKIES: Final = 300  # RFC 2109 §6.3's "at least 300"; one patron and one vendor
EARLIEST: Final = datetime.min.replace(tzinfo=UTC)  # RFC 6265 §5.2.2 "earliest representable"
LATEST: Final = datetime.max.replace(tzinfo=UTC)  # RFC 6265 §5.2.2 "latest representable"


@dataclass(frozen=True, slots=True)
class StoredCookie:
    """One cookie in a jar (RFC 6265 §5.3); ``expires`` is None for a session cookie."""

    name: str
    value: str
    domain: str
    host_only: bool
    path: str
    secure: bool
    http_only: bool
    expires: datetime | None
    created: datetime
    same_site: str | None

    def expired(self, now: datetime) -> bool:
        """Whether the cookie is gone at ``now`` (it lives while ``now < expires``)."""
        return self.expires is not None and now >= self.expires


# ---- RFC 6265 §5.3: storage model ---------------------------------------------------------


def _expiry(cookie: SetCookie, now: datetime) -> datetime | None:
    """RFC 6265 §5.3 step 3: Max-Age wins over Expires; <= 0 means already expired."""
    if cookie.max_age is None:
        return cookie.expires
    if cookie.max_age <= 0:
        return EARLIEST
    try:
        return now + timedelta(seconds=cookie.max_age)
    except OverflowError:
        return LATEST


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


_Key = tuple[str, str, str]  # RFC 6265 §5.3 step 11: a cookie is its (name, domain, path)


def _key(cookie: StoredCookie) -> _Key:
    return cookie.name, cookie.domain, cookie.path


@dataclass(slots=True)
class _Entry:
    cookie: StoredCookie
    last_access: datetime  # RFC 6265 §5.3: updated when sent; orders eviction


def _shadows_secure(new: StoredCookie, old: StoredCookie) -> bool:
    """RFC 6265bis §5.6: an insecure response may not overwrite or shadow a Secure cookie."""
    return (
        old.secure
        and old.name == new.name
        and (domain_match(old.domain, new.domain) or domain_match(new.domain, old.domain))
        and path_match(new.path, old.path)
    )


def _sendable(cookie: StoredCookie, host: str, path: str, secure_scheme: bool) -> bool:
    """RFC 6265 §5.4 step 1: domain (host-only: exact), path and Secure all match."""
    host_ok = host == cookie.domain if cookie.host_only else domain_match(host, cookie.domain)
    return host_ok and path_match(path, cookie.path) and (secure_scheme or not cookie.secure)


class CookieJar:
    """The cookies of one session for one vendor, held server-side."""

    def __init__(
        self,
        *,
        is_public_suffix: Callable[[str], bool] = never_public,
        max_cookies: int = DEFAULT_MAX_COOKIES,
    ) -> None:
        if max_cookies < 1:
            raise ValueError("max_cookies must be at least 1")
        self._is_public_suffix = is_public_suffix
        self._max_cookies = max_cookies
        self._entries: dict[_Key, _Entry] = {}

    def store(
        self,
        set_cookie_values: Iterable[str],
        *,
        request_host: str,
        request_path: str,
        secure_scheme: bool,
        now: datetime,
    ) -> list[StoredCookie]:
        """Store the cookies of one upstream response; returns those now held (not deletions).

        Args:
            request_host: the upstream host the response came from, without a port.
            request_path: the upstream request's path (a query is ignored).
            secure_scheme: whether the upstream request was https.
        """
        _require_aware(now)
        self._evict(now)
        host = canonical_host(request_host)
        kept: list[StoredCookie] = []
        for text in set_cookie_values:
            cookie = self._accept(text, host, request_path, secure_scheme, now)
            if cookie is not None and (cookie := self._put(cookie, now)) is not None:
                kept.append(cookie)
        self._evict(now)
        return [c for c in kept if (e := self._entries.get(_key(c))) and e.cookie is c]

    def _accept(
        self, text: str, host: str, request_path: str, secure_scheme: bool, now: datetime
    ) -> StoredCookie | None:
        """RFC 6265 §5.3 steps 1-10 (+ RFC 6265bis §5.6): the cookie to store, or None."""
        parsed = parse_set_cookie(text)
        if parsed is None or (parsed.secure and not secure_scheme):
            return None
        if not prefix_allows(parsed, secure=parsed.secure):
            return None
        scope = cookie_domain(parsed.domain, host, self._is_public_suffix)
        if scope is None:
            return None
        cookie = StoredCookie(
            name=parsed.name,
            value=parsed.value,
            domain=scope[0],
            host_only=scope[1],
            path=parsed.path or default_path(request_path),
            secure=parsed.secure,
            http_only=parsed.http_only,
            expires=_expiry(parsed, now),
            created=now,
            same_site=parsed.same_site,
        )
        if not secure_scheme and any(_shadows_secure(cookie, e.cookie) for e in self._live()):
            return None
        return cookie

    def _put(self, cookie: StoredCookie, now: datetime) -> StoredCookie | None:
        """RFC 6265 §5.3 steps 11-12: replace keeping the creation time; expired deletes."""
        key = _key(cookie)
        old = self._entries.pop(key, None)
        if cookie.expired(now):
            return None
        if old is not None:
            cookie = replace(cookie, created=old.cookie.created)
        self._entries[key] = _Entry(cookie, now)
        return cookie

    def header_for(self, *, host: str, path: str, secure_scheme: bool, now: datetime) -> str | None:
        """RFC 6265 §5.4: the Cookie header for an upstream request, or None when empty.

        Args:
            host: the upstream host, without a port.
            path: the upstream request's path (a query is ignored).
            secure_scheme: whether the upstream request is https (Secure cookies only then).
        """
        _require_aware(now)
        if not self._entries:
            return None  # most vendors' jars, most of the time (profiled on the hot path)
        self._evict(now)
        host, path = canonical_host(host), request_path_of(path)
        sent = [e for e in self._live() if _sendable(e.cookie, host, path, secure_scheme)]
        sent.sort(key=lambda e: (-len(e.cookie.path), e.cookie.created))  # §5.4 step 2
        for entry in sent:
            entry.last_access = now  # §5.4 step 3
        return "; ".join(f"{e.cookie.name}={e.cookie.value}" for e in sent) or None

    def clear(self) -> None:
        """Forget every cookie."""
        self._entries.clear()

    def snapshot(self, now: datetime) -> list[tuple[StoredCookie, datetime]]:
        """The live cookies with their last-access times (for a shared store, #15)."""
        _require_aware(now)
        self._evict(now)
        return [(e.cookie, e.last_access) for e in self._live()]

    def restore(self, items: Iterable[tuple[StoredCookie, datetime]], now: datetime) -> None:
        """Replace the contents with a ``snapshot`` taken elsewhere; the bounds still apply."""
        _require_aware(now)
        self._entries = {_key(cookie): _Entry(cookie, seen) for cookie, seen in items}
        self._evict(now)

    def cookies(self, now: datetime) -> list[StoredCookie]:
        """The live cookies, oldest stored first (for review and debugging)."""
        _require_aware(now)
        self._evict(now)
        return [e.cookie for e in self._live()]

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self) -> list[_Entry]:
        return list(self._entries.values())

    def _evict(self, now: datetime) -> None:
        """Drop expired cookies (§5.3), then the least recently sent beyond the limit."""
        for key in [k for k, e in self._entries.items() if e.cookie.expired(now)]:
            del self._entries[key]
        excess = len(self._entries) - self._max_cookies
        if excess > 0:
            by_age = sorted(self._entries, key=lambda k: self._entries[k].last_access)
            for key in by_age[:excess]:
                del self._entries[key]


class JarRegistry:
    """One ``CookieJar`` per (session key, vendor id), created on first use."""

    def __init__(
        self,
        *,
        is_public_suffix: Callable[[str], bool] = never_public,
        max_cookies: int = DEFAULT_MAX_COOKIES,
    ) -> None:
        self._is_public_suffix = is_public_suffix
        self._max_cookies = max_cookies
        self._sessions: dict[str, dict[str, CookieJar]] = {}
        self._count = 0

    def jar(self, session_key: str, vendor_id: str) -> CookieJar:
        """The session's jar for the vendor (a new empty one the first time)."""
        jars = self._sessions.setdefault(session_key, {})
        found = jars.get(vendor_id)
        if found is None:
            found = jars[vendor_id] = CookieJar(
                is_public_suffix=self._is_public_suffix, max_cookies=self._max_cookies
            )
            self._count += 1
        return found

    def names(self, session_key: str, now: datetime) -> dict[str, list[str]]:
        """#21: per vendor, the names (never values) of the session's live cookies."""
        jars = self._sessions.get(session_key, {})
        return {v: sorted({c.name for c in jar.cookies(now)}) for v, jar in jars.items()}

    def drop_vendor(self, session_key: str, vendor_id: str) -> None:
        """#21: forget one vendor's cookies for the session ("forget my cookies")."""
        jar = self._sessions.get(session_key, {}).pop(vendor_id, None)
        if jar is not None:
            jar.clear()
            self._count -= 1

    def drop_session(self, session_key: str) -> int:
        """Empty and forget every jar of the session; returns how many there were."""
        jars = self._sessions.pop(session_key, {})
        for jar in jars.values():
            jar.clear()  # a caller still holding the jar sees it empty too
        self._count -= len(jars)
        return len(jars)

    def __len__(self) -> int:
        return self._count
