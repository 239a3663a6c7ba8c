"""The console's staff page (disable / enable accounts) and audit log page (issue #20).

Contract: ``GET /staff`` lists accounts and API keys; ``POST /staff/disable`` and
``/staff/enable`` (form field ``name``) change one account, end its console sessions when
disabling, record the action in the audit log and redirect back (303); ``GET /audit`` shows
the newest audit entries. Who may open them is decided by the route table in app.py.
Not here: adding accounts (``clamshell staff``, cli/staff.py), HTML (staff_pages.py).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.web.admin.auth import (
    AUDIT,
    AUTH,
    CONSOLE_SESSIONS,
    MAIN,
    STAFF,
    AdminRefused,
    audit,
    principal_of,
)
from proxy.web.admin.dashboard import html
from proxy.web.admin.staff_pages import audit_html, staff_html
from proxy.web.keys import SETTINGS


async def staff_page(request: web.Request) -> web.Response:
    """Accounts and API keys."""
    store = request.app[STAFF]
    accounts = await asyncio.to_thread(store.accounts)
    keys = await asyncio.to_thread(store.api_keys)
    page = staff_html(
        accounts,
        keys,
        consortium=request.app[MAIN][SETTINGS].consortium_name,
        csrf=request.app[AUTH].csrf,
        who=principal_of(request),
    )
    return html(page)


async def staff_disable_form(request: web.Request) -> web.Response:
    """Disable an account; its console sessions end now."""
    return await _set_disabled(request, disabled=True)


async def staff_enable_form(request: web.Request) -> web.Response:
    """Enable a disabled account again."""
    return await _set_disabled(request, disabled=False)


async def _set_disabled(request: web.Request, *, disabled: bool) -> web.Response:
    name = (await request.post()).get("name")
    if not isinstance(name, str) or not name:
        raise AdminRefused(400, "Which account? The form has no name.")
    await asyncio.to_thread(request.app[STAFF].set_disabled, name, disabled)
    if disabled:
        request.app[CONSOLE_SESSIONS].revoke_all(name)
    await audit(request, "staff_disabled" if disabled else "staff_enabled", detail=name)
    return web.Response(status=303, headers={"Location": "/staff"})


async def audit_page(request: web.Request) -> web.Response:
    """The audit log."""
    settings = request.app[MAIN][SETTINGS]
    entries = await asyncio.to_thread(request.app[AUDIT].recent, 500)
    page = audit_html(
        entries,
        consortium=settings.consortium_name,
        csrf=request.app[AUTH].csrf,
        who=principal_of(request),
        days=settings.admin.audit_days,
    )
    return html(page)
