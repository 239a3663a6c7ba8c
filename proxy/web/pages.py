"""HTML for the portal's own pages: one accessible, mobile-friendly layout.

Contract: functions take plain values and return ``str`` HTML; every value that came from a
request or a rule is escaped here. No aiohttp: responses are built by the handlers.
Not here: which page to show (handlers), vendor pages (never rendered by us).
"""

from __future__ import annotations

from html import escape
from string import Template

LAYOUT = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · $consortium</title>
<link rel="stylesheet" href="/static/portal.css">
</head>
<body>
<header class="site"><a class="brand" href="/">$consortium</a></header>
<main id="main">
<h1>$title</h1>
$body
</main>
<footer class="site"><p>Access to licensed databases for patrons of $consortium member
libraries. We do not tell database vendors who you are.</p></footer>
</body>
</html>
""")


def render_page(title: str, body_html: str, *, consortium: str) -> str:
    """Wrap already-safe ``body_html`` in the layout; ``title`` and ``consortium`` are escaped."""
    return LAYOUT.substitute(title=escape(title), consortium=escape(consortium), body=body_html)


def home_page(consortium: str) -> str:
    """The portal's home page."""
    body = (
        "<p>Use the database links on your library's website, or "
        '<a href="/menu">see the databases your library offers</a>.</p>'
    )
    return render_page("Library databases", body, consortium=consortium)


def error_page(title: str, message: str, *, consortium: str, back: str = "/") -> str:
    """A friendly error page with a way back (never upstream text, never a traceback)."""
    body = (
        f'<p class="message" role="alert">{escape(message)}</p>'
        f'<p><a href="{escape(back, quote=True)}">Back to the library databases</a></p>'
    )
    return render_page(title, body, consortium=consortium)
