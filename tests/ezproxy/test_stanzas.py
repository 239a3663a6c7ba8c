"""Grouping directives into stanzas with their position-dependent context."""

from __future__ import annotations

import pytest

from proxy.ezproxy.directives import Finding, tokenize
from proxy.ezproxy.stanzas import Context, Grouping, context_keys, group_stanzas, ip_networks


def group(text: str) -> Grouping:
    """Group the directives of a config text."""
    return group_stanzas(tokenize(text, "c.txt"))


def names(grouping: Grouping, i: int) -> list[str]:
    """The directive names of stanza ``i``."""
    return [d.written for d in grouping.stanzas[i].directives]


def kinds_at(findings: tuple[Finding, ...] | list[Finding]) -> list[tuple[str, str]]:
    """(kind, file:line) of each finding."""
    return [(f.kind, str(f.where)) for f in findings]


def test_a_title_starts_each_stanza_and_body_lines_join_it() -> None:
    """Title opens a stanza; URL/HJ/DJ lines belong to the stanza above them."""
    g = group("Title A\nURL https://a.org/\nHJ a.org\nTitle B\nU https://b.org/\nDJ b.org\n")
    assert [s.title.args for s in g.stanzas] == ["A", "B"]
    assert names(g, 0) == ["URL", "HJ"]
    assert names(g, 1) == ["U", "DJ"]


@pytest.mark.parametrize(
    "line",
    [
        "AnonymousURL +https://a.org/*",
        "HTTPMethod OPTIONS",
        "Cookie x=1; domain=.b.org",
        "ProxyHostnameEdit www.b.org$ www-b-org",
        "AddUserHeader X-User",
        "HTTPHeader X-Token",
    ],
)
def test_leading_lines_before_a_title_belong_to_that_stanza(line: str) -> None:
    """Lines that EZproxy expects before a Title join the stanza they precede."""
    g = group(f"Title A\nURL https://a.org/\n{line}\nTitle B\nURL https://b.org/\n")
    assert names(g, 0) == ["URL"]
    assert names(g, 1)[0] == line.split()[0]


def test_leading_lines_inside_a_stanza_stay_with_it() -> None:
    """A leading line followed by more body lines belongs to the stanza it sits in."""
    g = group("Title A\nMimeFilter text/plain .* javascript\nURL https://a.org/\nHJ a.org\n")
    assert names(g, 0) == ["MimeFilter", "URL", "HJ"]


def test_the_anonymousurl_closer_ends_its_own_stanza() -> None:
    """``AnonymousURL -*`` after a stanza's body is that stanza's, not the next one's."""
    g = group("Title A\nURL https://a.org/\nAnonymousURL -*\nTitle B\nURL https://b.org/\n")
    assert names(g, 0) == ["URL", "AnonymousURL"]
    assert names(g, 1) == ["URL"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("HJ a.org\nTitle A\nURL https://a.org/\n", "outside any stanza"),
        ("Title A\nURL https://a.org/\nAnonymousURL -*\nHTTPMethod PUT\n", None),
        ("AnonymousURL +https://x.org/*\n", "no database stanza"),
    ],
)
def test_lines_without_a_stanza_are_reported(text: str, why: str | None) -> None:
    """Body lines before any Title, or leading lines with no Title after them, are named."""
    g = group(text)
    orphans = [f for f in g.findings if f.kind == "not_imported"]
    if why is None:
        assert orphans == []  # a trailing leading line joins the last stanza
        assert names(g, 0)[-1] == "HTTPMethod"
    else:
        assert why in orphans[0].why


def test_group_applies_to_following_stanzas_until_changed() -> None:
    """Group is state: each stanza keeps the group in effect at its Title."""
    g = group(
        "Title Free\nURL https://f.org/\nGroup Law\nTitle L1\nURL https://l1.org/\n"
        "Title L2\nURL https://l2.org/\nGroup Med\nTitle M\nURL https://m.org/\n"
    )
    assert [s.context.group for s in g.stanzas] == [None, "Law", "Law", "Med"]
    assert str(g.stanzas[1].context.group_where) == "c.txt:3"


@pytest.mark.parametrize(
    ("option", "mode"),
    [
        ("DomainCookieOnly", "DomainCookieOnly"),
        ("NoCookie", "NoCookie"),
        ("CookiePassThrough", "CookiePassThrough"),
        ("Cookie", "Cookie"),
    ],
)
def test_cookie_options_apply_until_option_cookie(option: str, mode: str) -> None:
    """A cookie option applies to the stanzas after it, until ``Option Cookie`` resets it."""
    g = group(
        f"Option {option}\nTitle A\nURL https://a.org/\nTitle B\nURL https://b.org/\n"
        "Option Cookie\nTitle C\nURL https://c.org/\n"
    )
    assert [s.context.cookies for s in g.stanzas] == [mode, mode, "Cookie"]


def test_x_forwarded_for_is_refused_and_tracked_until_reset() -> None:
    """``Option X-Forwarded-For`` is refused at its line and marks stanzas until reset."""
    g = group(
        "Option X-Forwarded-For\nTitle A\nURL https://a.org/\nOption NoX-Forwarded-For\n"
        "Title B\nURL https://b.org/\n"
    )
    assert kinds_at(g.findings) == [("refused", "c.txt:1")]
    assert "IP address" in g.findings[0].why
    assert [str(s.context.forwarded_for) for s in g.stanzas] == ["c.txt:1", "None"]


@pytest.mark.parametrize(
    ("option", "why"),
    [
        ("AllowSendGZip", "compression"),
        ("HttpsHyphens", "hyphenated"),
        ("I choose to use Domain lines that threaten the security of my network", "public-suffix"),
        ("Frobnicate", "no equivalent option"),
    ],
)
def test_other_options_are_reported_with_a_reason(option: str, why: str) -> None:
    """Options without a per-vendor meaning are listed as not imported, with why."""
    g = group(f"Option {option}\nTitle A\nURL https://a.org/\n")
    assert kinds_at(g.findings) == [("not_imported", "c.txt:1")]
    assert why in g.findings[0].why


@pytest.mark.parametrize(
    ("line", "advice"),
    [
        (
            "AutoLoginIP 10.1.0.0-10.1.255.255",
            "auto_login_networks` of the member library in proxy.yaml: 10.1.0.0/16",
        ),
        ("A 192.0.2.7", "proxy.yaml: 192.0.2.7/32"),
        ("ExcludeIP 198.51.100.0-198.51.100.127", "no such bypass"),
        ("E 198.51.100.0/25", "198.51.100.0/25"),
        ("IncludeIP 0.0.0.0-255.255.255.255", "0.0.0.0/0"),
        ("I 2001:db8::1", "2001:db8::1/128"),
        ("RejectIP 203.0.113.9", "firewall"),
        ("AutoLoginIP campus", "could not be read"),
    ],
)
def test_ip_rules_become_network_findings_never_dropped(line: str, advice: str) -> None:
    """AutoLoginIP/ExcludeIP/IncludeIP/RejectIP become proxy.yaml advice with CIDR ranges."""
    g = group(f"Group Law\n{line}\nTitle A\nURL https://a.org/\n")
    assert kinds_at(g.findings) == [("network", "c.txt:2")]
    assert advice in g.findings[0].why
    assert "Group Law" in g.findings[0].why


@pytest.mark.parametrize(
    ("text", "networks"),
    [
        ("10.0.0.0-10.0.0.255", ["10.0.0.0/24"]),
        ("10.0.0.1 - 10.0.0.2", ["10.0.0.1/32", "10.0.0.2/32"]),
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        ("10.0.0.1-::1", []),
        ("", []),
    ],
)
def test_ip_ranges_become_cidr_networks(text: str, networks: list[str]) -> None:
    """EZproxy ranges are summarised into the CIDR networks proxy.yaml takes."""
    assert ip_networks(text) == networks


@pytest.mark.parametrize(
    "line", ["LoginPort 2048", "Name ezproxy.lib.example.org", "MaxSessions 500"]
)
def test_server_settings_are_reported_not_imported(line: str) -> None:
    """EZproxy server settings are listed as not imported (they belong in proxy.yaml)."""
    g = group(f"{line}\nTitle A\nURL https://a.org/\n")
    assert kinds_at(g.findings) == [("not_imported", "c.txt:1")]
    assert "proxy.yaml" in g.findings[0].why


@pytest.mark.parametrize(
    ("group_name", "mapping", "libraries", "warned"),
    [
        (None, {}, "all", False),
        (None, {"default": ("MAIN",)}, ("MAIN",), False),
        ("Law", {"law": ("MAIN", "WEST")}, ("MAIN", "WEST"), False),
        ("LAW", {"law": "all"}, "all", False),
        ("Med", {"law": ("MAIN",)}, "all", True),
        ("Default", {}, "all", False),
    ],
)
def test_groups_map_to_libraries(
    group_name: str | None,
    mapping: dict[str, tuple[str, ...] | str],
    libraries: object,
    warned: bool,
) -> None:
    """A stanza's group becomes ``libraries`` via the mapping; an unmapped group warns."""
    keys, findings = context_keys(Context(group=group_name), mapping)  # type: ignore[arg-type]
    assert keys["libraries"] == libraries
    assert [f.kind for f in findings] == (["warning"] if warned else [])


@pytest.mark.parametrize(
    ("mode", "cookies", "reported"),
    [
        ("Cookie", "server_side", False),
        ("CookiePassThrough", "pass", False),
        ("DomainCookieOnly", "server_side", True),
        ("NoCookie", "server_side", True),
    ],
)
def test_cookie_modes_map_to_the_cookies_key(mode: str, cookies: str, reported: bool) -> None:
    """CookiePassThrough passes cookies; every other mode keeps them server-side."""
    keys, findings = context_keys(Context(cookies=mode), {})  # type: ignore[arg-type]
    assert keys["cookies"] == cookies
    assert [f.kind for f in findings] == (["not_imported"] if reported else [])
