"""A generated link-dense vendor page (~100 KB, ~500 absolute vendor links), for benchmarks.

Contract: ``link_dense_page(size)`` returns the same bytes on every call (no randomness, no
clock): a search-results list like the pages patrons load most, under the rules of
tests/test_realworld_pages.py. Every spelling the rewriter must handle appears: absolute
``https://`` links (most of them), protocol-relative ``//host``, ``srcset`` candidates, CSS
``url()``, JSON-escaped ``https:\\/\\/host`` in an inline script, percent-encoded
``https%3A%2F%2Fhost`` in query values, quoted bare hosts, plus third-party links and prose.
Not here: measuring (bench/rewrite_speed.py, bench/relay.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

VENDOR_HOSTS: Final = (
    "www.sciencedirect.com",
    "pdf.sciencedirectassets.com",
    "link.springer.com",
    "onlinelibrary.wiley.com",
    "www.tandfonline.com",
    "elifesciences.org",
)
THIRD_PARTY: Final = ("doi.org", "www.googletagmanager.com", "scholar.google.com", "orcid.org")


def _result(i: int, hosts: Sequence[str], others: Sequence[str]) -> str:
    """One search result: ~5 vendor references in various spellings, one third-party link."""
    host = hosts[i % len(hosts)]
    img = hosts[(i + 1) % len(hosts)]
    other = others[i % len(others)]
    forms = (
        f'<li class="result" data-id="{i}"><h3><a href="https://{host}/article/{i:06d}">'
        f"Article title number {i} about protein folding in membranes</a></h3>"
        f'<p class="authors">A. Author, B. Second-Author, C. Third and others; Journal of '
        f"Examples {i % 40 + 1} ({1990 + i % 35}), pp. {i}-{i + 12}</p>"
        f'<p class="snippet">The structure of the complex was determined at {i % 4 + 1}.5 '
        f"angstrom resolution; binding assays show a dissociation constant in the nanomolar "
        f"range, and the results suggest a conserved mechanism across species.</p>"
        f'<a class="pdf" href="https://{host}/pdf/{i:06d}.pdf?download=true">PDF</a> '
        f'<img src="//{img}/thumb/{i}.png" '
        f'srcset="https://{img}/t/{i}-1x.png 1x, https://{img}/t/{i}-2x.png 2x" alt=""> '
        f'<a href="https://{other}/10.1000/{i}">doi:10.1000/{i}</a></li>\n'
    )
    if i % 5 == 0:
        forms += f'<div style="background:url(https://{img}/bg/{i}.jpg)"></div>\n'
    if i % 7 == 0:
        forms += f'<a href="/login?target=https%3A%2F%2F{host}%2Farticle%2F{i}">sign in</a>\n'
    if i % 11 == 0:
        escaped = f'"href":"https:\\/\\/{host}\\/a\\/{i}"'
        forms += f'<script>var u = {{{escaped},"h":"{img}"}};</script>\n'
    return forms


def link_dense_page(
    size: int = 100_000,
    hosts: Sequence[str] = VENDOR_HOSTS,
    others: Sequence[str] = THIRD_PARTY,
) -> bytes:
    """The page, cut after the first result that brings it to ``size`` bytes; ``hosts``
    are the vendor's (covered), ``others`` third parties (bench.relay uses the demo's)."""
    head = (
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Search results</title>"
        f'<link rel="stylesheet" href="https://{hosts[0]}/static/app.css">'
        "</head><body><p>Results of your search across the licensed collections.</p><ol>\n"
    )
    parts, total, i = [head], len(head), 0
    while total < size:
        parts.append(_result(i, hosts, others))
        total += len(parts[-1])
        i += 1
    parts.append("</ol></body></html>\n")
    return "".join(parts).encode("utf-8")
