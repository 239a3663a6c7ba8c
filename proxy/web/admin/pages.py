"""HTML and CSS of the admin console: the layout (with the role's navigation), the sign-in
form, the dashboard, and the table helpers other console pages use.

Contract: pure functions from plain values to ``str`` HTML; every value that came from a rule
file, the stats store or a request is escaped here. The pages need no JavaScript and no
external resource: styles come from ``/admin.css`` (same origin), the chart is inline SVG
styled by class, so they render offline under ``default-src 'none'; style-src 'self'``.
Not here: authentication (auth.py), where the numbers come from (views.py), the SVG chart
(chart.py), the staff, audit and operations pages (staff_pages.py, operations.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from string import Template
from typing import TYPE_CHECKING, Final

from proxy.web.admin.chart import day_label, legend, series_by_vendor, usage_chart

if TYPE_CHECKING:
    from proxy.core.staffroles import Permission, Principal
    from proxy.web.admin.models import (
        ReloadOut,
        SuspensionOut,
        ThirdPartyOut,
        UsageRowOut,
        VendorOut,
    )

ADMIN_CSS: Final = """
main.admin { max-width: 72rem; }
header.site form { display: inline; float: right; margin: 0; }
nav.console ul { list-style: none; display: flex; flex-wrap: wrap; gap: 1rem; padding: 0 1rem; }
p.who { color: #444; }
header.site button { margin: 0; padding: 0.2rem 0.8rem; background: #fff; color: var(--accent); }
section { margin-top: 2rem; }
.summary { display: flex; flex-wrap: wrap; gap: 1rem; padding: 0; list-style: none; }
.summary li { border: 1px solid #ccc; border-radius: 4px; padding: 0.5rem 1rem; }
.summary strong { display: block; font-size: 1.5rem; }
.scroll { overflow-x: auto; }
table.data { border-collapse: collapse; width: 100%; font-size: 0.95rem; }
table.data th, table.data td { text-align: left; padding: 0.35rem 0.6rem;
  border-bottom: 1px solid #ddd; vertical-align: top; }
table.data .num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #126b2f; } .bad { color: var(--bad); font-weight: 600; }
ul.problems { font-family: ui-monospace, monospace; font-size: 0.9rem; }
.chart { width: 100%; height: auto; max-width: 60rem; }
.chart .grid { stroke: #ddd; stroke-width: 1; }
.chart .axis { stroke: #555; stroke-width: 1; }
.chart text { font-size: 11px; fill: #333; }
.chart .title { font-size: 12px; font-weight: 600; }
.series { fill: none; stroke-width: 2.5; stroke-linejoin: round; stroke-linecap: round; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.4rem 1.5rem; }
ul.legend svg { width: 2rem; height: 0.6rem; vertical-align: middle; }
.s0 { stroke: #0072b2; } .s1 { stroke: #d55e00; stroke-dasharray: 7 3; }
.s2 { stroke: #009e73; stroke-dasharray: 2 3; } .s3 { stroke: #cc79a7; stroke-dasharray: 10 3 2 3; }
.s4 { stroke: #e69f00; } .s5 { stroke: #56b4e9; stroke-dasharray: 7 3; }
.s6 { stroke: #000; stroke-dasharray: 2 3; } .s7 { stroke: #7f7f7f; stroke-dasharray: 10 3 2 3; }
"""
LAYOUT: Final = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · $consortium</title>
<link rel="stylesheet" href="/admin.css">
</head>
<body>
<header class="site"><a class="brand" href="/">$consortium · proxy admin</a>$logout</header>
$nav
<main id="main" class="admin">
<h1>$title</h1>
$body
</main>
</body>
</html>
""")


@dataclass(frozen=True, slots=True)
class DashboardView:
    """Everything the dashboard shows (all of it aggregate or pseudonymous)."""

    consortium: str
    csrf: str
    active_sessions: int | None  # None: not shown to this role
    vendors: Sequence[VendorOut]
    reloads: Sequence[ReloadOut]  # newest first
    days: tuple[date, ...]
    usage: Sequence[UsageRowOut] | None  # None: statistics are not recorded
    third_parties: Sequence[ThirdPartyOut]
    suspensions: Sequence[SuspensionOut]
    login_alarms: int | None = 0  # R4: global failed-login alarms since start
    who: Principal | None = None


# The console's pages and the permission each needs (core/staffroles.py); the nav shows those
# the signed-in role may open.
NAV: Final[tuple[tuple[str, str, Permission], ...]] = (
    ("/operations", "Operations", "view_consortium"),
    ("/", "Dashboard", "view"),
    ("/audit", "Audit log", "audit"),
    ("/staff", "Staff", "staff"),
)


def layout(
    title: str, body: str, *, consortium: str, csrf: str = "", who: Principal | None = None
) -> str:
    """Wrap already-safe ``body`` HTML; a logout button appears when ``csrf`` is given."""
    logout = (
        f'<form method="post" action="/logout">{csrf_field(csrf)}<button>Sign out</button></form>'
        if csrf
        else ""
    )
    return LAYOUT.substitute(
        title=escape(title), consortium=escape(consortium), body=body, logout=logout, nav=_nav(who)
    )


def _nav(who: Principal | None) -> str:
    if who is None:
        return ""
    links = "".join(
        f'<li><a href="{href}">{escape(label)}</a></li>'
        for href, label, perm in NAV
        if who.may(perm)
    )
    scope = f" for {', '.join(sorted(who.libraries))}" if who.scoped else ""
    return (
        f'<nav class="console" aria-label="Console"><ul>{links}</ul>'
        f'<p class="who">Signed in as {escape(who.name)} '
        f"({escape(who.role)}{escape(scope)})</p></nav>"
    )


def login_page(consortium: str, message: str = "") -> str:
    """The staff sign-in form, and the admin token form (scripts send ``Authorization: Bearer``)."""
    alert = f'<p class="message" role="alert">{escape(message)}</p>' if message else ""
    body = f"""{alert}<form method="post" action="/login" aria-labelledby="staff-h">
<h2 id="staff-h">Staff account</h2>
<label for="name">Name</label>
<input id="name" name="name" autocomplete="username" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<label for="code">One-time code (if your account has one)</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code">
<button>Sign in</button>
</form>
<section aria-labelledby="token-h"><h2 id="token-h">For the operator</h2>
<p>The token is in the environment variable
<code>CLAMSHELL_ADMIN_TOKEN</code>, or printed by <code>clamshell admin-token</code>.</p>
<form method="post" action="/login">
<label for="token">Admin token</label>
<input type="password" id="token" name="token" autocomplete="off" required>
<button>Sign in with the token</button>
</form></section>"""
    return layout("Sign in", body, consortium=consortium)


def dashboard_page(view: DashboardView) -> str:
    """The whole dashboard."""
    parts = (
        _summary(view),
        _reload_alert(view.reloads[0]) if view.reloads else "",
        _vendor_table(view.vendors),
        _usage_section(view),
        _third_party_table(view.third_parties),
        _suspension_table(view.suspensions),
        _reload_table(view.reloads),
    )
    return layout(
        "Dashboard", "\n".join(parts), consortium=view.consortium, csrf=view.csrf, who=view.who
    )


def csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf, quote=True)}">'


def _summary(view: DashboardView) -> str:
    last = view.reloads[0] if view.reloads else None
    state = "—" if last is None else ("ok" if last.ok else "failed")
    items = [
        f"<li><strong>{view.active_sessions:,}</strong>active sessions</li>"
        if view.active_sessions is not None
        else "",
        f"<li><strong>{len(view.vendors)}</strong>vendor rules in use</li>",
        f"<li><strong>{view.login_alarms:,}</strong>failed-login alarms</li>"
        if view.login_alarms is not None
        else "",
        f'<li><strong class="{"ok" if last and last.ok else "bad"}">{state}</strong>'
        "last rules reload</li>",
    ]
    may_reload = view.who is None or view.who.may("reload")
    button = (
        f'<form method="post" action="/reload">{csrf_field(view.csrf)}'
        "<button>Reload rules</button></form>"
        if may_reload
        else ""
    )
    return f'<ul class="summary">{"".join(items)}</ul>{button}'


def _reload_alert(last: ReloadOut) -> str:
    if last.ok:
        return ""
    items = "".join(f"<li>{escape(p)}</li>" for p in last.problems)
    return f"""<div class="message" role="alert"><p>The last reload at {when(last.at)} found
{len(last.problems)} problem(s); the previous {last.rule_count} rule(s) stay in use.</p>
<ul class="problems">{items}</ul></div>"""


def table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f"<h2>{escape(caption)}</h2><p>{escape(empty)}</p>"
    th = "".join(f'<th scope="col"{_num(h)}>{escape(h)}</th>' for h in head)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return (
        f'<h2>{escape(caption)}</h2><div class="scroll"><table class="data">'
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _num(head: str) -> str:
    numeric = {"Hosts", "Domains", "Requests", "Sessions", "Downloads", "MB", "Rules"}
    return ' class="num"' if head in numeric or head.endswith("(30 days)") else ""


def td(value: object, *, num: bool = False, cls: str = "") -> str:
    text = f"{value:,}" if num and isinstance(value, int) else str(value)
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    return f'<td class="{classes}">{escape(text)}</td>' if classes else f"<td>{escape(text)}</td>"


def _vendor_table(vendors: Sequence[VendorOut]) -> str:
    rows = [
        (
            td(v.id),
            td(v.title),
            td(v.hosts, num=True),
            td(v.domains, num=True),
            td(v.source),
            _status(v.status),
        )
        for v in vendors
    ]
    head = ("Vendor", "Title", "Hosts", "Domains", "Rule file", "Status")
    return "<section>" + table("Vendors", head, rows, "No vendor rules are loaded.") + "</section>"


def _status(status: str) -> str:
    if status == "ok":
        return td("ok", cls="ok")
    return td("file has errors — previous version in use", cls="bad")


def _usage_section(view: DashboardView) -> str:
    first, last = day_label(view.days[0]), day_label(view.days[-1])
    title = f"Requests per vendor per day ({first} – {last}, UTC)"
    if view.usage is None:
        return f"<section><h2>{title}</h2><p>Statistics are not being recorded.</p></section>"
    series = series_by_vendor(view.usage, view.days)
    if not any(any(s.values) for s in series):
        return f"<section><h2>{title}</h2><p>No usage recorded in this period.</p></section>"
    chart = usage_chart(view.days, series)
    return f"<section><h2>{title}</h2>{chart}{legend(series)}{_totals(view.usage)}</section>"


def _totals(rows: Sequence[UsageRowOut]) -> str:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        for i, value in enumerate((r.requests, r.sessions, r.downloads, r.bytes)):
            sums[r.vendor][i] += value
    cells = [
        (
            td(v),
            td(t[0], num=True),
            td(t[1], num=True),
            td(t[2], num=True),
            td(round(t[3] / 1e6, 1), num=True),
        )
        for v, t in sorted(sums.items())
    ]
    head = ("Vendor", "Requests", "Sessions", "Downloads", "MB")
    return table("Totals for the period", head, cells, "")


def _third_party_status(row: ThirdPartyOut) -> str:
    """#18.8: blocked (the browser never asked it), reached (it did), or both in the period."""
    if row.blocked and not row.referenced:
        return td("blocked", cls="ok")
    if row.referenced and not row.blocked:
        return td("reached the browser", cls="bad")
    return td("partly blocked", cls="bad")


def _third_party_table(rows: Sequence[ThirdPartyOut]) -> str:
    cells = [
        (
            td(r.vendor),
            td(r.host),
            _third_party_status(r),
            td(r.referenced, num=True),
            td(r.blocked, num=True),
        )
        for r in rows
    ]
    head = ("Vendor", "Third-party host", "Status", "Not blocked (30 days)", "Blocked (30 days)")
    empty = "No third-party hosts seen in vendor pages in the last 30 days."
    return (
        "<section>" + table("Top third-party hosts per vendor", head, cells, empty) + "</section>"
    )


def _suspension_table(rows: Sequence[SuspensionOut]) -> str:
    cells = [
        (
            td(s.session_hash),
            td(s.vendor),
            td(s.limit),
            td(when(s.since)),
            td(when(s.until) if s.until else "until lifted"),
        )
        for s in rows
    ]
    head = ("Session (pseudonymous)", "Vendor", "Limit crossed", "Since (UTC)", "Until (UTC)")
    return (
        "<section>"
        + table("Suspended sessions", head, cells, "No session is suspended.")
        + ("</section>")
    )


def _reload_table(rows: Sequence[ReloadOut]) -> str:
    cells = [
        (
            td(when(r.at)),
            td("ok" if r.ok else "failed", cls="ok" if r.ok else "bad"),
            td(r.rule_count, num=True),
            td("; ".join(r.problems) or "—"),
        )
        for r in rows
    ]
    head = ("When (UTC)", "Result", "Rules", "Problems")
    return '<section id="reloads">' + table("Recent rule reloads", head, cells, "") + "</section>"


def when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}"
