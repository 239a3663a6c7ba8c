"""HTML for the portal's own pages: one accessible, mobile-friendly layout.

Contract: functions take plain values and return ``str`` HTML; every value that came from a
request or a rule is escaped here. No aiohttp: responses are built by the handlers.
Not here: which page to show (handlers), vendor pages (never rendered by us).
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class LoginForm:
    """What the login form shows."""

    consortium: str
    target: str
    csrf: str
    secret_label: str = "PIN"  # noqa: S105 — a field label, not a password
    message: str = ""
    database: str = ""


def login_page(form: LoginForm) -> str:
    """The login form: labelled inputs named ``card`` and ``pin``, a CSRF token, the target."""
    alert = f'<p class="message" role="alert">{escape(form.message)}</p>' if form.message else ""
    intro = (
        f"<p>Sign in with your library card to use <strong>{escape(form.database)}</strong>.</p>"
        if form.database
        else "<p>Sign in with your library card to use the library's databases.</p>"
    )
    body = f"""{alert}{intro}
<form method="post" action="/login" novalidate>
<input type="hidden" name="csrf" value="{escape(form.csrf, quote=True)}">
<input type="hidden" name="url" value="{escape(form.target, quote=True)}">
<label for="card">Library card number</label>
<input type="text" id="card" name="card" inputmode="numeric" autocomplete="username"
 autocapitalize="off" spellcheck="false" required autofocus>
<label for="pin">{escape(form.secret_label)}</label>
<input type="password" id="pin" name="pin" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p>Your library card number and {escape(form.secret_label)} are checked here and are never
sent to the database's provider.</p>"""
    return render_page("Sign in", body, consortium=form.consortium)


def menu_page(
    consortium: str,
    library_name: str,
    databases: list[tuple[str, str, str]],
    *,
    query: str = "",
    signed_in: bool = True,
) -> str:
    """EZproxy's menu: (title, link, description) A–Z, and a filter form (a GET, so it works
    without JavaScript)."""
    items = "\n".join(
        f'<li><a href="{escape(url, quote=True)}">{escape(title)}</a>'
        + (f'<br><span class="description">{escape(text)}</span>' if text else "")
        + "</li>"
        for title, url, text in databases
    )
    intro = (
        f"<p>Databases available to patrons of {escape(library_name)}:</p>"
        if signed_in
        else "<p>Databases available to patrons of our member libraries:</p>"
    )
    search = (
        '<form method="get" action="/menu" role="search"><label for="q">Filter databases</label>'
        f'<input type="search" id="q" name="q" value="{escape(query, quote=True)}">'
        '<button type="submit">Filter</button></form>'
    )
    none = "<li>No database matches.</li>" if query else "<li>None yet.</li>"
    sign_out = (
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form>'
        if signed_in
        else ""
    )
    body = f'{intro}{search}<ul class="databases">{items or none}</ul>{sign_out}'
    return render_page("Your databases" if signed_in else "Databases", body, consortium=consortium)


def logout_page(consortium: str) -> str:
    """GET /logout: a button that signs out (a link or an image must not; pentest R21)."""
    body = (
        "<p>Sign out of the proxy? Your session and everything the databases stored for it "
        "will be deleted.</p>"
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form>'
    )
    return render_page("Sign out", body, consortium=consortium)


def signed_out_page(consortium: str) -> str:
    """Shown after logout."""
    body = (
        "<p>You are signed out. Your session and everything the databases stored for it "
        'have been deleted.</p><p><a href="/login">Sign in again</a></p>'
    )
    return render_page("Signed out", body, consortium=consortium)


def leaving_page(url: str, host: str, *, consortium: str, back: str) -> str:
    """A vendor redirected to a site no rule covers: say so, and let the patron choose (R22).

    The link carries ``rel="noreferrer"``: the next site learns nothing of the proxy's URL.
    """
    body = (
        "<p>The database is sending you to a site outside the library's proxy:</p>"
        f"<p><strong>{escape(host)}</strong></p>"
        "<p>If you continue, that site will see your own internet address, and the library "
        "cannot protect your privacy there.</p>"
        f'<p><a href="{escape(url, quote=True)}" rel="noreferrer">Continue to '
        f"{escape(host)}</a></p>"
        f'<p><a href="{escape(back, quote=True)}">Back to the library databases</a></p>'
    )
    return render_page("You are leaving the library's proxy", body, consortium=consortium)
