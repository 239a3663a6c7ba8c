"""Translating one stanza into the vendor-rule shape, directive by directive."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.core.rules import DEFAULT_REWRITE_TYPES, VendorRule
from proxy.ezproxy.directives import tokenize
from proxy.ezproxy.stanzas import group_stanzas
from proxy.ezproxy.translate import Options, Translation, translate, translate_pair

BASE = "Title Vendor DB\nURL https://www.vendor.org/start\nDJ vendor.org\n"


def translated(text: str, options: Options | None = None) -> Translation:
    """Translate the last stanza of a config text."""
    grouping = group_stanzas(tokenize(text, "c.txt"))
    return translate(grouping.stanzas[-1], options or Options())


def rule_of(*lines: str, options: Options | None = None) -> dict[str, Any]:
    """The rule of a stanza made of BASE plus ``lines``."""
    rule = translated(BASE + "".join(f"{line}\n" for line in lines), options).rule
    assert rule is not None
    return rule


def reasons(t: Translation, kind: str) -> list[str]:
    """The subjects and reasons of the findings of one kind."""
    return [f"{f.subject} | {f.why}" for f in t.findings if f.kind == kind]


def test_a_basic_stanza_becomes_a_valid_rule() -> None:
    """Title, URL, HJ and DJ map to title, url, hosts and domains; the result validates."""
    t = translated(
        "T JSTOR\nU https://www.jstor.org/\nHJ www.jstor.org\nHJ https://jstor.org\nDJ jstor.org\n"
    )
    assert t.rule == {
        "title": "JSTOR",
        "url": "https://www.jstor.org/",
        "hosts": ["www.jstor.org", "jstor.org"],
        "domains": ["jstor.org"],
        "libraries": "all",
        "cookies": "server_side",
        "third_party": "block",
    }
    assert t.findings == ()
    VendorRule.model_validate({"id": "jstor", **t.rule})


def test_imported_rules_block_third_parties() -> None:
    """#18.8: an imported rule states third_party: block, so the admin sees the containment."""
    t = translated("T Fonts\nU https://fonts.example.org/\n")
    assert t.rule is not None and t.rule["third_party"] == "block"
    assert "third_party_allow" not in t.rule


def test_title_hide_is_imported_as_hide() -> None:
    """``Title -Hide`` keeps the title text and becomes ``hide: true`` (#17)."""
    t = translated(
        "Title -hide Elsevier Identity (updated 20220307)\nURL https://id.elsevier.com\n"
    )
    assert t.title == "Elsevier Identity (updated 20220307)"
    assert t.rule is not None and t.rule["title"] == "Elsevier Identity"
    assert t.rule["hide"] is True and t.rule["description"] == "updated 20220307"


@pytest.mark.parametrize(
    ("line", "entry"),
    [
        ("AnonymousURL +*.woff*", {"methods": ["GET", "HEAD"], "patterns": ["*.woff*"]}),
        ("AnonymousURL +.woff", {"methods": ["GET", "HEAD"], "patterns": ["*.woff*"]}),
        (
            "AnonymousURL -CS -Options +https://api.v.org/x/*",
            {"methods": ["OPTIONS"], "patterns": ["https://api.v.org/x/*"]},
        ),
        (
            "AnonymousURL +https://api.v.org/*",
            {
                "methods": ["GET", "HEAD"],
                "patterns": ["https://api.v.org/*"],
                "allow_all": True,
                "reason": "EZproxy AnonymousURL at c.txt:1: review before going live",
            },
        ),
    ],
)
def test_anonymous_url_lines_become_anonymous_entries(line: str, entry: dict[str, object]) -> None:
    """#17: AnonymousURL → an anonymous entry; a whole-host pattern is marked allow_all."""
    t = translated(f"{line}\nTitle V\nURL https://www.v.org/\nDJ v.org\n")
    assert t.rule is not None and t.rule["anonymous"] == [entry]


def test_anonymous_url_on_another_host_is_not_imported() -> None:
    """#17, P6: a pattern naming a host the stanza does not cover never widens it."""
    t = translated("AnonymousURL +https://evil.test/*\nTitle V\nURL https://www.v.org/\n")
    assert t.rule is not None and "anonymous" not in t.rule
    assert any("evil.test is not one of" in r for r in reasons(t, "not_imported"))


@pytest.mark.parametrize(
    ("line", "url", "kind", "why"),
    [
        ("URL https://www.vendor.org/a?b=1", "https://www.vendor.org/a?b=1", None, ""),
        (
            "URL -Redirect -Append db https://www.vendor.org/in?user=lib&pass=x",
            "https://www.vendor.org/in",
            "warning",
            "query string left out",
        ),
        (
            "URL -Refresh db https://www.vendor.org/in",
            "https://www.vendor.org/in",
            "not_imported",
            "-Refresh",
        ),
        (
            "URL -Form=post -RewriteHost db https://www.vendor.org/login",
            "https://www.vendor.org/login",
            "not_imported",
            "login form",
        ),
        ("URL db https://www.vendor.org/x", "https://www.vendor.org/x", "note", "/login/db"),
        ("URL http:// www.vendor.org/", "https://www.vendor.org/", "warning", "space inside"),
        (
            "URL {URL supplied to you by Brainfuse}",
            "https://www.vendor.org/",
            "not_imported",
            "placeholder",
        ),
        (
            "URL ftp://www.vendor.org/",
            "https://www.vendor.org/",
            "not_imported",
            "not an http(s) URL",
        ),
    ],
)
def test_url_forms(line: str, url: str, kind: str | None, why: str) -> None:
    """URL and its -Form/-Redirect/-Refresh/label forms: the address maps, the rest is reported."""
    t = translated(f"Title V\n{line}\nHJ www.vendor.org\n")
    assert t.rule is not None and t.rule["url"] == url
    if kind:
        assert any(why in r for r in reasons(t, kind)), t.findings


def test_a_url_host_is_a_host_and_a_second_url_adds_its_host() -> None:
    """EZproxy treats each URL's host as a Host line; the first URL stays the starting point."""
    t = translated("Title V\nURL https://a.vendor.org/\nURL https://b.vendor.org/\n")
    assert t.rule is not None
    assert (t.rule["url"], t.rule["hosts"]) == (
        "https://a.vendor.org/",
        ["a.vendor.org", "b.vendor.org"],
    )


def test_one_origin_per_host_prefers_https_and_the_url_follows() -> None:
    """http and https forms of one host fold into the https one; an http URL is upgraded."""
    t = translated("Title V\nURL http://www.v.org/x\nHJ http://www.v.org\nHJ https://www.v.org/\n")
    assert t.rule is not None
    assert (t.rule["url"], t.rule["hosts"]) == ("https://www.v.org/x", ["www.v.org"])
    assert any("folded" in r for r in reasons(t, "note"))


def test_http_only_hosts_and_ports_are_kept() -> None:
    """A host listed only as http://, or with a port, keeps its scheme and port."""
    rule = rule_of("HJ http://old.vendor.org", "HJ https://api.vendor.org:9080")
    assert rule["hosts"] == ["www.vendor.org", "http://old.vendor.org", "api.vendor.org:9080"]


@pytest.mark.parametrize(
    ("line", "kind", "why"),
    [
        ("HJ www.vendor.org/", "warning", "trailing slash removed"),
        ("H 10.0.0.1", "dropped", "IP literal"),
        ("HJ *.vendor.org", "dropped", "not allowed"),
        ("DJ https://vendor.org/", "warning", "scheme https:// ignored"),
        ("Domain com", "dropped", "top-level domain"),
        ("DJ amazonaws.com", "warning", "shared by many unrelated sites"),
        ("D s3.amazonaws.com", "warning", "shared by many unrelated sites"),
    ],
)
def test_host_and_domain_problems_are_reported(line: str, kind: str, why: str) -> None:
    """Bad hosts and domains are dropped with a reason; suspicious ones are warned about."""
    t = translated(BASE + line + "\n")
    assert any(why in r for r in reasons(t, kind)), t.findings
    assert t.rule is not None
    VendorRule.model_validate({"id": "v", **t.rule})


def test_a_public_suffix_domain_is_dropped_per_stanza() -> None:
    """A Domain line naming a public suffix is dropped and reported; the rule still loads."""
    options = Options(is_public_suffix=lambda name: name in {"co.uk", "ac.uk"})
    t = translated(BASE + "DJ co.uk\n", options)
    assert any("public suffix" in r for r in reasons(t, "dropped"))
    assert t.rule is not None and t.rule["domains"] == ["vendor.org"]


def test_never_proxy_maps_and_never_covers_the_starting_point() -> None:
    """NeverProxy → never_proxy, except an entry that would cover the rule's own URL host."""
    rule = rule_of("NeverProxy cdn.privacy-mgmt.com", "NeverProxy www.vendor.org")
    assert rule["never_proxy"] == ["cdn.privacy-mgmt.com"]


@pytest.mark.parametrize(
    ("find", "replace", "pair", "kind", "why"),
    [
        (
            '"null/',
            '"//^swww.sciencedirect.com^/',
            {"find": '"null/', "replace": '"//www.sciencedirect.com/'},
            "note",
            "made literal",
        ),
        ("a%3A%2F%2Fw.org%2F", "a%3A%2F%2F^pw.org^%2F", None, "note", "changes nothing"),
        ('["APP"] = "w.org";', '["APP"] = "^Sw.org^";', None, "note", "changes nothing"),
        (
            "e.host",
            "^Sapi.vendor.org^",
            {"find": "e.host", "replace": "api.vendor.org"},
            "warning",
            "check that host rewriting maps",
        ),
        ('value="http://', 'value="http://^A', None, "not_imported", "^A"),
        (
            "redirect_uri=https://",
            "redirect_uri=https://^A",
            None,
            "not_imported",
            "rewrite.request_params",
        ),
        ("x.org", "x.org.^H", None, "not_imported", "^H"),
        ("x.org", "x^Dy", None, "not_imported", "^D"),
        ("x.org", "x^ly", None, "not_imported", "^L"),
        ("x", "^c", None, "not_imported", "unknown escape ^c"),
        ("x", "^S^", None, "not_imported", "names no host"),
        ("https://a-b-com.^D/x", "y", None, "not_imported", "^D/^H/^L"),
        ("globalNav(", "globalNavX(", {"find": "globalNav(", "replace": "globalNavX("}, "note", ""),
    ],
)
def test_find_replace_escapes(find: str, replace: str, pair: object, kind: str, why: str) -> None:
    """^S/^P…^ become literal hosts; ^A, ^D, ^H, ^L and unknown escapes are reported."""
    got, got_kind, got_why = translate_pair(find, replace)
    assert got == pair
    if why:
        assert got_kind == kind
        assert why in got_why
    else:
        assert got_why == ""


def test_find_replace_pairs_land_in_rewrite_and_strays_are_reported() -> None:
    """Paired Find/Replace lines become rewrite.find_replace; a lone Find or Replace is named."""
    t = translated(
        BASE + "Find a(\nReplace b(\nFind lonely\nFind c\nReplace d\nReplace orphan\nFind last\n"
    )
    assert t.rule is not None
    assert t.rule["rewrite"]["find_replace"] == [
        {"find": "a(", "replace": "b("},
        {"find": "c", "replace": "d"},
    ]
    got = reasons(t, "not_imported")
    assert sum("a Find without its Replace" in r for r in got) == 2
    assert any("a Replace without a Find" in r for r in got)


@pytest.mark.parametrize(
    ("line", "allowed", "kind", "why"),
    [
        ("HTTPHeader -request -process X-Requested-With", ["x-requested-with"], None, ""),
        ("HTTPheader -request -process x-Request-ID", ["x-request-id"], None, ""),
        ("HTTPHeader X-CSRF-Token", ["x-csrf-token"], None, ""),
        ("HTTPHeader =request =process x-b", ["x-b"], None, ""),
        ("HTTPHeader -global -request -process X-A", ["x-a"], "note", "-global"),
        ("HTTPHeader -request -process Origin", [], "refused", "privacy"),
        ("HTTPHeader -request -process X-Forwarded-For", [], "refused", "privacy"),
        ("HTTPHeader Authorization", [], "refused", "privacy"),
        (
            "HTTPHeader -response -block X-Frame-Options",
            [],
            "not_imported",
            "response-header policy",
        ),
        (
            "HTTPHeader -response -process Access-Control-Allow-Origin",
            [],
            "not_imported",
            "response",
        ),
        ("HTTPHeader -request -block X-Y", [], "not_imported", "never sent"),
        ("HTTPHeader -request -unrewrite Referer", [], "not_imported", "no equivalent"),
        ("HTTPHeader -request -inject X-Law expr", [], "not_imported", "fixed values"),
        ("HTTPHeader x-cobalt-*", [], "not_imported", "wildcards"),
        ("HTTPHeader -re -request -process X", [], "not_imported", "unrecognised qualifier -re"),
    ],
)
def test_http_header_variants(line: str, allowed: list[str], kind: str | None, why: str) -> None:
    """-request -process → headers.allow; privacy headers refused; the other forms reported."""
    t = translated(BASE + line + "\n")
    assert t.rule is not None
    assert t.rule.get("headers", {}).get("allow", []) == allowed
    if kind:
        assert any(why in r for r in reasons(t, kind)), t.findings


@pytest.mark.parametrize(
    ("line", "added", "kind", "why"),
    [
        ("MimeFilter application/json .* javascript", None, "note", "by default"),
        ("MimeFilter text/plain .* javascript", "text/plain", None, ""),
        ("MimeFilter text/event-stream .* javascript", "text/event-stream", None, ""),
        (
            "MimeFilter text/plain https://x.org/api/.* javascript",
            "text/plain",
            "warning",
            "limited",
        ),
        ("MimeFilter application/octet-stream .* javascript", None, "not_imported", "corrupt"),
        (
            "MimeFilter ^$ https?://heinonline.org/HOL/.* javascript",
            None,
            "not_imported",
            "regular expression",
        ),
        ("MimeFilter application/pdf .* pdf", None, "not_imported", "action 'pdf'"),
        ("MimeFilter text/plain", None, "not_imported", "expected"),
    ],
)
def test_mime_filter(line: str, added: str | None, kind: str | None, why: str) -> None:
    """A MimeFilter naming a type adds it to rewrite.content_types; regexes are reported."""
    t = translated(BASE + line + "\n")
    assert t.rule is not None
    types = t.rule.get("rewrite", {}).get("content_types")
    assert types == (None if added is None else [*DEFAULT_REWRITE_TYPES, added])
    if kind:
        assert any(why in r for r in reasons(t, kind)), t.findings


@pytest.mark.parametrize(
    ("lines", "kind", "why"),
    [
        ("AnonymousURL -https://rss.vendor.org/\n", "not_imported", "an exclusion"),
        ("HTTPMethod OPTIONS\n", "note", "already sends"),
        ("Cookie BROWSER_SUPPORTS_COOKIES=1;domain=.vendor.org\n", "not_imported", "cannot seed"),
        ("DbVar0 abc\n", "not_imported", "database variables"),
        (
            "AddUserHeader -base64 X-EBSCO-PROXY-Username\n",
            "refused",
            "pseudonym: {header: X-EBSCO-PROXY-Username}",
        ),
        (
            "ProxyHostnameEdit www.scopus.com$ www-scopus-com\n",
            "not_imported",
            "already yields 'www-scopus-com' for 'www.scopus.com'",
        ),
        (
            "PHE sciwheel.com$ sciwheel\n",
            "not_imported",
            "ours for 'sciwheel.com' is 'sciwheel-com'",
        ),
        ("ProxyHostnameEdit ^lynda.com$ lynda-com\n", "not_imported", "already yields 'lynda-com'"),
        ("FormVariable password=hunter2\n", "not_imported", "shared credentials"),
        ("ByteServe\n", "not_imported", "Range"),
        ("Ttitle Other\n", "not_imported", "did you mean Title?"),
        ("Frobnicate 1\n", "not_imported", "unknown directive"),
    ],
)
def test_directives_that_do_not_map_are_reported(lines: str, kind: str, why: str) -> None:
    """Every directive without an equivalent is reported with file:line and why."""
    t = translated(BASE + lines)
    assert any(why in r for r in reasons(t, kind)), t.findings
    assert all(f.where is not None for f in t.findings)
    assert "hunter2" not in " ".join(str(f) for f in t.findings)


@pytest.mark.parametrize(
    ("option", "cookies"),
    [
        ("CookiePassThrough", "pass"),
        ("DomainCookieOnly", "server_side"),
        ("NoCookie", "server_side"),
        ("Cookie", "server_side"),
    ],
)
def test_cookie_options_set_the_cookies_key(option: str, cookies: str) -> None:
    """The cookie option in effect at the Title decides ``cookies``."""
    t = translated(f"Option {option}\n{BASE}Option Cookie\n")
    assert t.rule is not None and t.rule["cookies"] == cookies


def test_x_forwarded_for_is_refused_on_every_stanza_it_covers() -> None:
    """A stanza under ``Option X-Forwarded-For`` carries the privacy refusal."""
    t = translated(f"Option X-Forwarded-For\n{BASE}")
    assert [str(f.where) for f in t.findings if f.kind == "refused"] == ["c.txt:1"]


def test_groups_become_libraries() -> None:
    """The group in effect maps to member library codes through the options."""
    t = translated(f"Group Law\n{BASE}", Options(groups={"law": ("MAIN",)}))
    assert t.rule is not None and t.rule["libraries"] == ("MAIN",)


@pytest.mark.parametrize(
    ("text", "url", "why"),
    [
        (
            "Title EDP\nHJ https://erudit.org\nDJ erudit.org\n",
            "https://erudit.org/",
            "starting point",
        ),
        ("Title EDP\nDJ erudit.org\n", "https://erudit.org/", "starting point"),
    ],
)
def test_a_stanza_without_url_starts_at_its_first_host(text: str, url: str, why: str) -> None:
    """No URL line: the first host (or domain) becomes the starting point, with a warning."""
    t = translated(text)
    assert t.rule is not None and t.rule["url"] == url
    assert any(why in r for r in reasons(t, "warning"))


@pytest.mark.parametrize(
    "text",
    [
        "Title Empty\n",
        "Title Templates\nURL https://[siteID].proquest.com\nHJ [siteID].proquest.com\n",
    ],
)
def test_a_stanza_with_nothing_servable_is_not_importable(text: str) -> None:
    """A stanza left without a URL, host or domain is reported as not importable."""
    t = translated(text)
    assert t.rule is None
    assert [f.why for f in t.findings if f.kind == "unimportable"] == [
        "no URL, Host or Domain line to import"
    ]
