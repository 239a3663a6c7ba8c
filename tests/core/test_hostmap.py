"""Tests for proxy.core.hostmap: the EZproxy-style host mapping and its aliases."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy.core.hostmap import (
    AliasRequired,
    HostMap,
    HostMapError,
    Origin,
    Scheme,
    UnknownMappedHost,
    alias_label,
    decode_label,
    encode_label,
    hostname_problem,
    is_valid_hostname,
)

PROXY = "proxy.localhost"
ALIAS_SHAPE = re.compile(r"z---[a-z2-7]{16}")
LONG_HOST = "a" * 40 + "." + "b" * 40 + ".example"  # plain label would be 90 characters

# --- strategies -------------------------------------------------------------------------


def labels(alphabet: str, max_size: int) -> st.SearchStrategy[str]:
    """DNS labels over ``alphabet`` with no leading or trailing dash."""
    return st.text(alphabet, min_size=1, max_size=max_size).filter(
        lambda s: s[0] != "-" and s[-1] != "-"
    )


def hosts(alphabet: str = "abxz019-", max_label: int = 30) -> st.SearchStrategy[str]:
    return (
        st.lists(labels(alphabet, max_label), min_size=2, max_size=5)
        .map(".".join)
        .filter(is_valid_hostname)
    )


def origins(host_strategy: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Origin]:
    schemes: st.SearchStrategy[Scheme] = st.sampled_from(["http", "https"])
    ports = st.one_of(st.sampled_from([80, 443, 8080]), st.integers(1, 65535))
    return st.builds(Origin, schemes, hosts() if host_strategy is None else host_strategy, ports)


# Dash-heavy short hosts and few ports, so near-collisions are common.
CRAMPED = origins(hosts(alphabet="az-", max_label=6)).filter(lambda o: o.port in (80, 443, 8080))


# --- the EZproxy form -------------------------------------------------------------------

EXAMPLES = [
    ("https://www.jstor.org", "www-jstor-org"),
    ("https://my-site.example.com", "my--site-example-com"),
    ("https://onlinelibrary.wiley.com", "onlinelibrary-wiley-com"),
    ("https://www.sciencedirect.com", "www-sciencedirect-com"),
    ("https://search.ebscohost.com", "search-ebscohost-com"),
    ("https://sub.xn--bcher-kva.example", "sub-xn----bcher--kva-example"),
    ("https://a---b.example", "a------b-example"),
    ("http://www.foo.com:8080", "www-foo-com---h8080"),
    ("https://a.b:8443", "a-b---8443"),
    ("http://a.b", "a-b---h"),
    ("http://a.b:443", "a-b---h443"),
    ("https://a.b:80", "a-b---80"),
    ("https://a.b:65535", "a-b---65535"),
    ("http://a.b:1", "a-b---h1"),
    ("http://z--0.a", "z----0-a---h"),  # starts "z---" yet is no alias: the dash run is 4
]


@pytest.mark.parametrize(("url", "label"), EXAMPLES)
def test_examples_encode(url: str, label: str) -> None:
    """Known origins encode to the EZproxy HttpsHyphens label, with the suffix for scheme/port."""
    assert encode_label(Origin.parse(url)) == label


@pytest.mark.parametrize(("url", "label"), EXAMPLES)
def test_examples_decode(url: str, label: str) -> None:
    """Known labels decode back to their origin, whatever their letter case."""
    assert decode_label(label) == Origin.parse(url)
    assert decode_label(label.upper()) == Origin.parse(url)


@pytest.mark.parametrize(
    ("proxy_port", "authority"),
    [
        (None, "www-jstor-org.proxy.localhost"),
        (8080, "www-jstor-org.proxy.localhost:8080"),
        (443, "www-jstor-org.proxy.localhost:443"),
    ],
)
def test_proxy_port_is_kept_in_the_authority(proxy_port: int | None, authority: str) -> None:
    """The proxy's port goes in the mapped authority but never changes the mapped label."""
    hm = HostMap(PROXY, proxy_port)
    jstor = Origin.parse("www.jstor.org")
    assert hm.mapped_host(jstor) == "www-jstor-org.proxy.localhost"
    assert hm.mapped_authority(jstor) == authority
    assert hm.origin_for(authority) == jstor


@pytest.mark.parametrize(
    ("request_host", "origin"),
    [
        ("www-jstor-org.proxy.localhost:8080", "https://www.jstor.org"),
        ("WWW-JSTOR-ORG.Proxy.LocalHost:8080", "https://www.jstor.org"),
        ("www-jstor-org.proxy.localhost", "https://www.jstor.org"),
        ("www-foo-com---h8080.proxy.localhost:8080", "http://www.foo.com:8080"),
    ],
)
def test_origin_for_accepts_mapped_hosts(request_host: str, origin: str) -> None:
    """A Host header one label under the proxy host, with the proxy's port or none, decodes."""
    assert HostMap(PROXY, 8080).origin_for(request_host) == Origin.parse(origin)


@pytest.mark.parametrize("host", ["xn--bcher-kva.example", "xn--80ak6aa92e.com"])
def test_idn_first_label_is_served_under_an_alias(host: str) -> None:
    """A host whose first label is punycode gets an alias, since 'xn----…' breaks WHATWG URLs."""
    origin = Origin.parse(host)
    hm = HostMap(PROXY, None)
    with pytest.raises(AliasRequired):
        encode_label(origin)
    label = hm.register(origin)
    assert ALIAS_SHAPE.fullmatch(label)
    assert hm.origin_for(hm.mapped_authority(origin)) == origin


# --- Origin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "default_scheme", "expected"),
    [
        ("www.jstor.org", "https", Origin("https", "www.jstor.org", 443)),
        ("www.jstor.org", "http", Origin("http", "www.jstor.org", 80)),
        ("WWW.JSTOR.ORG:8443", "https", Origin("https", "www.jstor.org", 8443)),
        ("https://www.jstor.org/stable/123?x=1#f", "http", Origin("https", "www.jstor.org", 443)),
        ("HTTP://WWW.Foo.COM:8080/", "https", Origin("http", "www.foo.com", 8080)),
        ("http://a.b?q", "https", Origin("http", "a.b", 80)),
        ("https://evil.com\\@www.jstor.org/", "https", Origin("https", "evil.com", 443)),
    ],
)
def test_origin_parse(text: str, default_scheme: Scheme, expected: Origin) -> None:
    """Origin.parse reads an authority or URL the way a browser would pick its origin."""
    assert Origin.parse(text, default_scheme=default_scheme) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ftp://a.b",
        "javascript:alert(1)",
        "https://",
        "https://user@a.b/",
        "https://user:pw@a.b/",
        "https://[::1]/",
        "https://1.2.3.4/",
        "https://127.1/",
        "https://localhost/",
        "https://a.b.:443/",
        "https://bücher.example/",
        "https://a.b:0/",
        "https://a.b:65536/",
        "https://a.b:08080/",
        "https://a.b:/",
        "https://a.b:http/",
        "a.b/path",
        "a_b.com",
    ],
)
def test_origin_parse_rejects_junk(text: str) -> None:
    """Origin.parse refuses anything that is not a plain http(s) origin on a DNS name."""
    with pytest.raises(HostMapError):
        Origin.parse(text)


@pytest.mark.parametrize(
    ("scheme", "host", "port"),
    [
        ("ftp", "a.b", 21),
        ("https", "WWW.jstor.org", 443),
        ("https", "a.b", 0),
        ("https", "a.b", 65536),
        ("https", "localhost", 443),
        ("https", "a..b", 443),
    ],
)
def test_origin_refuses_invalid_values(scheme: str, host: str, port: int) -> None:
    """An Origin cannot be built with a bad scheme, a non-canonical host or a bad port."""
    with pytest.raises(HostMapError):
        Origin(scheme, host, port)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("origin", "prefix", "default"),
    [
        (Origin("https", "www.jstor.org", 443), "https://www.jstor.org", True),
        (Origin("http", "a.b", 80), "http://a.b", True),
        (Origin("http", "a.b", 8080), "http://a.b:8080", False),
        (Origin("https", "a.b", 80), "https://a.b:80", False),
    ],
)
def test_origin_url_prefix(origin: Origin, prefix: str, default: bool) -> None:
    """url_prefix writes the port only when it is not the scheme's default."""
    assert origin.url_prefix() == prefix
    assert origin.default_port is default


# --- rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("", "empty"),
        ("a---b", "bad suffix"),
        ("a-----b", "run of 5 dashes"),
        ("a-b---h-8080", "bad suffix"),
        ("-a-b", "empty label"),
        ("a-b-", "trailing dot"),
        ("a--b", "single label"),
        ("a-b--", "starts or ends"),
        ("a--b-com", None),  # a-b.com: fine, checked below as a control
        ("ÄBC-com", "non-ASCII"),
        ("\u212a-com", "non-ASCII"),  # KELVIN SIGN lowercases to ASCII "k"
        ("a-b---", "bad suffix"),
        ("a-b---0", "bad suffix"),
        ("a-b---65536", "above 65535"),
        ("a-b---99999", "above 65535"),
        ("a-b---08080", "bad suffix"),
        ("a-b---hh", "bad suffix"),
        ("a-b---8080h", "bad suffix"),
        ("a-b---443", "canonical"),
        ("a-b---h80", "canonical"),
        ("1-2-3-4", "IP literal"),
        ("a-b_c", "not allowed"),
        ("a" * 62 + "-b", "longer than 63"),
        ("xn----bcher--kva-example", "xn--"),
        ("z---aaaaaaaaaaaaaaaa", "alias"),
    ],
)
def test_decode_label_rejections(label: str, reason: str | None) -> None:
    """decode_label refuses malformed and non-canonical labels with a reason."""
    if reason is None:
        assert decode_label(label) == Origin.parse("a-b.com")
        return
    with pytest.raises(HostMapError, match=re.escape(reason)) as info:
        decode_label(label)
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    "request_host",
    [
        "",
        " www-jstor-org.proxy.localhost:8080",
        "proxy.localhost:8080",
        "proxy.localhost",
        "a.b.proxy.localhost:8080",
        "www-jstor-org.evilproxy.localhost:8080",
        "evilproxy.localhost:8080",
        "www-jstor-org.proxy.localhost.evil.com:8080",
        "www-jstor-org.proxy.localhost.:8080",
        "user@www-jstor-org.proxy.localhost:8080",
        "www-jstor-org.proxy.localhost:9090",
        "www-jstor-org.proxy.localhost:0",
        "www-jstor-org.proxy.localhost:65536",
        "www-jstor-org.proxy.localhost:08080",
        "www-jstor-org.proxy.localhost:",
        "www-jstor-org.proxy.localhost:8080:8080",
        "[::1]:8080",
        "127.0.0.1:8080",
        "www-jstör-org.proxy.localhost:8080",
        ".proxy.localhost:8080",
        "a---b.proxy.localhost:8080",
        "z---short.proxy.localhost:8080",
    ],
)
def test_origin_for_rejections(request_host: str) -> None:
    """origin_for refuses Host values that are not exactly one mapped label under the proxy."""
    with pytest.raises(HostMapError) as info:
        HostMap(PROXY, 8080).origin_for(request_host)
    assert info.value.status_hint == 400
    assert not isinstance(info.value, UnknownMappedHost)


def test_origin_for_refuses_any_port_when_the_proxy_has_none() -> None:
    """Without a proxy port, a Host header carrying any port (even 443) is refused."""
    with pytest.raises(HostMapError, match="not the proxy's port"):
        HostMap(PROXY, None).origin_for("www-jstor-org.proxy.localhost:443")


# --- aliases ------------------------------------------------------------------------------


def test_long_label_gets_a_stable_alias() -> None:
    """An origin whose label exceeds 63 characters maps to the same short alias everywhere."""
    origin = Origin.parse(LONG_HOST)
    with pytest.raises(AliasRequired):
        encode_label(origin)
    first, second = HostMap(PROXY, None), HostMap("proxy.lib.org", 8443)
    assert first.register(origin) == second.register(origin) == alias_label(origin)
    assert ALIAS_SHAPE.fullmatch(alias_label(origin))


def test_unknown_alias_is_404_until_relearned() -> None:
    """A fresh instance refuses an alias with 404 until it maps that origin itself."""
    origin = Origin.parse(LONG_HOST)
    authority = HostMap(PROXY, None).mapped_authority(origin)
    fresh = HostMap(PROXY, None)
    with pytest.raises(UnknownMappedHost) as info:
        fresh.origin_for(authority)
    assert info.value.status_hint == 404
    assert fresh.mapped_authority(origin) == authority
    assert fresh.origin_for(authority) == origin


def test_decode_label_says_an_alias_needs_a_hostmap() -> None:
    """decode_label cannot resolve an alias and says that only a HostMap can."""
    alias = HostMap(PROXY, None).register(Origin.parse(LONG_HOST))
    with pytest.raises(HostMapError, match="HostMap"):
        decode_label(alias)


def test_alias_table_is_a_bounded_lru() -> None:
    """The alias table forgets the least recently used alias once it is over capacity."""
    hm = HostMap(PROXY, None, alias_capacity=2)
    one, two, three = (Origin.parse(f"{'q' * 60}.n{i}.example") for i in range(3))
    hm.register(one)
    hm.register(two)
    hm.origin_for(hm.mapped_host(one))  # touch: "two" is now the oldest
    hm.register(three)
    assert hm.origin_for(f"{alias_label(one)}.{PROXY}") == one
    assert hm.origin_for(f"{alias_label(three)}.{PROXY}") == three
    with pytest.raises(UnknownMappedHost):
        hm.origin_for(f"{alias_label(two)}.{PROXY}")


def test_short_labels_never_enter_the_alias_table() -> None:
    """A plain label needs no memory, so any instance decodes it."""
    hm = HostMap(PROXY, None, alias_capacity=1)
    assert hm.register(Origin.parse("www.jstor.org")) == "www-jstor-org"
    assert HostMap(PROXY, None).origin_for("www-jstor-org.proxy.localhost").host == "www.jstor.org"


# --- the portal and the HostMap itself ----------------------------------------------------


@pytest.mark.parametrize(
    ("request_host", "expected"),
    [
        ("proxy.localhost:8080", True),
        ("PROXY.localhost:8080", True),
        ("proxy.localhost", True),
        ("proxy.localhost:9090", False),
        ("proxy.localhost.", False),
        ("www-jstor-org.proxy.localhost:8080", False),
        ("user@proxy.localhost:8080", False),
        ("", False),
    ],
)
def test_is_portal(request_host: str, expected: bool) -> None:
    """is_portal is true only for the proxy host itself, with its own port or none."""
    assert HostMap(PROXY, 8080).is_portal(request_host) is expected


@pytest.mark.parametrize(
    ("proxy_host", "proxy_port", "capacity"),
    [
        ("localhost", None, 10),
        ("proxy..lib", None, 10),
        (PROXY, 0, 10),
        (PROXY, 65536, 10),
        ("a." * 95 + "org", None, 10),
        (PROXY, None, 0),
    ],
)
def test_hostmap_refuses_a_bad_proxy_address(
    proxy_host: str, proxy_port: int | None, capacity: int
) -> None:
    """A HostMap needs a multi-label proxy host with room for a label, a real port, capacity."""
    with pytest.raises(ValueError):
        HostMap(proxy_host, proxy_port, alias_capacity=capacity)


# --- hostname validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("www..jstor.org", "empty label"),
        ("-a.com", "starts or ends with '-'"),
        ("a-.com", "starts or ends with '-'"),
        ("localhost", "single label"),
        ("1.2.3.4", "IP literal"),
        ("127.1", "IP literal"),
        ("a.0x7f", "IP literal"),
        ("[::1]", "IP literal"),
        ("::1", "IP literal"),
        ("a_b.com", "character '_' is not allowed"),
        ("a" * 64 + ".com", "longer than 63"),
        ("a." * 127 + "com", "longer than 253"),
        ("www.jstor.org.", "trailing dot"),
        ("bücher.example", "non-ASCII"),
        ("", "empty"),
    ],
)
def test_hostname_problem_reasons(host: str, reason: str) -> None:
    """hostname_problem names the first thing wrong with a would-be vendor hostname."""
    problem = hostname_problem(host)
    assert problem is not None
    assert problem.startswith("not a hostname: ")
    assert reason in problem
    assert not is_valid_hostname(host)


def test_hostname_problem_message_format() -> None:
    """The message quotes the host and gives the reason in parentheses, for rule errors."""
    assert hostname_problem("www..jstor.org") == "not a hostname: 'www..jstor.org' (empty label)"


@pytest.mark.parametrize(
    "host",
    [
        "www.jstor.org",
        "WWW.JSTOR.ORG",
        "xn--bcher-kva.example",
        "a.b",
        "3com.com",
        "a---b.example",
        "123.example",
        "a." * 125 + "com",
    ],
)
def test_valid_hostnames(host: str) -> None:
    """Ordinary, punycode, digit-led and maximal-length DNS names are valid vendor hosts."""
    assert hostname_problem(host) is None


# --- properties ---------------------------------------------------------------------------


@given(origins())
def test_round_trip(origin: Origin) -> None:
    """Every origin survives encode→decode, through an alias when the label would not fit."""
    hm = HostMap(PROXY, 8080)
    assert hm.origin_for(hm.mapped_authority(origin)) == origin
    try:
        label = encode_label(origin)
    except AliasRequired:
        assert ALIAS_SHAPE.fullmatch(hm.register(origin))
    else:
        assert len(label) <= 63
        assert decode_label(label) == origin


@given(origins(hosts(max_label=63)))
def test_mapped_host_is_a_valid_dns_name(origin: Origin) -> None:
    """The mapped host is always a valid DNS name, however long the upstream host."""
    assert hostname_problem(HostMap("proxy.lib.org", None).mapped_host(origin)) is None


@given(CRAMPED, CRAMPED)
def test_injective(first: Origin, second: Origin) -> None:
    """Two different origins never get the same label."""
    assume(first != second)
    hm = HostMap(PROXY, None)
    assert hm.register(first) != hm.register(second)


@given(st.text("azh-019", max_size=14))
def test_decode_accepts_only_canonical_labels(label: str) -> None:
    """Whatever decode_label accepts is exactly what encode_label writes for that origin."""
    try:
        origin = decode_label(label)
    except HostMapError:
        return
    assert encode_label(origin) == label
