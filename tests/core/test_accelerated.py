"""The compiled rewriter helpers (proxy/core/_referencescan.pyx) against the Python code each
mirrors: the same answers on random bytes, on the fragments real pages use, at any start,
limit and stop, on the real pages and on the link-dense benchmark page (issue 19)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.linkdense import link_dense_page
from proxy.core import accelerated
from proxy.core.hostmap import HostMap
from proxy.core.hostpattern import _UNKNOWN, LOOKBACK, scan_table, tld_scan
from proxy.core.htmlfixups import TRIGGERS
from proxy.core.rewrite import HostRewriter, HostStage, splice_python
from proxy.core.ruleset import RuleIndex
from tests.core.conftest import require_compiled
from tests.core.test_rewrite import FRAGMENTS, PLAIN_EDGES
from tests.test_realworld_pages import PAGES_DIR, realworld_rewriter

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BODIES = st.lists(st.sampled_from(FRAGMENTS + PLAIN_EDGES) | st.binary(max_size=16)).map(b"".join)
# What third-party counting reads: URL openers, hosts, dots and the bytes that end them.
THIRD_PARTY_BITS = [b"//", b"://", b'"//', b"'//", b"=//", b"(//", b",//", b"a.b", b"x-y.Z9"]
THIRD_PARTY_BITS += [
    b"https://www.jstor.org",
    b"//WWW.JSTOR.ORG",
    b"//jstor.org:443",
    b"'www.jstor.org'",
]
THIRD_PARTY_BITS += [b".", b"..", b"-", b"_", b" ", b"/", b"A", b"cdn.example.com", b":8080"]


@pytest.fixture
def rewriter(index: RuleIndex, hostmap: HostMap) -> HostRewriter:
    """The rewriter for the core fixtures' rules under http://proxy.localhost:8080."""
    return HostRewriter.build(index, hostmap, "http")


def real_bodies() -> list[bytes]:
    """The real pages and the generated link-dense page."""
    return [p.read_bytes() for p in sorted(PAGES_DIR.glob("*.html"))] + [link_dense_page()]


def test_ci_builds_the_compiled_helpers() -> None:
    """In CI the helpers must be there (a skip would hide a broken build); they are the
    module setup.py builds, inside this repository."""
    compiled = require_compiled()
    assert Path(str(getattr(compiled, "__file__", ""))).suffix == ".so"
    assert accelerated.compiled is compiled


@SETTINGS
@given(body=BODIES, begin=st.integers(min_value=0, max_value=3000))
def test_the_candidate_scan_is_tld_scan(rewriter: HostRewriter, body: bytes, begin: int) -> None:
    """The C scan yields exactly the spans of the ``re`` pattern it replaces."""
    compiled = require_compiled()
    low, matcher = body.lower(), rewriter.matcher
    start = min(begin, len(low))
    expected = [hit.span() for hit in matcher.tld_scan_lower.finditer(low, start)]
    assert compiled.candidates(matcher, low, start) == expected


# Covered names whose top-level domains share first bytes and lengths ("co", "com", "cz",
# "org", "online"), and labels that share their last byte: what the C table's pre-filters
# and its last-byte test must not get wrong.
LABELS = st.sampled_from(["a", "ab", "lib", "jstor", "b-2", "xb", "ebsco", "acme", "cme"])
TLDS = st.sampled_from(["co", "com", "cz", "org", "online", "o", "test", "c0m"])
NAMES = st.sets(st.builds(lambda lab, tld: f"{lab}.{tld}", LABELS, TLDS), min_size=1, max_size=8)
SCAN_BITS = [b".", b"..", b"co", b"com", b"m", b"online", b"_", b"-", b"a", b"ab", b"/", b"x"]


@SETTINGS
@given(names=NAMES, data=st.data())
def test_the_candidate_scan_is_tld_scan_for_any_covered_names(
    names: set[str], data: st.DataObject
) -> None:
    """For any set of covered names, the C scan (its C tables and pre-filters) yields the
    spans of the ``re`` pattern built from the same names, on bodies made of those names,
    near misses and bits."""
    compiled = require_compiled()
    whole = st.sampled_from(sorted(names)).map(str.encode)
    parts = data.draw(st.lists(st.sampled_from(SCAN_BITS) | LABELS.map(str.encode) | whole))
    low = b"".join(parts).lower()
    matcher = SimpleNamespace(scan_table=scan_table(names))
    expected = [hit.span() for hit in tld_scan(names, ignore_case=False).finditer(low)]
    assert compiled.candidates(matcher, low, 0) == expected


@pytest.mark.parametrize(
    "table",
    [
        ((b"com", ((3, (b"ab",)),)),),  # a label shorter than its width: never read past it
        ((b"com", ((3, (b"abc",)), (2, (b"ab",)))),),  # widths descending
        ((b"", ()),),  # an empty top-level domain
        ((b"com", ((0, (b"",)),)),),  # an empty label
        ((b"com", [(3, (b"abc",))]),),  # not a tuple
    ],
)
def test_a_malformed_scan_table_is_refused(table: tuple[object, ...]) -> None:
    """The C table is built only from a well-formed ``scan_table``: anything else raises
    before a byte is read through it."""
    compiled = require_compiled()
    with pytest.raises((ValueError, TypeError)):
        compiled.candidates(SimpleNamespace(scan_table=table), b"x.abc.com y", 0)


def test_the_candidate_scan_is_tld_scan_on_real_pages() -> None:
    """The same on every real page and the link-dense page, under the real-world rules."""
    compiled = require_compiled()
    matcher = realworld_rewriter().matcher
    for body in real_bodies():
        low = body.lower()
        expected = [hit.span() for hit in matcher.tld_scan_lower.finditer(low, 0)]
        assert compiled.candidates(matcher, low, 0) == expected
        assert expected  # the pages do name covered hosts


@SETTINGS
@given(
    body=BODIES,
    begin=st.integers(min_value=0, max_value=3000),
    cut=st.integers(min_value=0, max_value=3000),
)
def test_compiled_references_are_the_python_loop(
    rewriter: HostRewriter, body: bytes, begin: int, cut: int
) -> None:
    """``references`` compiled and ``_references`` agree from any start to any limit."""
    compiled = require_compiled()
    matcher, low = rewriter.matcher, body.lower()
    limit = min(cut, len(body))
    start = min(begin, limit)
    got = compiled.references(matcher, body, low, start, limit, LOOKBACK, _UNKNOWN)
    assert got == matcher._references(body, start, limit, low)


def test_compiled_references_are_the_python_loop_on_real_pages() -> None:
    """The same on every real page and the link-dense page, whole and from a midpoint."""
    compiled = require_compiled()
    matcher = realworld_rewriter().matcher
    for body in real_bodies():
        low = body.lower()
        for start, limit in ((0, len(body)), (len(body) // 3, 2 * len(body) // 3)):
            got = compiled.references(matcher, body, low, start, limit, LOOKBACK, _UNKNOWN)
            assert got == matcher._references(body, start, limit, low)


@SETTINGS
@given(data=st.data(), body=st.binary(max_size=300))
def test_splice_is_the_python_splice(data: st.DataObject, body: bytes) -> None:
    """Any ordered, non-overlapping edits give the same bytes; bad edits are refused."""
    compiled = require_compiled()
    points = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    start, resume = (points[0], points[-1]) if points else (0, len(body))
    inner = points[1:-1]
    edits = [
        (a, b, data.draw(st.binary(max_size=8)), "h")
        for a, b in zip(inner[0::2], inner[1::2], strict=False)
    ]
    assert compiled.splice(body, start, edits, resume) == splice_python(body, start, edits, resume)
    if len(edits) > 1 and edits[-1][1] > edits[0][0]:  # reversed, they overlap
        with pytest.raises(ValueError):
            compiled.splice(body, start, edits[::-1], resume)
    with pytest.raises(ValueError):
        compiled.splice(body, 0, [], len(body) + 1)


@SETTINGS
@given(
    parts=st.lists(st.sampled_from(THIRD_PARTY_BITS) | st.binary(max_size=6), max_size=40),
    begin=st.integers(0, 400),
    cut=st.integers(0, 400),
    late=st.integers(0, 400),
)
def test_third_party_scans_are_the_python_scans(
    rewriter: HostRewriter,
    parts: list[bytes],
    begin: int,
    cut: int,
    late: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compiled third-party scans count the same hosts, as often, for any start, limit
    and stop (a fixed tag running past the limit); the hosts they skip are the covered ones
    the fold drops."""
    compiled = require_compiled()
    body = b"".join(parts)
    limit = min(cut, len(body))
    start = min(begin, limit)
    stop = min(late, len(body))
    edits = rewriter.matcher._references(body, start, limit, body.lower())
    fast = HostStage(rewriter.matcher, tags=None, count_third_party=True)
    fast._collect_third_party(body, start, limit, stop, edits)
    slow = HostStage(rewriter.matcher, tags=None, count_third_party=True)
    with monkeypatch.context() as python_only:
        python_only.setattr(accelerated, "compiled", None)
        slow._collect_third_party(body, start, limit, stop, edits)
    assert fast.referenced == slow.referenced
    assert compiled is accelerated.compiled


def test_contains_any_is_the_python_test() -> None:
    """The trigger-word pre-check answers as ``in`` does, also at the edges of the text."""
    compiled = require_compiled()
    texts = [b"", b"integrit", b"integrity", b"xx content-security-policy", b"a" * 5000]
    texts += [body.lower() for body in real_bodies()]
    for text in texts:
        assert compiled.contains_any(text, TRIGGERS) == any(w in text for w in TRIGGERS)


@SETTINGS
@given(body=st.binary(max_size=300) | BODIES)
def test_lower_is_bytes_lower(body: bytes) -> None:
    """The vectorized lower-casing changes exactly the bytes ``bytes.lower`` changes."""
    compiled = require_compiled()
    assert compiled.lower(body) == body.lower()
    every = bytes(range(256)) * 3
    assert compiled.lower(every) == every.lower()
