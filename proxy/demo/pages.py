"""Content of the demo vendors: host names, the article catalogue, HTML templates, CSS/JS assets.

Contract: pure functions of their arguments returning `str` (or constant bytes/str assets); every
value reflected from a request (search query, form fields, request headers) goes through
`html.escape` here. Links always use the vendors' canonical https origins, whatever port the app
really listens on, because that is what real vendor pages do and what the proxy must rewrite.

Not here: HTTP (status codes, gzip, cookies, CORS, Range) lives in `proxy.demo.vendor`; the PDF
bytes in `proxy.demo.pdf`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from functools import cache
from html import escape
from typing import Final
from urllib.parse import quote, quote_plus

WWW_HOST: Final = "www.acmejournals.test"
CDN_HOST: Final = "cdn.acmejournals.test"
AUTH_HOST: Final = "auth.acmejournals.test"
API_HOST: Final = "api.acmejournals.test"
ACME_HOSTS: Final = (WWW_HOST, CDN_HOST, AUTH_HOST, API_HOST)
BIGDB_HOST: Final = "search.bigdb.test"
BIGDB_HOSTS: Final = (BIGDB_HOST,)
TRACKER_HOST: Final = "stats.trackly.test"

WWW: Final = f"https://{WWW_HOST}"
CDN: Final = f"https://{CDN_HOST}"
AUTH: Final = f"https://{AUTH_HOST}"
API: Final = f"https://{API_HOST}"
BIGDB: Final = f"https://{BIGDB_HOST}"

# (title, topic): the topic drives the "related articles" fetch on each article page.
ARTICLES: Final = (
    ("Tidal Energy and Coastal Ecology", "ocean"),
    ("Medieval Trade Routes of the Baltic", "history"),
    ("Coastal Erosion in a Warming Climate", "climate"),
    ("The Economics of Public Libraries", "libraries"),
    ("Climate Models and Regional Rainfall", "climate"),
    ("Privacy Law and Library Records", "libraries"),
    ("Soil Microbes and Crop Yields", "agriculture"),
    ("Baltic Herring Fisheries Since 1900", "ocean"),
    ("Urban Heat Islands and Public Health", "health"),
    ("Reading Habits in the Digital Age", "libraries"),
    ("Glacier Retreat in the Southern Andes", "climate"),
    ("Early Printing Presses of Venice", "history"),
    ("Ocean Acidification and Shellfish", "ocean"),
    ("Library Consortia and Shared Licensing", "libraries"),
    ("Migration Patterns of Arctic Terns", "ecology"),
    ("Rainfall Variability in the Sahel", "climate"),
    ("Open Access and Scholarly Publishing", "libraries"),
    ("Wind Power and Bird Populations", "ecology"),
    ("The History of Interlibrary Loan", "history"),
    ("Public Health Records and Consent", "health"),
)
ARTICLE_COUNT: Final = len(ARTICLES)
SEARCH_LIMIT: Final = 10

TINY_PNG: Final = base64.b64decode(  # a valid 1x1 RGBA PNG (70 bytes)
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def article_url(n: int) -> str:
    """The canonical URL of article `n`."""
    return f"{WWW}/article/{n}"


def article_title(n: int) -> str:
    """The title of article `n` (1-based)."""
    return ARTICLES[n - 1][0]


def search_articles(query: str) -> list[int]:
    """Article numbers whose title or topic contains every word of `query`; empty query, none."""
    words = query.lower().split()
    if not words:
        return []
    found = [
        n
        for n, (title, topic) in enumerate(ARTICLES, start=1)
        if all(w in f"{title.lower()} {topic}" for w in words)
    ]
    return found[:SEARCH_LIMIT]


def search_results_json(query: str) -> str:
    """The api host's `/v1/search` body."""
    results = [{"title": article_title(n), "url": article_url(n)} for n in search_articles(query)]
    return json.dumps({"query": query, "results": results})


def _script_json(value: object) -> str:
    """JSON for an inline <script>, escaping '/' as PHP's json_encode does (so '</' is safe)."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/")


ACME_FOOTER: Final = f"""<footer><a href="{WWW}/">Home</a> · <a href="/headers">What we see</a>
· <a href="/form">Contact</a></footer>"""


def layout(
    title: str,
    body: str,
    *,
    head: str = "",
    brand: str = "Acme Journal Archive",
    home: str = WWW,
    footer: str = ACME_FOOTER,
) -> str:
    """A complete HTML document; `title` and `body` must already be escaped."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
{head}</head>
<body>
<header class="hero"><a class="brand" href="{home}/">{brand}</a></header>
{body}
{footer}
</body>
</html>
"""


def search_form(query: str = "", *, action: str = "/search") -> str:
    """The search form, pre-filled with the (escaped) query."""
    return (
        f'<form class="search" action="{action}" method="get">'
        f'<input type="search" name="q" value="{escape(query)}" aria-label="Search">'
        "<button>Search</button></form>"
    )


def article_list(numbers: Iterable[int]) -> str:
    """A <ul> of absolute links to articles."""
    items = "".join(
        f'<li><a href="{article_url(n)}">{escape(article_title(n))}</a></li>\n' for n in numbers
    )
    return f'<ul class="articles">\n{items}</ul>'


def home_page() -> str:
    """The www host's home page."""
    body = f"""<main>
<h1>Acme Journal Archive</h1>
{search_form()}
<h2>Recently added</h2>
{article_list(range(1, 7))}
<p><a href="{WWW}/account">My account</a> ·
<a href="{AUTH}/login?return={quote(WWW + "/account", safe="")}">Sign in</a></p>
</main>"""
    head = f'<link rel="stylesheet" href="{CDN}/css/site.css">\n'
    return layout("Acme Journal Archive", body, head=head)


def search_page(query: str) -> str:
    """The www host's result page for `query` (reflected, escaped)."""
    found = search_articles(query)
    summary = f"{len(found)} results for “{escape(query)}”"
    body = f"<main>\n<h1>Search</h1>\n{search_form(query)}\n<p>{summary}</p>\n"
    body += f"{article_list(found)}\n</main>"
    return layout(f"Search: {escape(query)} — Acme Journal Archive", body)


def _article_head(n: int) -> str:
    """The <head> extras of an article: stylesheet, inline style, JSON-LD, scripts, config."""
    url = article_url(n)
    ld = {
        "@context": "https://schema.org",
        "@type": "ScholarlyArticle",
        "headline": article_title(n),
        "url": url,
        "image": f"{CDN}/img/fig1-1x.png",
    }
    config = {
        "apiBase": f"{API}/v1/search",
        "returnUrl": quote(url, safe=""),
        "topic": ARTICLES[n - 1][1],
        "articleId": n,
    }
    return f"""<link rel="stylesheet" href="{CDN}/css/site.css">
<link rel="canonical" href="{url}">
<style>
  .hero {{ background: #234 url(https://cdn.acmejournals.test/img/bg.png) no-repeat right; }}
</style>
<script type="application/ld+json">{json.dumps(ld)}</script>
<script src="https://stats.trackly.test/t.js" async></script>
<script src="//cdn.acmejournals.test/js/app.js"></script>
<script>
  var siteHost = "www.acmejournals.test";
  var acmeConfig = {_script_json(config)};
</script>
"""


RELATED_SCRIPT: Final = """<script>
  // Cross-origin (CORS) call to the api host, with credentials, rendered into the page.
  fetch('https://api.acmejournals.test/v1/search?q=' + encodeURIComponent(acmeConfig.topic),
        {credentials: 'include'})
    .then(function (response) { return response.json(); })
    .then(function (data) {
      var list = document.getElementById('related-list');
      list.textContent = '';
      data.results.forEach(function (result) {
        var item = document.createElement('li');
        var link = document.createElement('a');
        link.href = result.url;
        link.textContent = result.title;
        item.appendChild(link);
        list.appendChild(item);
      });
      document.getElementById('related').dataset.loaded = String(data.results.length);
    })
    .catch(function (error) {
      document.getElementById('related-list').textContent = 'Related articles unavailable.';
    });
</script>"""


def _article_body(n: int) -> str:
    """The <main> of an article: figure, PDF link, links of every kind, related section."""
    title = escape(article_title(n))
    topic = ARTICLES[n - 1][1]
    later = n % ARTICLE_COUNT + 1
    login = f"{AUTH}/login?return={quote(WWW + '/account', safe='')}"
    return f"""<main>
<h1>{title}</h1>
<p class="meta">Acme Journal of Everything, vol. 12, no. {n} · <a href="{login}">Sign in</a>
· <a href="/account">My account</a></p>
{search_form()}
<figure>
<img src="{CDN}/img/fig1-1x.png" alt="Figure 1"
     srcset="{CDN}/img/fig1-1x.png 1x, {CDN}/img/fig1-2x.png 2x">
<figcaption>Figure 1. <a href="//cdn.acmejournals.test/img/fig1-2x.png">Full size</a></figcaption>
</figure>
<p>{title} is examined here in depth. See also the <a href="{API}/v1/search?q={topic}">API</a>
and the <a href="//www.acmejournals.test/search?q={topic}">topic page</a>.</p>
<p class="download"><a href="{CDN}/pdf/article-{n}.pdf">Download PDF</a></p>
<section id="related"><h2>Related articles</h2>
<ul id="related-list"><li>Loading…</li></ul></section>
<nav><a href="/article/{later}">Next article</a> · <a href="../search?q={topic}">More on {topic}</a>
· <a href="{later}">Next (relative)</a> · <a href="{WWW}/">Home</a></nav>
</main>
{RELATED_SCRIPT}"""


def article_page(n: int) -> str:
    """Article `n` with every kind of URL a rewriter has to handle."""
    title = f"{escape(article_title(n))} — Acme Journal Archive"
    return layout(title, _article_body(n), head=_article_head(n))


def headers_page(remote: str | None, headers: Iterable[tuple[str, str]]) -> str:
    """A table of the request headers as received (names and values escaped)."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>\n" for k, v in headers)
    body = f"""<main>
<h1>What Acme sees</h1>
<p>Connection from <code>{escape(remote or "unknown")}</code>.</p>
<table class="headers">
{rows}</table>
<p><a href="/headers.json">As JSON</a></p>
</main>"""
    return layout("Request headers — Acme Journal Archive", body)


def form_page() -> str:
    """A POST form, to exercise request-body relaying."""
    body = """<main>
<h1>Contact the editors</h1>
<form method="post" action="/form">
<label>Name <input name="name"></label>
<label>Email <input name="email" type="email"></label>
<label>Message <textarea name="message"></textarea></label>
<button>Send</button>
</form>
</main>"""
    return layout("Contact — Acme Journal Archive", body)


def form_echo_page(fields: Iterable[tuple[str, str]]) -> str:
    """The fields a POST carried, escaped."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>\n" for k, v in fields)
    body = f'<main>\n<h1>We received</h1>\n<table class="fields">\n{rows}</table>\n</main>'
    return layout("Received — Acme Journal Archive", body)


def account_page() -> str:
    """The signed-in account page."""
    body = f"""<main>
<h1>Signed in to Acme</h1>
<p>Your institution's subscription is active.</p>
<p><a href="{AUTH}/logout">Sign out</a></p>
</main>"""
    return layout("My account — Acme Journal Archive", body)


def _big_block(i: int) -> str:
    """One ~1 KB block of the benchmark page, dense with absolute URLs."""
    n = i % ARTICLE_COUNT + 1
    return f"""<div class="entry" id="e{i}">
<h3><a href="{article_url(n)}">{escape(article_title(n))}</a></h3>
<img src="{CDN}/img/thumb-{i}.png"
     srcset="{CDN}/img/thumb-{i}.png 1x, {CDN}/img/thumb-{i}-2x.png 2x">
<p>Entry {i} of the archive listing. <a href="{CDN}/pdf/article-{n}.pdf">PDF</a>
· <a href="{API}/v1/search?q=entry{i}">API</a>
· <a href="{AUTH}/login?return={quote(article_url(n), safe="")}">Sign in</a>
· <a href="//cdn.acmejournals.test/img/fig{i}.png">Figure</a> · <a href="/article/{n}">Relative</a>
· <a href="{BIGDB}/search?q=entry{i}">Find in BigDB</a></p>
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut
labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.</p>
</div>
"""


@cache
def big_page() -> str:
    """A ~100 KB page full of absolute links (rewriting benchmarks); the same on every call."""
    blocks: list[str] = []
    size = 0
    while size < 100_000:
        blocks.append(_big_block(len(blocks)))
        size += len(blocks[-1])
    head = f'<link rel="stylesheet" href="{CDN}/css/site.css">\n'
    return layout("Archive listing — Acme Journal Archive", "".join(blocks), head=head)


@cache
def cors_page() -> str:
    """#17: a JSON API call with a custom header (the browser sends a CORS preflight, which
    carries no cookies) and a cookieless web font fetch (as @font-face and
    crossorigin=anonymous do); the outcome is written into #api and #font."""
    body = f"""<main>
<h1>Live search</h1>
<p id="api">api: pending</p>
<p id="font">font: pending</p>
<link rel="preload" as="font" type="font/woff2" crossorigin="anonymous"
 href="{CDN}/fonts/acme-sans.woff2">
<script>
fetch("{API}/v1/search?q=coastal", {{headers: {{"X-Acme-Client": "live"}},
  credentials: "include"}})
  .then(r => r.json()).then(j => {{ document.getElementById("api").textContent =
    "api: " + (j.results ? j.results.length : 0) + " results"; }})
  .catch(e => {{ document.getElementById("api").textContent = "api: failed"; }});
fetch("{CDN}/fonts/acme-sans.woff2", {{mode: "cors", credentials: "omit"}})
  .then(r => r.arrayBuffer().then(b => {{ document.getElementById("font").textContent =
    "font: " + r.status + " " + b.byteLength + " bytes"; }}))
  .catch(e => {{ document.getElementById("font").textContent = "font: failed"; }});
</script>
</main>"""
    return layout("Live search — Acme Journal Archive", body)


def small_page() -> str:
    """A ~2 KB page (relay benchmark)."""
    links = "".join(
        f'<li><a href="{article_url(n)}">{escape(article_title(n))}</a></li>\n'
        for n in range(1, 13)
    )
    body = f"<main>\n<h1>Browse</h1>\n<ul>\n{links}</ul>\n</main>"
    head = f'<link rel="stylesheet" href="{CDN}/css/site.css">\n'
    return layout("Browse — Acme Journal Archive", body, head=head)


def bigdb_home_page() -> str:
    """BigDB's home page: a search form."""
    body = f"<main>\n<h1>BigDB Search</h1>\n{search_form(action='/search')}\n</main>"
    return layout("BigDB Search", body, brand="BigDB Search", home=BIGDB, footer="")


def bigdb_results_page(query: str) -> str:
    """BigDB results: each hit links to the Acme article (a cross-vendor link)."""
    found = search_articles(query)
    items = "".join(
        f'<li><a href="{article_url(n)}">{escape(article_title(n))}</a> '
        f"<small>Acme Journal Archive</small></li>\n"
        for n in found
    )
    body = (
        f"<main>\n<h1>BigDB Search</h1>\n{search_form(query)}\n"
        f"<p>{len(found)} hits for “{escape(query)}”</p>\n<ol>\n{items}</ol>\n"
        f'<p><a href="{BIGDB}/search?q={quote_plus(query)}">Permalink</a></p>\n</main>'
    )
    title = f"{escape(query)} — BigDB Search"
    return layout(title, body, brand="BigDB Search", home=BIGDB, footer="")


SITE_CSS: Final = """@import url("https://cdn.acmejournals.test/css/print.css") print;
body { font-family: Georgia, serif; margin: 0; color: #222;
       background: #fbfaf7 url(https://cdn.acmejournals.test/img/bg.png) repeat-x; }
.hero { padding: 1rem 2rem; background: #234; }
.hero a.brand { color: #fff; font-size: 1.4rem; text-decoration: none; }
main { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
.download a { background: url('//cdn.acmejournals.test/img/pdf-icon.png') no-repeat left;
              padding-left: 20px; }
table.headers th { text-align: left; padding-right: 1rem; }
"""

PRINT_CSS: Final = """@media print {
  .hero, nav, footer, #related { display: none; }
  a[href]::after { content: " <" attr(href) ">"; }
}
"""

APP_JS: Final = """(function () {
  "use strict";
  var ACME = {
    www: "https://www.acmejournals.test",
    cdn: "https://cdn.acmejournals.test",
    login: "https://auth.acmejournals.test/login",
    api: "https://api.acmejournals.test/v1/search"
  };
  window.acmeHosts = ACME;
  document.addEventListener("DOMContentLoaded", function () {
    var links = document.querySelectorAll("a[href^='" + ACME.cdn + "/pdf/']");
    for (var i = 0; i < links.length; i++) { links[i].setAttribute("download", ""); }
  });
})();
"""

# The third party: reports the page URL (a reading-history leak the vendor review must flag).
TRACKER_JS: Final = """(function () {
  var beacon = new Image();
  beacon.src = "https://stats.trackly.test/p.gif?u=" + encodeURIComponent(location.href) +
    "&r=" + encodeURIComponent(document.referrer);
})();
"""
