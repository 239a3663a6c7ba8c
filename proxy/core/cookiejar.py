"""Server-side vendor cookie jars (RFC 6265) and Set-Cookie rescoping for ``cookies: pass``.

Contract: pure, synchronous, stdlib only; the clock is always passed in (``now``, timezone-aware).
A ``CookieJar`` holds one patron session's cookies for one vendor (``cookies: server_side``, the
default): ``store`` takes the vendor's Set-Cookie values (parsing per RFC 6265 §5.2, storage per
§5.3) and ``header_for`` builds the Cookie header of an upstream request (§5.4). A
``JarRegistry`` keys jars by (session key, vendor id), so two patrons never share a jar, and
``drop_session`` empties and forgets a session's jars (DESIGN P5). ``rescope_set_cookie`` is the
``cookies: pass`` path: it rewrites one vendor Set-Cookie for the browser, host-only on the
mapped host. Memory is bounded: at most ``max_cookies`` per jar (least recently sent evicted
first), at most 4096 bytes of name+value per cookie.

Stricter than RFC 6265 where RFC 6265bis (draft -12, §5.6) is, as browsers are: a Set-Cookie
with a control character is ignored; a Secure cookie from an http upstream is ignored and an
http upstream cannot overwrite a Secure cookie; the ``__Secure-``/``__Host-`` name prefixes are
enforced; attribute values over 1024 bytes are ignored. Nameless cookies (``=v``, ``v``) are
ignored, as RFC 6265 says. ``Expires`` is read with the §5.1.1 cookie-date algorithm only (any
zone is ignored and the time is UTC), not with ``email.utils``, whose leniency differs.

Why not ``http.cookiejar``: its policy objects work on urllib ``Request``/response objects that
we would have to fake for every upstream request, and its parsing is lenient where we want to
be strict (Netscape and RFC 2965 forms, ``$Version``/``Comment``/``Port`` attributes, quoted
values); ``http.cookies`` rejects many real-world cookies outright. §5.2 is short, so it is here.

Not here: reading Set-Cookie from and writing Cookie to aiohttp messages, and removing the
browser's own Cookie header (the relay and the header policy); the public suffix list (the
shell passes ``is_public_suffix``); SameSite enforcement (it is kept as an attribute, but every
upstream request is made by the proxy on the patron's behalf, so there is no "site" to compare).
Hosts are host names without a port, as in the URL (cookies are not port-specific, §8.5).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Final

DEFAULT_MAX_COOKIES: Final = 300  # RFC 2109 §6.3's "at least 300"; one patron and one vendor
MAX_NAME_VALUE_BYTES: Final = 4096  # RFC 6265 §6.1 "at least 4096 bytes", RFC 6265bis §5.6 limit
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1024  # RFC 6265bis §5.6: longer attribute values are ignored
EARLIEST: Final = datetime.min.replace(tzinfo=UTC)  # RFC 6265 §5.2.2 "earliest representable"
LATEST: Final = datetime.max.replace(tzinfo=UTC)  # RFC 6265 §5.2.2 "latest representable"

_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 6265bis §5.6: CTLs except HTAB
_WSP: Final = " \t"  # RFC 6265 §5.2: leading/trailing WSP is removed from names and values
_MAX_AGE: Final = re.compile(r"-?[0-9]+")  # RFC 6265 §5.2.2: DIGIT or "-", then DIGITs only
# RFC 6265 §5.1.1: delimiter = %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E
_DATE_DELIMITERS: Final = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_TIME: Final = re.compile(r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[^0-9].*)?", re.S)  # §5.1.1
_DAY: Final = re.compile(r"([0-9]{1,2})(?:[^0-9].*)?", re.S)  # RFC 6265 §5.1.1 day-of-month
_YEAR: Final = re.compile(r"([0-9]{2,4})(?:[^0-9].*)?", re.S)  # RFC 6265 §5.1.1 year
_MONTHS: Final[Mapping[str, int]] = {  # RFC 6265 §5.1.1 month: the first three letters count
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_SAME_SITE: Final[Mapping[str, str]] = {  # RFC 6265bis §5.6.7: anything else means "Default"
    "strict": "Strict",
    "lax": "Lax",
    "none": "None",
}


def _never_public(domain: str) -> bool:
    """The default public-suffix test: nothing is one (the shell passes the real list)."""
    return False


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


@dataclass(frozen=True, slots=True)
class SetCookie:
    """A parsed Set-Cookie (RFC 6265 §5.2), independent of the request and the clock."""

    name: str
    value: str
    expires: datetime | None = None
    max_age: int | None = None
    domain: str | None = None  # lowercased, leading dot removed; None: host-only
    path: str | None = None  # only a value starting with "/"; None: the default-path
    secure: bool = False
    http_only: bool = False
    same_site: str | None = None


# ---- RFC 6265 §5.1: dates, hosts, paths ----------------------------------------------------


def parse_cookie_date(text: str) -> datetime | None:
    """The §5.1.1 cookie-date algorithm: a UTC datetime, or None when the date is invalid."""
    found: dict[str, tuple[int, ...]] = {}
    for token in filter(None, _DATE_DELIMITERS.split(text)):
        if "time" not in found and (m := _TIME.fullmatch(token)):
            found["time"] = tuple(int(g) for g in m.groups())
        elif "day" not in found and (m := _DAY.fullmatch(token)):
            found["day"] = (int(m[1]),)
        elif "month" not in found and token[:3].lower() in _MONTHS:
            found["month"] = (_MONTHS[token[:3].lower()],)
        elif "year" not in found and (m := _YEAR.fullmatch(token)):
            found["year"] = (int(m[1]),)
    if len(found) < 4:
        return None
    (hour, minute, second), (day,), (month,), (year,) = (
        found[k] for k in ("time", "day", "month", "year")
    )
    year += 1900 if 70 <= year <= 99 else 2000 if year <= 69 else 0  # §5.1.1 steps 3 and 4
    if year < 1601 or hour > 23 or minute > 59 or second > 59:  # §5.1.1 step 5
        return None
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # day-of-month outside the month (also step 5)
        return None


def canonical_host(host: str) -> str:
    """RFC 6265 §5.1.2: lowercase, with A-labels for an internationalised name."""
    if host.isascii():
        return host.lower()
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host.lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def domain_match(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3: ``host`` is ``domain`` or a subdomain of it (never for an IP address)."""
    return host == domain or (host.endswith("." + domain) and not _is_ip(host))


def request_path_of(path: str) -> str:
    """The path of a request target: query and fragment cut off, "" read as "/"."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    return path or "/"


def default_path(request_path: str) -> str:
    """RFC 6265 §5.1.4: the directory of the request path ("/" when there is none)."""
    path = request_path_of(request_path)
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rindex("/")]


def path_match(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 §5.1.4: ``cookie_path`` is ``request_path`` or one of its directories."""
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


# ---- RFC 6265 §5.2: parsing Set-Cookie ----------------------------------------------------


def _expires_av(cookie: SetCookie, value: str) -> SetCookie:
    date = parse_cookie_date(value)
    return cookie if date is None else replace(cookie, expires=date)


def _max_age_av(cookie: SetCookie, value: str) -> SetCookie:
    return replace(cookie, max_age=int(value)) if _MAX_AGE.fullmatch(value) else cookie


def _domain_av(cookie: SetCookie, value: str) -> SetCookie:
    if not value:  # §5.2.3: an empty Domain "SHOULD" be ignored
        return cookie
    return replace(cookie, domain=canonical_host(value.removeprefix(".")) or None)


def _path_av(cookie: SetCookie, value: str) -> SetCookie:
    return replace(cookie, path=value if value.startswith("/") else None)  # §5.2.4: default


# Attribute name (case-insensitive) -> how its value changes the cookie (returning the cookie
# unchanged ignores the attribute). RFC 6265 §5.2.1-§5.2.6, RFC 6265bis §5.6.7 (SameSite);
# attributes not listed are ignored. Applied in order, so the last one of a name wins (§5.3).
_ATTRIBUTES: Final[Mapping[str, Callable[[SetCookie, str], SetCookie]]] = {
    "expires": _expires_av,
    "max-age": _max_age_av,
    "domain": _domain_av,
    "path": _path_av,
    "secure": lambda c, _: replace(c, secure=True),
    "httponly": lambda c, _: replace(c, http_only=True),
    "samesite": lambda c, v: replace(c, same_site=_SAME_SITE.get(v.lower())),
}


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def parse_set_cookie(text: str) -> SetCookie | None:
    """RFC 6265 §5.2: the cookie a Set-Cookie value sets, or None when it must be ignored."""
    if _CONTROL.search(text):
        return None
    pair, _, attributes = text.partition(";")
    name, eq, value = pair.partition("=")
    name, value = name.strip(_WSP), value.strip(_WSP)
    if not eq or not name or _utf8_len(name) + _utf8_len(value) > MAX_NAME_VALUE_BYTES:
        return None
    cookie = SetCookie(name, value)
    for av in attributes.split(";") if attributes else ():
        av_name, _, av_value = av.partition("=")
        apply = _ATTRIBUTES.get(av_name.strip(_WSP).lower())
        av_value = av_value.strip(_WSP)
        if apply is not None and _utf8_len(av_value) <= MAX_ATTRIBUTE_VALUE_BYTES:
            cookie = apply(cookie, av_value)
    return cookie


# RFC 6265bis §4.1.3 / §5.6 name prefixes: lowercased prefix -> what the cookie must look like,
# given (secure, Domain attribute present, Path attribute).
COOKIE_PREFIXES: Final[Mapping[str, Callable[[bool, bool, str | None], bool]]] = {
    "__secure-": lambda secure, _domain, _path: secure,
    "__host-": lambda secure, domain, path: secure and not domain and path == "/",
}


def _prefix_allows(cookie: SetCookie, *, secure: bool) -> bool:
    lowered = cookie.name.lower()
    return all(
        rule(secure, cookie.domain is not None, cookie.path)
        for prefix, rule in COOKIE_PREFIXES.items()
        if lowered.startswith(prefix)
    )


# ---- RFC 6265 §5.3: storage model ---------------------------------------------------------


def _cookie_domain(
    attribute: str | None, host: str, is_public_suffix: Callable[[str], bool]
) -> tuple[str, bool] | None:
    """RFC 6265 §5.3 steps 4-6: (domain, host-only), or None to ignore the cookie."""
    if attribute is None:
        return host, True
    if is_public_suffix(attribute):  # step 5: a public suffix only for that very host
        return (host, True) if attribute == host else None
    if not domain_match(host, attribute):  # step 6: a Domain must cover the host
        return None
    return attribute, False


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
        is_public_suffix: Callable[[str], bool] = _never_public,
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
        if not _prefix_allows(parsed, secure=parsed.secure):
            return None
        scope = _cookie_domain(parsed.domain, host, self._is_public_suffix)
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
        is_public_suffix: Callable[[str], bool] = _never_public,
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

    def drop_session(self, session_key: str) -> int:
        """Empty and forget every jar of the session; returns how many there were."""
        jars = self._sessions.pop(session_key, {})
        for jar in jars.values():
            jar.clear()  # a caller still holding the jar sees it empty too
        self._count -= len(jars)
        return len(jars)

    def __len__(self) -> int:
        return self._count


# ---- cookies: pass ------------------------------------------------------------------------


def rescope_set_cookie(
    value: str,
    *,
    upstream_host: str,
    secure_ok: bool,
    reserved_names: Collection[str],
    is_public_suffix: Callable[[str], bool] = _never_public,
) -> str | None:
    """Rewrite a vendor Set-Cookie for the browser (``cookies: pass``), or None to drop it.

    The result is always host-only, so the browser scopes it to the mapped host that served the
    response. A ``Domain`` attribute is checked (it must cover ``upstream_host`` and not be a
    public suffix, as a browser at the vendor would check) and then dropped: every vendor host has
    its own one-label mapped host, so a vendor domain cookie (``Domain=.vendor.com``) has no proxy
    equivalent short of ``Domain=<proxy host>``, which would leak it to every other vendor's
    mapped host. The price: a cookie set on ``www.vendor.com`` is not seen on the mapped
    ``search.vendor.com`` (``cookies: server_side`` has no such gap). Path, Expires, Max-Age,
    HttpOnly and SameSite are kept; Secure only when ``secure_ok`` (the proxy is served over
    https); other attributes are dropped. The value is rebuilt from the parse, never copied.

    Args:
        upstream_host: the vendor host whose response carried the Set-Cookie.
        secure_ok: whether the browser talks to the proxy over https.
        reserved_names: cookie names the proxy uses itself (its session cookie, sent to every
            mapped host): a vendor cookie with such a name (any case) is dropped.
    """
    cookie = parse_set_cookie(value)
    if cookie is None or cookie.name.lower() in {n.lower() for n in reserved_names}:
        return None
    if not _prefix_allows(cookie, secure=cookie.secure and secure_ok):
        return None
    if cookie.domain is not None:
        host = canonical_host(upstream_host)
        if _cookie_domain(cookie.domain, host, is_public_suffix) is None:
            return None
    return _render(cookie, secure=cookie.secure and secure_ok)


def _render(cookie: SetCookie, *, secure: bool) -> str:
    """Serialise a parsed cookie as a host-only Set-Cookie value (RFC 6265 §4.1.1 syntax)."""
    parts = [f"{cookie.name}={cookie.value}"]
    if cookie.path is not None:
        parts.append(f"Path={cookie.path}")
    if cookie.expires is not None:
        parts.append(f"Expires={format_datetime(cookie.expires, usegmt=True)}")
    if cookie.max_age is not None:
        parts.append(f"Max-Age={max(cookie.max_age, 0)}")
    parts += [flag for flag, on in (("Secure", secure), ("HttpOnly", cookie.http_only)) if on]
    if cookie.same_site is not None:
        parts.append(f"SameSite={cookie.same_site}")
    return "; ".join(parts)
