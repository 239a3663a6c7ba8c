"""Benchmark: body-rewriting throughput on the real vendor pages, against pywb and parsers.

Run: ``python -m bench.rewrite_speed [--rounds N] [--pages DIR]`` from the repository root,
with a Python that has the bench-only packages (they are not runtime dependencies)::

    python -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install pywb selectolax lxml "pydantic>=2.6,<3" pytest html5lib
    /tmp/bench-venv/bin/pip uninstall -y brotlipy && /tmp/bench-venv/bin/pip install "brotli==1.1.0"
    PYTHONPATH=. /tmp/bench-venv/bin/python -m bench.rewrite_speed

(pywb pulls in ``brotlipy``, which replaces the ``brotli`` module the proxy uses, and an old
``redis``: keep it out of the project's own virtualenv.) A contender whose package is
missing is reported as such and skipped.

Two page sets, one table each: the real pages (../shared/realworld/vendor-pages) and the
generated link-dense page (bench/linkdense.py: 100 KB, ~500 absolute vendor links plus
protocol-relative, srcset, CSS ``url()``, JSON-escaped and percent-encoded forms: a search
results list, the kind of page patrons load most). Same rules (tests/test_realworld_pages.py)
for every contender, fed in 64 KB chunks where they stream:
  * clamshell: ``HostRewriter`` with ``third_party: report`` (the rule default), HTML;
  * clamshell, third_party allow: the same without third-party counting;
  * clamshell, Python loop: the first row without the compiled helpers (core/accelerated.py),
    what a machine without a C compiler at install time runs;
  * clamshell + codecs: the relay's whole body path for a gzip page and a browser's
    Accept-Encoding: gunzip → rewrite → re-encode (``Encoder.for_accept``);
  * pywb: ``pywb.rewrite.html_rewriter.HTMLRewriter`` (archival URL rewriting of every URL,
    inline scripts and styles included);
  * selectolax (lexbor) and lxml: parse, map URL attributes with ``UrlMapper.to_proxy``
    (lxml's ``rewrite_links`` also does CSS), serialise. Both miss URLs in scripts;
  * one compiled regex for ``https?://host``: DESIGN.md's reference point for how fast a
    single regex pass is on this machine (it misses every other form). On a busy machine
    all figures drop; the ratios are what to compare.
Rounds interleave the contenders so that load from other processes hits them alike; the
table shows the median per-round throughput (CPU time) and the median per-round ratio.
``--breakdown`` instead prints each stage's cost on the link-dense page alone (best of 60+
CPU timings: the profile in numbers, robust on a shared machine).
Not a test: nothing here asserts. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.linkdense import link_dense_page
from proxy.contentcoding import Decoder, Encoder
from proxy.core import accelerated
from proxy.core.hostmap import HostMap
from proxy.core.rewrite import HostRewriter, ThirdParty
from proxy.core.urlmap import UrlMapper
from tests.test_realworld_pages import PAGES_DIR, realworld_index, realworld_rewriter

CHUNK = 64 * 1024
HTML = "text/html; charset=utf-8"
URL_ATTRIBUTES = ("href", "src", "action", "poster", "data", "formaction", "background")

Contender = Callable[[list[bytes]], None]


def clamshell(
    rewriter: HostRewriter, third_party: ThirdParty = "report", *, python_loop: bool = False
) -> Contender:
    """Our streaming rewriter, as the relay runs it; ``python_loop`` runs it without the
    compiled helpers (core/accelerated.py), as on a machine without a C compiler."""

    def run(pages: list[bytes]) -> None:
        compiled = accelerated.compiled
        if python_loop:
            accelerated.compiled = None
        try:
            for page in pages:
                body = rewriter.rewriter(content_type=HTML, third_party=third_party)
                for i in range(0, len(page), CHUNK):
                    body.feed(page[i : i + CHUNK])
                body.flush()
        finally:
            accelerated.compiled = compiled

    return run


BROWSER_ACCEPT = "gzip, deflate, br, zstd"  # what Chromium sends


def clamshell_with_codecs(rewriter: HostRewriter, pages: list[bytes]) -> Contender:
    """gunzip → rewrite → re-encode for a browser, the relay's whole path for a gzip page."""
    compressed = {id(p): gzip.compress(p, 6) for p in pages}

    def run(pages: list[bytes]) -> None:
        for page in pages:
            wire = compressed[id(page)]
            decoder = Decoder.for_coding("gzip", max_output=50 * 2**20)
            encoder = Encoder.for_accept(BROWSER_ACCEPT)
            body = rewriter.rewriter(content_type=HTML, third_party="report")
            for i in range(0, len(wire), CHUNK):
                for piece in decoder.iter_decode(wire[i : i + CHUNK]):
                    encoder.encode(body.feed(piece))
            encoder.encode(body.feed(decoder.flush()) + body.flush())
            encoder.flush()

    return run


def naive_regex(mapper: UrlMapper) -> Contender:
    """One compiled regex for ``https?://host`` with a dict-backed callback: the reference
    point of DESIGN.md ("one compiled regex ~206 MB/s"); it misses every other form."""
    pattern = re.compile(rb"https?://([a-z0-9.-]+)")
    cache: dict[bytes, bytes] = {}

    def replace(match: re.Match[bytes]) -> bytes:
        url = match[0]
        if url not in cache:
            cache[url] = (mapper.to_proxy(url.decode("latin-1")) or url.decode()).encode()
        return cache[url]

    def run(pages: list[bytes]) -> None:
        for page in pages:
            pattern.sub(replace, page)

    return run


def pywb_rewriter() -> Contender | None:
    """pywb's HTML rewriter with its JS and CSS rewriters (str in, str out)."""
    try:
        from pywb.rewrite.html_rewriter import HTMLRewriter
        from pywb.rewrite.url_rewriter import UrlRewriter
    except ImportError:
        return None
    urls = UrlRewriter(
        "20240101000000/https://www.sciencedirect.com/science/article/pii/X",
        "http://proxy.localhost:8080/web/",
    )

    def run(pages: list[bytes]) -> None:
        for page in pages:
            text = page.decode("latin-1")
            rewriter = HTMLRewriter(urls)
            out = [rewriter.rewrite(text[i : i + CHUNK]) for i in range(0, len(text), CHUNK)]
            ("".join(out) + rewriter.close()).encode("latin-1")

    return run


def selectolax_rewriter(mapper: UrlMapper) -> Contender | None:
    """Parse with lexbor, map URL attributes (and srcset candidates), serialise."""
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError:
        return None
    selector = ",".join(f"[{a}]" for a in (*URL_ATTRIBUTES, "srcset"))

    def run(pages: list[bytes]) -> None:
        for page in pages:
            tree = LexborHTMLParser(page.decode("latin-1"))
            for node in tree.css(selector):
                for name, value in list(node.attributes.items()):
                    if value and name in URL_ATTRIBUTES:
                        node.attrs[name] = mapper.to_proxy(value) or value
                    elif value and name == "srcset":
                        node.attrs[name] = map_srcset(value, mapper)
            (tree.html or "").encode("latin-1", "replace")

    return run


def map_srcset(value: str, mapper: UrlMapper) -> str:
    """Each srcset candidate's URL mapped."""
    candidates = []
    for candidate in value.split(","):
        url, _, descriptor = candidate.strip().partition(" ")
        candidates.append(f"{mapper.to_proxy(url) or url} {descriptor}".strip())
    return ", ".join(candidates)


def lxml_rewriter(mapper: UrlMapper) -> Contender | None:
    """lxml.html: parse, ``rewrite_links`` (attributes and CSS), serialise."""
    try:
        import lxml.html
    except ImportError:
        return None

    def run(pages: list[bytes]) -> None:
        for page in pages:
            doc = lxml.html.document_fromstring(page)
            doc.rewrite_links(lambda url: mapper.to_proxy(url) or url, resolve_base_href=False)
            lxml.html.tostring(doc)

    return run


def cpu_seconds(run: Contender, pages: list[bytes], minimum: float) -> float:
    """CPU seconds per pass over the pages (passes repeated for at least ``minimum``)."""
    passes, start = 0, time.process_time()
    while True:
        run(pages)
        passes += 1
        spent = time.process_time() - start
        if spent >= minimum:
            return spent / passes


def measure(
    contenders: dict[str, Contender], pages: list[bytes], rounds: int
) -> dict[str, list[float]]:
    """Seconds per pass for each contender in each round, interleaved."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():
        run(pages[:1])  # warm up imports and caches
    for _ in range(rounds):
        for name, run in contenders.items():
            seconds[name].append(cpu_seconds(run, pages, minimum=0.3))
    return seconds


def table(seconds: dict[str, list[float]], size: int, missing: list[str]) -> str:
    """The Markdown table: median MB/s and median ratios against pywb and against us."""
    rows = [
        "| rewriter | MB/s (median) | MB/s (best) | clamshell is × faster |",
        "| --- | ---: | ---: | ---: |",
    ]
    ours = seconds["clamshell"]
    for name, times in seconds.items():
        ratio = statistics.median(t / o for t, o in zip(times, ours, strict=True))
        rows.append(
            f"| {name} | {size / statistics.median(times) / 1e6:.1f} "
            f"| {size / min(times) / 1e6:.1f} | {ratio:.1f} |"
        )
    rows += [f"| {name} | not installed | | |" for name in missing]
    return "\n".join(rows)


def breakdown(rounds: int) -> str:
    """Where the time goes on the link-dense page: each stage alone, best of ``rounds`` CPU
    timings (the minimum is what load from other processes disturbs least); then the real
    pages whole, the same way."""
    rewriter = realworld_rewriter()
    matcher, page = rewriter.matcher, link_dense_page()
    low = page.lower()
    matcher.references(page, 0, len(page), low)  # warm the host cache
    regex: re.Pattern[bytes] = re.compile(rb"https?://([a-z0-9.-]+)")
    seen: dict[bytes, bytes] = {}
    compiled = accelerated.compiled

    def whole(third_party: ThirdParty) -> Callable[[], object]:
        def run() -> object:
            body = rewriter.rewriter(content_type=HTML, third_party=third_party)
            out = body.feed(page) + body.flush()
            return out, body.referenced_hosts

        return run

    stages: dict[str, Callable[[], object]] = {
        "bytes.lower() of the page": page.lower,
        "candidate scan alone (tld_scan finditer)": lambda: list(
            matcher.tld_scan_lower.finditer(low)
        ),
        "candidate scan alone, compiled (_referencescan.candidates)": (
            (lambda: compiled.candidates(matcher, low, 0)) if compiled else (lambda: None)
        ),
        "HostMatcher.references (scan + decisions)": lambda: matcher.references(
            page, 0, len(page), low
        ),
        "whole body, third_party allow": whole("allow"),
        "whole body, third_party report": whole("report"),
        "whole body, third_party report, Python loop": functools.partial(
            clamshell(rewriter, python_loop=True), [page]
        ),
        "one regex https?://host, re.sub + dict": lambda: regex.sub(
            lambda m: seen.get(m[0], m[0]), page
        ),
    }
    real = [p.read_bytes() for p in sorted(PAGES_DIR.glob("*.html"))]
    sizes = dict.fromkeys(stages, len(page))
    for third_party in ("allow", "report"):
        name = f"{len(real)} real pages, whole bodies, third_party {third_party}"
        stages[name] = functools.partial(clamshell(rewriter, third_party), real)
        sizes[name] = sum(map(len, real))
    best = dict.fromkeys(stages, float("inf"))
    for _ in range(rounds):
        for name, run in stages.items():
            started = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - started)
    refs = len(matcher.references(page, 0, len(page), low))
    loop = "compiled" if accelerated.compiled is not None else "Python (not built)"
    rows = [f"link-dense page: {len(page):,} bytes, {refs} references; best of {rounds}; "
            f"rewriter loop: {loop}\n",
            "| stage | µs (best) | MB/s |", "| --- | ---: | ---: |"]  # fmt: skip
    rows += [
        f"| {name} | {t * 1e6:,.0f} | {sizes[name] / t / 1e6:,.0f} |" for name, t in best.items()
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Measure and print one table per page set."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=Path, default=PAGES_DIR)
    parser.add_argument("--only-link-dense", action="store_true", help="skip the real pages")
    parser.add_argument(
        "--breakdown", action="store_true", help="per-stage costs on the link-dense page only"
    )
    args = parser.parse_args(argv)
    if args.breakdown:
        print(breakdown(max(args.rounds, 60)))
        return 0
    real = [p.read_bytes() for p in sorted(args.pages.glob("*.html"))]
    if not real and not args.only_link_dense:
        print(f"no pages in {args.pages}", file=sys.stderr)
        return 1
    sets = {"link-dense page (generated, bench/linkdense.py)": [link_dense_page()]}
    if not args.only_link_dense:
        sets = {f"real pages ({args.pages.name})": real} | sets
    for title, pages in sets.items():
        contenders, missing = build_contenders(pages)
        size = sum(map(len, pages))
        print(f"\n### {title}: {len(pages)} pages, {size / 1e6:.2f} MB, {args.rounds} rounds\n")
        print(table(measure(contenders, pages, args.rounds), size, missing))
    return 0


def build_contenders(pages: list[bytes]) -> tuple[dict[str, Contender], list[str]]:
    """Every contender for ``pages``, and the names of those whose package is missing."""
    rewriter = realworld_rewriter()
    mapper = UrlMapper(HostMap("proxy.localhost", 8080), realworld_index(), "http")
    optional = {
        "pywb": pywb_rewriter(),
        "selectolax (parse + attributes)": selectolax_rewriter(mapper),
        "lxml (parse + rewrite_links)": lxml_rewriter(mapper),
    }
    contenders: dict[str, Contender] = {
        "clamshell": clamshell(rewriter),
        "clamshell, third_party allow": clamshell(rewriter, "allow"),
        "clamshell, Python loop (no C compiler)": clamshell(rewriter, python_loop=True),
        f"clamshell + gunzip + {Encoder.for_accept(BROWSER_ACCEPT).coding} (relay path)": (
            clamshell_with_codecs(rewriter, pages)
        ),
    }
    contenders |= {name: run for name, run in optional.items() if run is not None}
    contenders["one regex, https?://host only (reference)"] = naive_regex(mapper)
    return contenders, [name for name, run in optional.items() if run is None]


if __name__ == "__main__":
    raise SystemExit(main())
