"""Set-Cookie parsing (RFC 6265 §5.2) and the §5.1 date, host and path algorithms.

Contract: pure, synchronous, stdlib only. ``parse_set_cookie`` turns one Set-Cookie value into a
``SetCookie`` (or None when it must be ignored), independent of the request and the clock. Two
checks are shared by the jar and by rescoping: ``prefix_allows`` (the ``__Secure-`` and ``__Host-``
name prefixes) and ``cookie_domain`` (§5.3 steps 4-6: what a ``Domain`` attribute may say for the
host that sent it). Stricter than RFC 6265 where RFC 6265bis (draft -12, §5.6) is, as browsers are:
a Set-Cookie with a control character is ignored, and so are attribute values over 1024 bytes.
Nameless cookies (``=v``, ``v``) are ignored, as RFC 6265 says. ``Expires`` is read with the §5.1.1
cookie-date algorithm only (any zone is ignored and the time is UTC), not with ``email.utils``,
whose leniency differs. ``http.cookiejar`` parses leniently where we want to be strict (Netscape
and RFC 2965 forms, ``$Version``/``Comment``/``Port`` attributes, quoted values) and
``http.cookies`` rejects many real-world cookies outright; §5.2 is short, so it is here.

Not here: storing cookies and building the Cookie header (cookiejar.py), rewriting a Set-Cookie
for the browser (cookierescope.py), the public suffix list (the shell passes
``is_public_suffix``). Hosts are host names without a port (cookies are not port-specific, §8.5).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

MAX_NAME_VALUE_BYTES: Final = 4096  # RFC 6265 §6.1 "at least 4096 bytes", RFC 6265bis §5.6 limit
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1024  # RFC 6265bis §5.6: longer attribute values are ignored

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


def never_public(domain: str) -> bool:
    """The default public-suffix test: nothing is one (the shell passes the real list)."""
    return False


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


def prefix_allows(cookie: SetCookie, *, secure: bool) -> bool:
    """Whether the cookie's name prefix (if any) allows it, ``secure`` being its Secure flag."""
    lowered = cookie.name.lower()
    return all(
        rule(secure, cookie.domain is not None, cookie.path)
        for prefix, rule in COOKIE_PREFIXES.items()
        if lowered.startswith(prefix)
    )


# ---- RFC 6265 §5.3 steps 4-6: the Domain attribute --------------------------------------


def cookie_domain(
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
