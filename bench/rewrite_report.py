"""Report: what the rewriter did to each real vendor page, per host.

Run: ``python -m bench.rewrite_report [--pages DIR] [--top N]`` from the repository root
(the project's virtualenv is enough). For every page in ../shared/realworld/vendor-pages,
under the rules of tests/test_realworld_pages.py, it prints a Markdown table per page:
  * rewritten: references to the host that the rewriter mapped (any spelling);
  * left: URL-shaped references (``//host`` in any spelling, as the real-page test detects
    them) still naming the host in the output. For a covered host this must be 0; for
    other hosts it is every reference, left byte-identical on purpose;
  * third-party: ``//host`` references the rewriter counted for ``third_party: report``.
Covered hosts come first, then the ``--top`` most referenced other hosts.
Not a test: nothing here asserts (tests/test_realworld_pages.py does).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from proxy.core.rewrite import HostRewriter
from tests.test_realworld_pages import (
    HTML,
    PAGES_DIR,
    PROXY_HOST,
    URL_HOST,
    is_covered,
    realworld_rewriter,
    text,
)

MAPPED = "." + PROXY_HOST  # rewritten references, already counted under their vendor host


def page_report(rewriter: HostRewriter, body: bytes, top: int) -> list[str]:
    """The Markdown rows for one page."""
    one = rewriter.rewriter(content_type=HTML, third_party="report", count_rewritten=True)
    out = one.feed(body) + one.flush()
    left = Counter(h.lower() for h in URL_HOST.findall(text(out)))
    rewritten, third = one.rewritten_hosts, one.referenced_hosts
    covered = sorted(rewritten | Counter({h: n for h, n in left.items() if is_covered(h)}))
    ranked = (third + left).most_common()
    others = [h for h, _ in ranked if "." in h and not is_covered(h) and not h.endswith(MAPPED)]
    others = others[:top]
    rows = [
        "| host | covered | rewritten | left | third-party |",
        "| --- | :---: | ---: | ---: | ---: |",
    ]
    for host in covered + [h for h in others if h not in covered]:
        mark = "yes" if is_covered(host) else ""
        rows.append(f"| {host} | {mark} | {rewritten[host]} | {left[host]} | {third[host]} |")
    total_left = sum(n for h, n in left.items() if is_covered(h))
    rows.append(
        f"| **total** | | {sum(rewritten.values())} | {total_left} covered | "
        f"{sum(third.values())} |"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print one table per page."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=Path, default=PAGES_DIR)
    parser.add_argument("--top", type=int, default=8, help="other hosts shown per page")
    args = parser.parse_args(argv)
    pages = sorted(args.pages.glob("*.html"))
    if not pages:
        print(f"no pages in {args.pages}", file=sys.stderr)
        return 1
    rewriter = realworld_rewriter()
    for page in pages:
        print(f"\n### {page.name} ({page.stat().st_size:,} bytes)\n")
        print("\n".join(page_report(rewriter, page.read_bytes(), args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
