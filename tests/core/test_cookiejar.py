"""Tests for proxy.core.cookiejar: RFC 6265 vendor cookie jars and Set-Cookie rescoping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.cookiejar import CookieJar, JarRegistry, StoredCookie
from proxy.core.cookierescope import rescope_set_cookie
from proxy.core.setcookie import (
    default_path,
    domain_match,
    parse_cookie_date,
    parse_set_cookie,
    path_match,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PUBLIC_SUFFIXES = frozenset({"com", "org", "co.uk", "github.io"})
RESERVED = ("clamshell_session",)


def _jar(max_cookies: int = 300) -> CookieJar:
    return CookieJar(is_public_suffix=PUBLIC_SUFFIXES.__contains__, max_cookies=max_cookies)


def _store(
    jar: CookieJar,
    *values: str,
    host: str = "www.a.com",
    path: str = "/",
    secure: bool = True,
    at: float = 0,
) -> list[StoredCookie]:
    now = T0 + timedelta(seconds=at)
    return jar.store(values, request_host=host, request_path=path, secure_scheme=secure, now=now)


def _header(
    jar: CookieJar, host: str = "www.a.com", path: str = "/", secure: bool = True, at: float = 0
) -> str | None:
    now = T0 + timedelta(seconds=at)
    return jar.header_for(host=host, path=path, secure_scheme=secure, now=now)


def _one(text: str, *, host: str = "www.a.com", path: str = "/") -> StoredCookie | None:
    stored = _store(_jar(), text, host=host, path=path)
    return stored[0] if stored else None


# ---- domain ------------------------------------------------------------------------------

# id -> (Set-Cookie, host it came from, host asked for, sent?)
DOMAIN_CASES: dict[str, tuple[str, str, str, bool]] = {
    "host-only: its own host": ("c=1", "www.a.com", "www.a.com", True),
    "host-only: not a sibling": ("c=1", "www.a.com", "cdn.a.com", False),
    "host-only: not the parent": ("c=1", "www.a.com", "a.com", False),
    "host-only: not a subdomain": ("c=1", "www.a.com", "x.www.a.com", False),
    "domain: the setting host": ("c=1; Domain=a.com", "www.a.com", "www.a.com", True),
    "domain: a sibling": ("c=1; Domain=a.com", "www.a.com", "cdn.a.com", True),
    "domain: the domain itself": ("c=1; Domain=a.com", "www.a.com", "a.com", True),
    "domain: not a lookalike": ("c=1; Domain=a.com", "www.a.com", "xa.com", False),
    "domain: not a suffix trick": ("c=1; Domain=a.com", "www.a.com", "a.com.evil.org", False),
    "leading dot ignored": ("c=1; Domain=.a.com", "www.a.com", "cdn.a.com", True),
    "case-insensitive": ("c=1; Domain=A.COM", "WWW.a.com", "cdn.A.com", True),
    "mismatch ignored (asked there)": ("c=1; Domain=evil.com", "www.a.com", "evil.com", False),
    "mismatch ignored (asked here)": ("c=1; Domain=evil.com", "www.a.com", "www.a.com", False),
    "a subdomain's Domain ignored": ("c=1; Domain=www.a.com", "a.com", "www.a.com", False),
    "public suffix refused": ("c=1; Domain=com", "www.a.com", "www.a.com", False),
    "public suffix refused (two labels)": ("c=1; Domain=co.uk", "b.co.uk", "b.co.uk", False),
    "suffix equal to host: host-only": ("c=1; Domain=github.io", "github.io", "github.io", True),
    "suffix equal to host: no subdomain": (
        "c=1; Domain=github.io",
        "github.io",
        "x.github.io",
        False,
    ),
    "empty Domain ignored: host-only": ("c=1; Domain=", "www.a.com", "www.a.com", True),
    "empty Domain ignored: no sibling": ("c=1; Domain=", "www.a.com", "cdn.a.com", False),
    "last Domain wins": ("c=1; Domain=evil.com; Domain=a.com", "www.a.com", "cdn.a.com", True),
    "IP: exact Domain": ("c=1; Domain=10.0.0.1", "10.0.0.1", "10.0.0.1", True),
    "IP: never a suffix": ("c=1; Domain=0.0.1", "10.0.0.1", "10.0.0.1", False),
}


@pytest.mark.parametrize(
    ("set_cookie", "from_host", "to_host", "sent"),
    list(DOMAIN_CASES.values()),
    ids=list(DOMAIN_CASES),
)
def test_domain_scope(set_cookie: str, from_host: str, to_host: str, sent: bool) -> None:
    """A cookie goes to its host only (host-only) or to its domain (Domain=), else nowhere."""
    jar = _jar()
    _store(jar, set_cookie, host=from_host)
    assert (_header(jar, host=to_host) == "c=1") is sent


# ---- path --------------------------------------------------------------------------------

# id -> (Set-Cookie, path it was set from, path asked for, sent?)
PATH_CASES: dict[str, tuple[str, str, str, bool]] = {
    "/a matches /a": ("c=1; Path=/a", "/", "/a", True),
    "/a matches /a/": ("c=1; Path=/a", "/", "/a/", True),
    "/a matches /a/b": ("c=1; Path=/a", "/", "/a/b", True),
    "/a does not match /ab": ("c=1; Path=/a", "/", "/ab", False),
    "/a does not match /": ("c=1; Path=/a", "/", "/", False),
    "paths are case-sensitive": ("c=1; Path=/a", "/", "/A", False),
    "the query is not the path": ("c=1; Path=/a", "/", "/a?x=/b", True),
    "/a/ does not match /a": ("c=1; Path=/a/", "/", "/a", False),
    "/a/ matches /a/b": ("c=1; Path=/a/", "/", "/a/b", True),
    "/ matches everything": ("c=1; Path=/", "/x/y", "/anything/at/all", True),
    "default path: same directory": ("c=1", "/a/b/c", "/a/b/other", True),
    "default path: the directory": ("c=1", "/a/b/c", "/a/b", True),
    "default path: not a sibling": ("c=1", "/a/b/c", "/a/bc", False),
    "default path: not the parent": ("c=1", "/a/b/c", "/a", False),
    "relative Path means default": ("c=1; Path=rel", "/x/y", "/x/z", True),
    "relative Path: not elsewhere": ("c=1; Path=rel", "/x/y", "/y", False),
}


@pytest.mark.parametrize(
    ("set_cookie", "set_path", "ask_path", "sent"), list(PATH_CASES.values()), ids=list(PATH_CASES)
)
def test_path_scope(set_cookie: str, set_path: str, ask_path: str, sent: bool) -> None:
    """A cookie goes only to request paths that path-match its path (RFC 6265 §5.1.4)."""
    jar = _jar()
    _store(jar, set_cookie, path=set_path)
    assert (_header(jar, path=ask_path) == "c=1") is sent


@pytest.mark.parametrize(
    ("request_path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/a", "/"),
        ("/a/", "/a"),
        ("/a/b", "/a"),
        ("/a/b/c", "/a/b"),
        ("/a/b?q=/c/d", "/a"),
        ("/a#f/g", "/"),
        ("x/y", "/"),
    ],
)
def test_default_path(request_path: str, expected: str) -> None:
    """Without a Path the cookie takes the request path's directory (RFC 6265 §5.1.4)."""
    assert default_path(request_path) == expected
    stored = _one("c=1", path=request_path)
    assert stored is not None and stored.path == expected


# ---- Secure and name prefixes ----------------------------------------------------------

# id -> (Set-Cookie, stored over https?, asked over https?, sent?)
SECURE_CASES: dict[str, tuple[str, bool, bool, bool]] = {
    "Secure sent over https": ("c=1; Secure", True, True, True),
    "Secure not sent over http": ("c=1; Secure", True, False, False),
    "plain cookie sent over http": ("c=1", True, False, True),
    "Secure from http ignored": ("c=1; Secure", False, True, False),
    "__Secure- with Secure kept": ("__Secure-c=1; Secure", True, True, True),
    "__Secure- without Secure ignored": ("__Secure-c=1", True, True, False),
    "__Host- done right kept": ("__Host-c=1; Secure; Path=/", True, True, True),
    "__Host- with a Domain ignored": (
        "__Host-c=1; Secure; Path=/; Domain=www.a.com",
        True,
        True,
        False,
    ),
    "__Host- without Path=/ ignored": ("__Host-c=1; Secure", True, True, False),
    "prefixes are case-insensitive": ("__HOST-c=1; Path=/", True, True, False),
}


@pytest.mark.parametrize(
    ("set_cookie", "set_secure", "ask_secure", "sent"),
    list(SECURE_CASES.values()),
    ids=list(SECURE_CASES),
)
def test_secure(set_cookie: str, set_secure: bool, ask_secure: bool, sent: bool) -> None:
    """Secure cookies come only from and go only to https upstreams; prefixes are enforced."""
    jar = _jar()
    _store(jar, set_cookie, secure=set_secure)
    header = _header(jar, secure=ask_secure)
    assert (header is not None and header.endswith("c=1")) is sent


@pytest.mark.parametrize("attack", ["c=evil", "c=evil; Path=/sub", "c=evil; Domain=a.com"])
def test_http_cannot_overwrite_secure(attack: str) -> None:
    """An http response cannot replace or shadow a Secure cookie of the same name."""
    jar = _jar()
    _store(jar, "c=good; Secure")
    assert _store(jar, attack, secure=False) == []
    assert _header(jar, path="/sub/x") == "c=good"
    assert _store(jar, "other=1", secure=False) != []


# ---- expiry ------------------------------------------------------------------------------

# id -> (Set-Cookie stored at T0, seconds after T0 asked, sent?)
EXPIRY_CASES: dict[str, tuple[str, float, bool]] = {
    "Max-Age: alive before": ("c=1; Max-Age=60", 59, True),
    "Max-Age: gone at": ("c=1; Max-Age=60", 60, False),
    "Expires: alive before": ("c=1; Expires=Thu, 01 Jan 2026 00:01:00 GMT", 59, True),
    "Expires: gone at": ("c=1; Expires=Thu, 01 Jan 2026 00:01:00 GMT", 60, False),
    "Max-Age wins over an earlier Expires": (
        "c=1; Max-Age=60; Expires=Thu, 01 Jan 2026 00:00:01 GMT",
        30,
        True,
    ),
    "Max-Age wins wherever it stands": (
        "c=1; Expires=Thu, 01 Jan 2026 00:01:00 GMT; Max-Age=0",
        0,
        False,
    ),
    "Expires in the past: not stored": ("c=1; Expires=Wed, 31 Dec 2025 00:00:00 GMT", 0, False),
    "Max-Age=0: not stored": ("c=1; Max-Age=0", 0, False),
    "Max-Age negative: not stored": ("c=1; Max-Age=-1", 0, False),
    "bad Expires: session cookie": ("c=1; Expires=soon", 10**9, True),
    "bad Max-Age: session cookie": ("c=1; Max-Age=1e3", 10**9, True),
    "Max-Age with a plus: ignored": ("c=1; Max-Age=+5", 10**9, True),
    "huge Max-Age: never expires": ("c=1; Max-Age=99999999999999999999", 10**9, True),
}


@pytest.mark.parametrize(
    ("set_cookie", "at", "sent"), list(EXPIRY_CASES.values()), ids=list(EXPIRY_CASES)
)
def test_expiry(set_cookie: str, at: float, sent: bool) -> None:
    """Max-Age (which wins) or Expires end a cookie; the clock is the injected ``now``."""
    jar = _jar()
    _store(jar, set_cookie)
    assert (_header(jar, at=at) == "c=1") is sent
    assert (len(jar.cookies(T0 + timedelta(seconds=at))) == 1) is sent


@pytest.mark.parametrize(
    "deletion", ["c=; Max-Age=0", "c=x; Max-Age=-5", "c=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]
)
def test_deletion(deletion: str) -> None:
    """A Set-Cookie that is already expired deletes the stored cookie and reports nothing."""
    jar = _jar()
    _store(jar, "c=1", "d=1")
    assert _store(jar, deletion, at=1) == []
    assert _header(jar, at=1) == "d=1"
    assert len(jar) == 1


def test_deletion_needs_same_domain_and_path() -> None:
    """A deletion only removes the cookie with the same name, domain and path."""
    jar = _jar()
    _store(jar, "c=1")
    _store(jar, "c=; Max-Age=0; Path=/x", "c=; Max-Age=0; Domain=a.com")
    assert _header(jar) == "c=1"


# ---- cookie-date (RFC 6265 §5.1.1) --------------------------------------------------------

WHEN = datetime(2021, 6, 9, 10, 18, 14, tzinfo=UTC)
DATE_CASES: dict[str, tuple[str, datetime | None]] = {
    "IMF-fixdate": ("Wed, 09 Jun 2021 10:18:14 GMT", WHEN),
    "RFC 850": ("Wednesday, 09-Jun-21 10:18:14 GMT", WHEN),
    "asctime": ("Wed Jun  9 10:18:14 2021", WHEN),
    "zone ignored": ("Wed, 09 Jun 2021 10:18:14 +0200", WHEN),
    "no weekday, lowercase month": ("9 jun 2021 10:18:14", WHEN),
    "long month name": ("9 June 2021 10:18:14", WHEN),
    "single-digit time fields": ("1 Jan 2021 1:2:3", datetime(2021, 1, 1, 1, 2, 3, tzinfo=UTC)),
    "two-digit year 70 is 1970": ("01 Jan 70 00:00:00", datetime(1970, 1, 1, tzinfo=UTC)),
    "two-digit year 69 is 2069": ("01 Jan 69 00:00:00", datetime(2069, 1, 1, tzinfo=UTC)),
    "extra tokens ignored": ("Jan 1 2021 00:00:00 123", datetime(2021, 1, 1, tzinfo=UTC)),
    "before 1601": ("01 Jan 1600 00:00:00", None),
    "no such day": ("31 Feb 2021 00:00:00", None),
    "hour 24": ("01 Jan 2021 24:00:00", None),
    "minute 60": ("01 Jan 2021 00:60:00", None),
    "no time": ("01 Jan 2021", None),
    "no month": ("01 Foo 2021 00:00:00", None),
    "empty": ("", None),
}


@pytest.mark.parametrize(("text", "expected"), list(DATE_CASES.values()), ids=list(DATE_CASES))
def test_cookie_date(text: str, expected: datetime | None) -> None:
    """The §5.1.1 algorithm reads every common date form in UTC and refuses invalid dates."""
    assert parse_cookie_date(text) == expected


@given(st.datetimes(min_value=datetime(1601, 1, 1), max_value=datetime(9999, 12, 31)))
def test_cookie_date_reads_what_http_writes(when: datetime) -> None:
    """Any HTTP-date the standard library formats parses back to the same second."""
    from email.utils import format_datetime

    when = when.replace(microsecond=0, tzinfo=UTC)
    assert parse_cookie_date(format_datetime(when, usegmt=True)) == when


# ---- parsing and limits ---------------------------------------------------------------------

# id -> (Set-Cookie, (name, value) stored, or None when ignored)
PARSE_CASES: dict[str, tuple[str, tuple[str, str] | None]] = {
    "plain": ("a=b", ("a", "b")),
    "whitespace trimmed": (" a = b ;Path=/", ("a", "b")),
    "value keeps later =": ("a=b=c", ("a", "b=c")),
    "quotes kept": ('a="q r"', ("a", '"q r"')),
    "empty value": ("a=", ("a", "")),
    "inner HTAB allowed": ("a=b\tc", ("a", "b\tc")),
    "no = ignored": ("a", None),
    "no name ignored": ("=b", None),
    "empty ignored": ("", None),
    "CTL in value ignored": ("a=b\x01", None),
    "DEL ignored": ("a=b\x7f", None),
    "CR LF ignored": ("a=b\r\nX-Evil: 1", None),
    "CTL in an attribute ignored": ("a=b; Path=/\x00", None),
    "4096 bytes kept": ("n=" + "v" * 4095, ("n", "v" * 4095)),
    "4097 bytes ignored": ("n=" + "v" * 4096, None),
    "bytes, not characters": ("n=" + "é" * 2048, None),
    "multi-byte within the limit": ("n=" + "é" * 2047 + "v", ("n", "é" * 2047 + "v")),
}


@pytest.mark.parametrize(("text", "expected"), list(PARSE_CASES.values()), ids=list(PARSE_CASES))
def test_parse_and_limits(text: str, expected: tuple[str, str] | None) -> None:
    """Name and value follow §5.2; control characters and oversize cookies are ignored."""
    stored = _one(text)
    assert (None if stored is None else (stored.name, stored.value)) == expected


# id -> (Set-Cookie, set from path, expected (path, secure, http_only, same_site))
ATTRIBUTE_CASES: dict[str, tuple[str, str, tuple[str, bool, bool, str | None]]] = {
    "none given": ("c=1", "/d/x", ("/d", False, False, None)),
    "names case-insensitive": (
        "c=1; pAtH=/x; SECURE; hTTPonly; samesite=lax",
        "/",
        ("/x", True, True, "Lax"),
    ),
    "flags ignore a value": ("c=1; Secure=no; HttpOnly=0", "/", ("/", True, True, None)),
    "last Path wins": ("c=1; Path=/a; Path=/b", "/", ("/b", False, False, None)),
    "invalid last Path means default": ("c=1; Path=/a; Path=x", "/d/x", ("/d", False, False, None)),
    "overlong attribute ignored": ("c=1; Path=/" + "p" * 1024, "/d/x", ("/d", False, False, None)),
    "SameSite Strict": ("c=1; SameSite=STRICT", "/", ("/", False, False, "Strict")),
    "SameSite None": ("c=1; SameSite=None; Secure", "/", ("/", True, False, "None")),
    "unknown SameSite is Default": (
        "c=1; SameSite=Lax; SameSite=odd",
        "/",
        ("/", False, False, None),
    ),
    "unknown attributes ignored": (
        "c=1; Partitioned; Priority=High",
        "/",
        ("/", False, False, None),
    ),
}


@pytest.mark.parametrize(
    ("text", "set_path", "expected"), list(ATTRIBUTE_CASES.values()), ids=list(ATTRIBUTE_CASES)
)
def test_attributes(text: str, set_path: str, expected: tuple[str, bool, bool, str | None]) -> None:
    """Attribute names are case-insensitive, the last of a name wins, unknown ones are ignored."""
    stored = _one(text, path=set_path)
    assert stored is not None
    assert (stored.path, stored.secure, stored.http_only, stored.same_site) == expected


def test_naive_clock_refused() -> None:
    """A naive ``now`` is a programming error, not a silently shifted expiry."""
    with pytest.raises(ValueError, match="timezone-aware"):
        _jar().header_for(host="a.com", path="/", secure_scheme=True, now=datetime(2026, 1, 1))


# ---- storage model ---------------------------------------------------------------------------


def test_replacement_keeps_creation_time() -> None:
    """Replacing a cookie (same name, domain, path) keeps its creation time and its place."""
    jar = _jar()
    _store(jar, "c=1", at=0)
    _store(jar, "d=1", at=1)
    (updated,) = _store(jar, "c=2; HttpOnly", at=2)
    assert (updated.value, updated.created, updated.http_only) == ("2", T0, True)
    assert _header(jar, at=3) == "c=2; d=1"
    assert len(jar) == 2


def test_same_name_other_path_is_another_cookie() -> None:
    """Cookies with one name but different paths are kept side by side."""
    jar = _jar()
    _store(jar, "c=root", "c=deep; Path=/x")
    assert _header(jar, path="/x/y") == "c=deep; c=root"
    assert _header(jar, path="/y") == "c=root"


def test_ordering() -> None:
    """Longer paths come first, then earlier creation (RFC 6265 §5.4 step 2)."""
    jar = _jar()
    _store(jar, "a=1; Path=/", "b=1; Path=/x/y", "c=1; Path=/x", at=0)
    _store(jar, "d=1; Path=/x", at=1)
    _store(jar, "e=1; Path=/x/", at=-1)
    assert _header(jar, path="/x/y/z", at=2) == "b=1; e=1; c=1; d=1; a=1"


def test_store_reports_what_it_holds() -> None:
    """``store`` returns the cookies now held: not ignored ones, nor earlier duplicates."""
    stored = _store(_jar(), "a=1", "bad", "a=2", "b=1; Domain=evil.com", "c=1")
    assert [(c.name, c.value) for c in stored] == [("a", "2"), ("c", "1")]


def test_eviction_is_least_recently_sent() -> None:
    """Over the limit, the cookie least recently sent or stored goes first."""
    jar = _jar(max_cookies=3)
    _store(jar, "a=1; Path=/a", at=0)
    _store(jar, "b=1; Path=/b", at=1)
    _store(jar, "c=1; Path=/c", at=2)
    assert _header(jar, path="/a", at=3) == "a=1"
    _store(jar, "d=1; Path=/d", at=4)
    assert [c.name for c in jar.cookies(T0 + timedelta(seconds=5))] == ["a", "c", "d"]


def test_eviction_takes_expired_first() -> None:
    """Expired cookies are dropped before any live one is evicted."""
    jar = _jar(max_cookies=2)
    _store(jar, "a=1; Max-Age=10", at=0)
    _store(jar, "b=1", at=1)
    _store(jar, "c=1", at=20)
    assert _header(jar, at=21) == "b=1; c=1"


def test_limit_holds_within_one_response() -> None:
    """A response with more cookies than the limit keeps only the last ones."""
    jar = _jar(max_cookies=2)
    stored = _store(jar, *(f"c{i}=1" for i in range(5)))
    assert [c.name for c in stored] == ["c3", "c4"]
    assert len(jar) == 2


def test_clear() -> None:
    """``clear`` forgets every cookie."""
    jar = _jar()
    _store(jar, "a=1", "b=1")
    jar.clear()
    assert (len(jar), _header(jar)) == (0, None)


def test_max_cookies_must_be_positive() -> None:
    """A jar that could hold nothing is a configuration error."""
    with pytest.raises(ValueError, match="max_cookies"):
        CookieJar(max_cookies=0)


# ---- properties ------------------------------------------------------------------------------

_LABELS = st.sampled_from(["a", "b", "www", "cdn", "com", "co"])
_HOSTS = st.lists(_LABELS, min_size=1, max_size=3).map(".".join)
_PATHS = st.lists(st.sampled_from(["a", "b", "ab", ""]), max_size=3).map(
    lambda p: "/" + "/".join(p)
)
_ATTRS = st.lists(
    st.one_of(
        _HOSTS.map(lambda h: f"Domain={h}"),
        _HOSTS.map(lambda h: f"Domain=.{h}"),
        _PATHS.map(lambda p: f"Path={p}"),
        st.sampled_from(["Secure", "HttpOnly", "Max-Age=5", "Max-Age=0"]),
    ),
    max_size=3,
).map("".join)
_SETS = st.lists(st.tuples(_HOSTS, _PATHS, st.booleans(), _ATTRS), max_size=12)


@given(_SETS, _HOSTS, _PATHS, st.booleans(), st.integers(0, 10))
def test_header_only_carries_matching_cookies(
    sets: list[tuple[str, str, bool, str]], host: str, path: str, secure: bool, at: int
) -> None:
    """``header_for`` never returns a cookie whose domain, path or Secure flag do not match."""
    jar = _jar()
    for i, (from_host, from_path, from_secure, attrs) in enumerate(sets):
        _store(jar, f"c{i}=v; {attrs}", host=from_host, path=from_path, secure=from_secure)
    by_name = {c.name: c for c in jar.cookies(T0 + timedelta(seconds=at))}
    header = _header(jar, host=host, path=path, secure=secure, at=at)
    for pair in header.split("; ") if header else []:
        cookie = by_name[pair.partition("=")[0]]
        assert host == cookie.domain if cookie.host_only else domain_match(host, cookie.domain)
        assert path_match(path, cookie.path)
        assert secure or not cookie.secure
        assert cookie.domain not in PUBLIC_SUFFIXES or cookie.host_only


@given(
    st.lists(
        st.tuples(st.sampled_from(["s1", "s2"]), st.sampled_from(["v1", "v2"]), st.integers(0, 99))
    )
)
def test_interleaved_sessions_never_share(steps: list[tuple[str, str, int]]) -> None:
    """Whatever the interleaving, each (session, vendor) jar sends only its own last value."""
    registry = JarRegistry()
    last: dict[tuple[str, str], int] = {}
    for session, vendor, value in steps:
        _store(registry.jar(session, vendor), f"sid={value}")
        last[session, vendor] = value
        for (s, v), expected in last.items():
            assert _header(registry.jar(s, v)) == f"sid={expected}"
    assert len(registry) == len(last)


# ---- registry --------------------------------------------------------------------------------


def test_two_patrons_interleaved() -> None:
    """Two sessions on one vendor, interleaved, never see each other's cookies or deletions."""
    registry = JarRegistry()
    alice, bob = registry.jar("s-alice", "jstor"), registry.jar("s-bob", "jstor")
    _store(alice, "sid=alice; Domain=a.com")
    assert _header(bob) is None
    _store(bob, "sid=bob; Domain=a.com")
    assert (_header(alice), _header(bob)) == ("sid=alice", "sid=bob")
    _store(bob, "sid=; Domain=a.com; Max-Age=0", at=1)
    assert (_header(alice, at=2), _header(bob, at=2)) == ("sid=alice", None)
    assert registry.jar("s-alice", "jstor") is alice
    assert _header(registry.jar("s-alice", "ebsco")) is None


def test_drop_session_deletes_only_that_session() -> None:
    """``drop_session`` empties and forgets one session's jars and leaves the others alone."""
    registry = JarRegistry()
    held = registry.jar("s1", "v1")
    _store(held, "a=1")
    _store(registry.jar("s1", "v2"), "b=1")
    _store(registry.jar("s2", "v1"), "c=1")
    assert (len(registry), registry.drop_session("s1"), len(registry)) == (3, 2, 1)
    assert len(held) == 0
    assert _header(registry.jar("s2", "v1")) == "c=1"
    assert registry.drop_session("s1") == 0
    assert _header(registry.jar("s1", "v1")) is None


def test_registry_passes_its_settings() -> None:
    """Jars from a registry use its public-suffix test and its limit."""
    registry = JarRegistry(is_public_suffix=PUBLIC_SUFFIXES.__contains__, max_cookies=1)
    jar = registry.jar("s", "v")
    assert _store(jar, "a=1; Domain=com") == []
    _store(jar, "a=1", "b=1")
    assert len(jar) == 1


# ---- cookies: pass ---------------------------------------------------------------------------

# id -> (vendor Set-Cookie, upstream host, secure_ok, what the browser gets or None)
RESCOPE_CASES: dict[str, tuple[str, str, bool, str | None]] = {
    "domain cookie becomes host-only": (
        "sid=1; Domain=.vendor.com; Path=/; Secure; HttpOnly; SameSite=Lax",
        "www.vendor.com",
        True,
        "sid=1; Path=/; Secure; HttpOnly; SameSite=Lax",
    ),
    "Secure dropped over http": (
        "sid=1; Domain=vendor.com; Path=/; Secure; HttpOnly",
        "www.vendor.com",
        False,
        "sid=1; Path=/; HttpOnly",
    ),
    "exact host Domain": ("sid=1; Domain=WWW.Vendor.com", "www.vendor.com", True, "sid=1"),
    "foreign Domain dropped": ("sid=1; Domain=evil.com", "www.vendor.com", True, None),
    "public suffix Domain dropped": ("sid=1; Domain=com", "www.vendor.com", True, None),
    "expiry kept": (
        "sid=1; max-age=3600; expires=Wed, 09-Jun-2021 10:18:14 GMT",
        "www.vendor.com",
        True,
        "sid=1; Expires=Wed, 09 Jun 2021 10:18:14 GMT; Max-Age=3600",
    ),
    "negative Max-Age is 0": ("sid=1; Max-Age=-5", "www.vendor.com", True, "sid=1; Max-Age=0"),
    "bad Expires dropped": ("sid=1; Expires=soon", "www.vendor.com", True, "sid=1"),
    "relative Path dropped": ("sid=1; Path=x", "www.vendor.com", True, "sid=1"),
    "unknown attributes dropped": (
        "sid=1; Partitioned; Priority=High; Comment=hi",
        "www.vendor.com",
        True,
        "sid=1",
    ),
    "the proxy's cookie name dropped": (
        "clamshell_session=x; Path=/",
        "www.vendor.com",
        True,
        None,
    ),
    "any case of it dropped": ("CLAMSHELL_SESSION=x", "www.vendor.com", True, None),
    "__Host- kept over https": (
        "__Host-id=1; Secure; Path=/",
        "www.vendor.com",
        True,
        "__Host-id=1; Path=/; Secure",
    ),
    "__Host- dropped over http": ("__Host-id=1; Secure; Path=/", "www.vendor.com", False, None),
    "__Secure- without Secure dropped": ("__Secure-id=1", "www.vendor.com", True, None),
    "header injection dropped": ("sid=1\r\nSet-Cookie: x=y", "www.vendor.com", True, None),
    "not a cookie": ("garbage", "www.vendor.com", True, None),
}


@pytest.mark.parametrize(
    ("value", "upstream", "secure_ok", "expected"),
    list(RESCOPE_CASES.values()),
    ids=list(RESCOPE_CASES),
)
def test_rescope_set_cookie(
    value: str, upstream: str, secure_ok: bool, expected: str | None
) -> None:
    """A vendor Set-Cookie is rebuilt host-only for the mapped host, or dropped."""
    got = rescope_set_cookie(
        value,
        upstream_host=upstream,
        secure_ok=secure_ok,
        reserved_names=RESERVED,
        is_public_suffix=PUBLIC_SUFFIXES.__contains__,
    )
    assert got == expected


@given(st.one_of(st.text(), st.builds("{}={}; {}".format, st.text(), st.text(), _ATTRS)))
def test_rescoped_cookie_is_host_only_and_faithful(value: str) -> None:
    """A rescoped cookie never has a Domain and keeps the vendor's name and value exactly."""
    got = rescope_set_cookie(
        value, upstream_host="www.a.com", secure_ok=True, reserved_names=RESERVED
    )
    if got is not None:
        original, again = parse_set_cookie(value), parse_set_cookie(got)
        assert original is not None and again is not None
        assert again.domain is None
        assert (again.name, again.value, again.path) == (
            original.name,
            original.value,
            original.path,
        )
