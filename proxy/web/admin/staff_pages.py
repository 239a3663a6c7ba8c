"""HTML of the console's staff page and audit log page (issue #20).

Contract: pure functions from plain values to ``str`` HTML, every value escaped here; they use
pages.py's layout and table helpers. Not here: the handlers (staff_views.py), accounts
(stores/staff.py), the audit log (stores/audit.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from proxy.core.staffroles import Principal
from proxy.stores.audit import AuditEntry
from proxy.stores.staff import ApiKey, StaffAccount
from proxy.web.admin.pages import csrf_field, layout, table, td, when


def staff_html(
    accounts: Sequence[StaffAccount],
    keys: Sequence[ApiKey],
    *,
    consortium: str,
    csrf: str,
    who: Principal,
) -> str:
    """Accounts (with disable / enable buttons) and API keys; adding is a command."""
    rows = [
        (
            td(a.name),
            td(a.role),
            td(", ".join(a.libraries) or "all"),
            td("yes" if a.totp else "no"),
            td(_state(a)),
            f"<td>{_toggle(a, csrf)}</td>",
        )
        for a in accounts
    ]
    head = ("Name", "Role", "Libraries", "Second factor", "State", "Action")
    key_rows = [
        (
            td(k.id),
            td(k.name),
            td(k.role),
            td(", ".join(k.libraries) or "all"),
            td("revoked" if k.revoked else "live"),
        )
        for k in keys
    ]
    body = (
        "<p>Add accounts and API keys with <code>clamshell staff add</code> and "
        "<code>clamshell api-key create</code> (see docs/deploying.md).</p>"
        + table("Staff accounts", head, rows, "No staff accounts yet.")
        + table(
            "API keys",
            ("Key id", "Name", "Role", "Libraries", "State"),
            key_rows,
            "No API keys yet.",
        )
    )
    return layout("Staff", body, consortium=consortium, csrf=csrf, who=who)


def _state(account: StaffAccount) -> str:
    if account.disabled:
        return "disabled"
    if account.locked_until is not None:
        return f"locked until {when(account.locked_until)} UTC"
    return "active"


def _toggle(account: StaffAccount, csrf: str) -> str:
    action, label = ("enable", "Enable") if account.disabled else ("disable", "Disable")
    return (
        f'<form method="post" action="/staff/{action}">{csrf_field(csrf)}'
        f'<input type="hidden" name="name" value="{escape(account.name, quote=True)}">'
        f'<button aria-label="{label} {escape(account.name, quote=True)}">{label}</button></form>'
    )


def audit_html(
    entries: Sequence[AuditEntry], *, consortium: str, csrf: str, who: Principal, days: int
) -> str:
    """The newest staff actions first."""
    rows = [
        (
            td(when(e.at)),
            td(e.actor),
            td(e.action.replace("_", " ")),
            td(e.library or "—"),
            td(e.detail or "—"),
        )
        for e in entries
    ]
    head = ("When (UTC)", "Who", "Action", "Library", "Detail")
    body = f"<p>Staff actions are kept for {days} days.</p>" + table(
        "Recent staff actions", head, rows, "No staff actions recorded yet."
    )
    return layout("Audit log", body, consortium=consortium, csrf=csrf, who=who)
