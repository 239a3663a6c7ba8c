"""Header policy in both directions."""

from __future__ import annotations

import pytest

from proxy.core.headers import (
    Header,
    OutgoingPolicy,
    coarse_language,
    incoming_headers,
    map_csp,
    outgoing_headers,
)
from proxy.core.urlmap import UrlMapper
from proxy.core.useragent import GENERIC_USER_AGENT

P = "proxy.localhost:8080"
BROWSER: list[Header] = [
    ("Host", f"www-jstor-org.{P}"),
    ("User-Agent", "Mozilla/5.0 Test"),
    ("Accept", "text/html"),
    ("Accept-Language", "de-CH,de;q=0.9,en;q=0.8"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("X-Forwarded-For", "203.0.113.9"),
    ("Forwarded", "for=203.0.113.9"),
    ("Via", "1.1 corp"),
    ("X-Real-IP", "203.0.113.9"),
    ("True-Client-IP", "203.0.113.9"),
    ("CF-Connecting-IP", "203.0.113.9"),
    ("Client-IP", "203.0.113.9"),
    ("Sec-CH-UA", '"Chromium";v="156"'),
    ("Sec-CH-UA-Platform", '"Linux"'),
    ("From", "patron@example.org"),
    ("Authorization", "Basic Y2FyZDpwaW4="),
    ("Proxy-Authorization", "Basic eA=="),
    ("Cookie", "clamshell_session=SECRET; other=1"),
    ("DNT", "1"),
    ("Sec-GPC", "1"),
    ("Connection", "keep-alive, X-Secret-Hop"),
    ("X-Secret-Hop", "hop"),
    ("TE", "trailers"),
    ("X-Custom", "custom"),
    ("Range", "bytes=0-99"),
    ("Referer", f"http://www-jstor-org.{P}/stable/1?q=canary"),
    ("Origin", f"http://www-jstor-org.{P}"),
]


def names(headers: list[Header]) -> set[str]:
    """Lower-case header names."""
    return {n.lower() for n, _ in headers}


def test_allow_list_drops_everything_identifying(mapper: UrlMapper) -> None:
    """Only allow-listed headers pass; identifying, hop-by-hop and client hints never do."""
    out = outgoing_headers(
        BROWSER,
        policy=OutgoingPolicy(),
        mapper=mapper,
        host="www.jstor.org",
        cookie=None,
        pseudonym=None,
    )
    assert names(out) == {
        "host",
        "user-agent",
        "accept",
        "accept-language",
        "accept-encoding",
        "range",
        "referer",
        "origin",
    }
    assert ("Host", "www.jstor.org") in out


def test_referer_and_origin_translate_back(mapper: UrlMapper) -> None:
    """Referer and Origin on mapped hosts become the vendor's own URL and origin."""
    out = dict(
        outgoing_headers(
            BROWSER,
            policy=OutgoingPolicy(),
            mapper=mapper,
            host="www.jstor.org",
            cookie=None,
            pseudonym=None,
        )
    )
    assert out["Referer"] == "https://www.jstor.org/stable/1?q=canary"
    assert out["Origin"] == "https://www.jstor.org"


@pytest.mark.parametrize(
    "referer",
    [
        f"http://{P}/login?url=https://www.jstor.org/",
        "https://www.google.com/search?q=x",
        f"http://www-unknown-org.{P}/",
        "garbage",
    ],
)
def test_other_referers_are_dropped(mapper: UrlMapper, referer: str) -> None:
    """A Referer naming the portal, another site or an unknown host is dropped."""
    out = outgoing_headers(
        [("Referer", referer), ("Origin", f"http://{P}")],
        policy=OutgoingPolicy(),
        mapper=mapper,
        host="www.jstor.org",
        cookie=None,
        pseudonym=None,
    )
    assert names(out) == {"host"}


def test_rule_additions_cookie_and_pseudonym(mapper: UrlMapper) -> None:
    """Rule allow/set, the jar's Cookie and the pseudonym are added; identifying stays out."""
    policy = OutgoingPolicy(
        allow=frozenset({"x-custom", "x-forwarded-for"}),
        set={"X-Consortium": "mlc", "X-Real-IP": "1.2.3.4"},
        user_agent="generic",
    )
    out = outgoing_headers(
        BROWSER,
        policy=policy,
        mapper=mapper,
        host="www.jstor.org",
        cookie="vendor=1",
        pseudonym=("X-Patron-Pseudonym", "abc"),
    )
    got = dict(out)
    assert got["X-Custom"] == "custom"
    assert got["X-Consortium"] == "mlc"
    assert got["Cookie"] == "vendor=1"
    assert got["X-Patron-Pseudonym"] == "abc"
    assert got["User-Agent"] == GENERIC_USER_AGENT
    assert not names(out) & {"x-forwarded-for", "x-real-ip"}


@pytest.mark.parametrize(
    ("value", "coarse"),
    [
        ("de-CH,de;q=0.9,en;q=0.8", "de, en;q=0.5"),
        ("en-US", "en"),
        ("*", ""),
        ("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7,de;q=0.5", "fr, en;q=0.5"),
    ],
)
def test_accept_language_is_coarse(value: str, coarse: str) -> None:
    """Accept-Language keeps at most two primary language tags."""
    assert coarse_language(value) == coarse


UPSTREAM: list[Header] = [
    ("Location", "https://www.jstor.org/stable/2"),
    ("Content-Location", "/relative"),
    ("Refresh", "5; url=https://search.bigdb.test/x"),
    ("Link", "<https://www.jstor.org/style.css>; rel=preload, <https://other.org/a>; rel=next"),
    ("Access-Control-Allow-Origin", "https://www.jstor.org"),
    ("Strict-Transport-Security", "max-age=1; includeSubDomains"),
    ("Alt-Svc", 'h3=":443"'),
    ("NEL", "{}"),
    ("Report-To", "{}"),
    ("Clear-Site-Data", '"cookies"'),
    ("Set-Cookie", "a=1; Domain=jstor.org"),
    ("Set-Cookie", "b=2"),
    ("Connection", "close, X-Hop"),
    ("X-Hop", "1"),
    ("Transfer-Encoding", "chunked"),
    ("Content-Length", "10"),
    ("Content-Encoding", "gzip"),
    ("X-Other", "kept"),
]


def test_incoming_headers_map_and_drop(mapper: UrlMapper) -> None:
    """URLs are mapped, pinning and reporting headers dropped, Set-Cookie handed back."""
    result = incoming_headers(UPSTREAM, mapper=mapper, body_rewritten=False)
    got = dict(result.headers)
    assert got["Location"] == f"http://www-jstor-org.{P}/stable/2"
    assert got["Content-Location"] == "/relative"
    assert got["Refresh"] == f"5; url=http://search-bigdb-test.{P}/x"
    assert got["Link"] == (
        f"<http://www-jstor-org.{P}/style.css>; rel=preload, <https://other.org/a>; rel=next"
    )
    assert got["Access-Control-Allow-Origin"] == f"http://www-jstor-org.{P}"
    assert result.set_cookies == ["a=1; Domain=jstor.org", "b=2"]
    assert {n.lower() for n in got} == {
        "location",
        "content-location",
        "refresh",
        "link",
        "access-control-allow-origin",
        "content-length",
        "content-encoding",
        "x-other",
    }


@pytest.mark.parametrize(
    ("refresh", "kept"),
    [
        ("0; url=/next", "0; url=/next"),
        ("5", "5"),
        ("0; url=https://www.jstor.org/x", f"0; url=http://www-jstor-org.{P}/x"),
        ("0; url=https://unlisted.example/x", None),
        ("0; URL='http://169.254.169.254/latest/'", None),
        ("0; url=javascript:alert(1)", None),
    ],
)
def test_refresh_off_the_proxy_is_dropped(
    mapper: UrlMapper, refresh: str, kept: str | None
) -> None:
    """R22: a Refresh to a host no rule covers, an internal address or a script is dropped."""
    got = dict(
        incoming_headers([("Refresh", refresh)], mapper=mapper, body_rewritten=False).headers
    )
    assert got.get("Refresh") == kept


def test_rewritten_body_drops_stale_length_and_coding(mapper: UrlMapper) -> None:
    """When the body is rewritten, Content-Length and Content-Encoding are dropped."""
    result = incoming_headers(UPSTREAM, mapper=mapper, body_rewritten=True)
    assert not {n.lower() for n, _ in result.headers} & {"content-length", "content-encoding"}


def test_csp_host_sources_are_mapped(mapper: UrlMapper) -> None:
    """CSP host sources of covered hosts map to proxy hosts; report endpoints are dropped."""
    csp = (
        "default-src 'self' https://www.jstor.org *.jstor.org cdn.other.com data:; "
        "script-src 'nonce-abc' search.bigdb.test; report-uri https://www.jstor.org/r"
    )
    assert map_csp(csp, mapper) == (
        f"default-src 'self' http://www-jstor-org.{P} *.proxy.localhost cdn.other.com data:; "
        f"script-src 'nonce-abc' search-bigdb-test.{P}"
    )


def test_cache_validators_never_pass_either_way(mapper: UrlMapper) -> None:
    """R6: If-None-Match and the other validators stay home; ETag and Last-Modified too."""
    validators = [
        ("If-None-Match", '"patron-a"'),
        ("If-Modified-Since", "Sun, 29 Nov 2026 12:00:00 GMT"),
        ("If-Match", '"patron-a"'),
        ("If-Unmodified-Since", "Sun, 29 Nov 2026 12:00:00 GMT"),
        ("If-Range", '"patron-a"'),
        ("Range", "bytes=0-9"),
    ]
    out = outgoing_headers(
        validators,
        policy=OutgoingPolicy(allow=frozenset({"if-none-match", "content-length"})),
        mapper=mapper,
        host="www.jstor.org",
        cookie=None,
        pseudonym=None,
    )
    assert names(out) == {"host", "range"}
    got = incoming_headers(
        [("ETag", '"patron-a"'), ("Last-Modified", "x"), ("Content-Type", "text/css")],
        mapper=mapper,
        body_rewritten=False,
    )
    assert names(got.headers) == {"content-type"}


def test_body_framing_is_never_copied_from_the_browser(mapper: UrlMapper) -> None:
    """R1: Content-Length, Content-Encoding and Transfer-Encoding are the proxy's to set."""
    out = outgoing_headers(
        [("Content-Length", "123"), ("Content-Encoding", "gzip"), ("Content-Type", "text/plain")],
        policy=OutgoingPolicy(
            allow=frozenset({"content-length", "content-encoding"}),
            set={"Content-Length": "5", "Transfer-Encoding": "chunked"},
        ),
        mapper=mapper,
        host="www.jstor.org",
        cookie=None,
        pseudonym=None,
    )
    assert names(out) == {"host", "content-type"}


CHROME_FULL = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 6 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/108.0.5359.128 Mobile Safari/537.36"
)
CHROME_REDUCED = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/108.0.0.0 Mobile Safari/537.36"
)


@pytest.mark.parametrize(
    ("policy", "sent"),
    [
        (OutgoingPolicy(), CHROME_REDUCED),
        (OutgoingPolicy(user_agent="reduced"), CHROME_REDUCED),
        (OutgoingPolicy(user_agent="pass"), CHROME_FULL),
        (OutgoingPolicy(user_agent="generic"), GENERIC_USER_AGENT),
    ],
)
def test_user_agent_is_reduced_by_default(
    mapper: UrlMapper, policy: OutgoingPolicy, sent: str
) -> None:
    """#18: the vendor gets a reduced User-Agent unless the rule says pass or generic."""
    out = outgoing_headers(
        [("User-Agent", CHROME_FULL)],
        policy=policy,
        mapper=mapper,
        host="www.jstor.org",
        cookie=None,
        pseudonym=None,
    )
    assert out == [("Host", "www.jstor.org"), ("User-Agent", sent)]
