"""Rewriting real publisher pages (../shared/realworld/vendor-pages, see its PROVENANCE.md).

For each page, under a rule set covering the vendors' hosts: no absolute reference to a
covered host survives in any spelling; every reference to another host is byte-identical;
the page parses to the same element structure; chunking changes nothing. The pages are
third-party test input: they are read from beside the repository and never copied into it.
When CI=true and the folder is missing, the tests fail instead of skipping.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import html5lib
import pytest

from proxy.core.hostmap import HostMap
from proxy.core.rewrite import HostRewriter
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex

REPO = Path(__file__).resolve().parents[1]
PAGES_DIR = REPO.parent / "shared" / "realworld" / "vendor-pages"
PROXY_HOST = "proxy.localhost"
HTML = "text/html; charset=utf-8"

# One rule per vendor, with the hosts its pages load from (picked by reading the pages).
VENDORS: dict[str, tuple[str, ...]] = {
    "elsevier": (
        "sciencedirect.com",
        "sciencedirectassets.com",
        "elsevier.com",
        "els-cdn.com",
        "scopus.com",
    ),
    "springer": ("springer.com", "springernature.com"),
    "wiley": ("wiley.com", "literatumonline.com"),
    "tandf": ("tandfonline.com",),
    "elife": ("elifesciences.org",),
    "ncbi": ("ncbi.nlm.nih.gov",),
    "wos": ("webofknowledge.com", "isiknowledge.com"),
    "lww": ("lww.com", "wolterskluwer.com", "wkhealth.com"),
    "proquest": ("proquest.com",),
}


def realworld_index() -> RuleIndex:
    """The rule set for the real pages: every vendor's domains, no never_proxy."""
    return RuleIndex.build(
        VendorRule.model_validate(
            {"id": vid, "title": vid, "url": f"https://www.{domains[0]}/", "domains": domains}
        )
        for vid, domains in VENDORS.items()
    )


def realworld_rewriter() -> HostRewriter:
    """The rewriter bench/ and these tests use: http://*.proxy.localhost:8080."""
    return HostRewriter.build(realworld_index(), HostMap(PROXY_HOST, 8080), "http")


def page_paths() -> list[Path]:
    """The real pages, or a clear failure in CI when the folder is missing."""
    pages = sorted(PAGES_DIR.glob("*.html")) if PAGES_DIR.is_dir() else []
    if not pages and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but no real pages in {PAGES_DIR}", pytrace=False)
    return pages


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise over the pages; one skipped case outside CI when there are none."""
    if "page" in metafunc.fixturenames:
        pages = page_paths()
        params = pages or [pytest.param(None, marks=pytest.mark.skip(f"no {PAGES_DIR}"))]
        metafunc.parametrize(
            "page", params, ids=[p.name if p else "missing" for p in pages] or None
        )


@pytest.fixture(scope="module")
def rewriter() -> HostRewriter:
    """One rewriter for all pages (built once per rule set, as the relay does)."""
    return realworld_rewriter()


def rewritten(rewriter: HostRewriter, body: bytes, chunk: int = 64 * 1024) -> bytes:
    """``body`` rewritten as the relay would stream it."""
    one = rewriter.rewriter(content_type=HTML, third_party="report")
    return b"".join(one.feed(body[i : i + chunk]) for i in range(0, len(body), chunk)) + one.flush()


def is_covered(host: str) -> bool:
    """The oracle: a rule covers ``host`` (independent of the rewriter's own matching)."""
    host = host.lower().rstrip(".")
    if host == PROXY_HOST or host.endswith("." + PROXY_HOST):
        return False
    return any(host == d or host.endswith("." + d) for ds in VENDORS.values() for d in ds)


# Any spelling of "//" (optionally after a scheme) followed by a host: the leak detector.
SLASH = r"(?:/|\\/|%2f|%252f|&#x0*2f;|&#0*47;|&sol;|\\u002f|\\x2f)"
URL_HOST = re.compile(rf"(?i){SLASH}{SLASH}([a-z0-9][a-z0-9.-]*[a-z0-9])")
QUOTED_HOST = re.compile(
    r"""(?i)(?:["'`]|&quot;)([a-z0-9][a-z0-9.-]*\.[a-z]{2,})(?=["'`/\\?#]|&quot;)"""
)
SCHEME_HOST = re.compile(rb"(?i)\b(https?)://([a-z0-9][a-z0-9.-]*[a-z0-9])(?::[0-9]+)?")


def text(body: bytes) -> str:
    """Bytes as text, one character per byte (pages are not all valid UTF-8)."""
    return body.decode("latin-1")


def test_no_reference_to_a_covered_host_survives(rewriter: HostRewriter, page: Path) -> None:
    """No covered host is left in a URL (any encoding) or as a quoted host name."""
    source = page.read_bytes()
    out = text(rewritten(rewriter, source))
    leaks = [h for h in URL_HOST.findall(out) + QUOTED_HOST.findall(out) if is_covered(h)]
    assert not leaks, f"{page.name}: {Counter(leaks).most_common(5)}"
    covered_before = [h for h in URL_HOST.findall(text(source)) if is_covered(h)]
    assert covered_before, f"{page.name}: the rule set covers nothing on this page"


def other_hosts(body: bytes) -> Counter[bytes]:
    """The multiset of ``scheme://host[:port]`` of hosts no rule covers (mapped ones aside)."""
    return Counter(
        m[0]
        for m in SCHEME_HOST.finditer(body)
        if not is_covered(m[2].decode()) and not m[2].lower().endswith(PROXY_HOST.encode())
    )


def test_references_to_other_hosts_are_byte_identical(rewriter: HostRewriter, page: Path) -> None:
    """Every scheme://host of a host no rule covers appears exactly as often as before."""
    source = page.read_bytes()
    assert other_hosts(rewritten(rewriter, source)) == other_hosts(source)


def element_names(body: bytes) -> list[str]:
    """The sequence of element names an HTML5 parser builds from ``body``."""
    tree = html5lib.parse(body, treebuilder="etree", namespaceHTMLElements=False)
    return [el.tag for el in tree.iter() if isinstance(el.tag, str)]


def test_the_element_structure_is_unchanged(rewriter: HostRewriter, page: Path) -> None:
    """The rewritten page parses (html5lib) to the same sequence of elements."""
    source = page.read_bytes()
    assert element_names(rewritten(rewriter, source)) == element_names(source)


def test_chunk_size_does_not_matter_on_real_pages(rewriter: HostRewriter, page: Path) -> None:
    """Small, odd and whole-body chunks give the same bytes."""
    source = page.read_bytes()
    whole = rewritten(rewriter, source, len(source) + 1)
    assert rewritten(rewriter, source, 1000) == whole
    assert rewritten(rewriter, source, 4093) == whole


def test_the_fast_path_agrees_with_the_general_decision(rewriter: HostRewriter, page: Path) -> None:
    """On every real page, the hot loop's references are those the general decision finds."""
    from tests.core.test_rewrite import general_references

    body = page.read_bytes()
    assert rewriter.matcher.references(body, 0, len(body)) == general_references(rewriter, body)


def test_the_generated_link_dense_page_has_no_escape(rewriter: HostRewriter) -> None:
    """bench's link-dense page: no covered host survives in any spelling, other hosts and the
    element structure are untouched, the fast path agrees, chunking is invisible."""
    from bench.linkdense import link_dense_page
    from tests.core.test_rewrite import general_references

    body = link_dense_page()
    refs = rewriter.matcher.references(body, 0, len(body))
    assert refs == general_references(rewriter, body)
    assert len(refs) > 500
    out = rewritten(rewriter, body)
    assert out == rewritten(rewriter, body, chunk=997)
    leaks = URL_HOST.findall(text(out)) + QUOTED_HOST.findall(text(out))
    assert [h for h in leaks if is_covered(h)] == []
    assert other_hosts(out) == other_hosts(body)
    assert element_names(out) == element_names(body)
