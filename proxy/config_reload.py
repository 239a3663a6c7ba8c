"""SIGHUP: re-read proxy.yaml and take the keys that can change while serving (issue #20).

Contract: ``reload_config(app, path, environ)`` loads and validates the file off the loop; a
broken file is refused with every problem logged (``config_reload_refused``, the problems as
``file:line: key: what``); a file that changes a restart-only key is refused whole, naming
the keys (``config_reload_needs_restart``); otherwise the new settings replace the old in one
step (``config_reloaded`` with the changed keys). The old settings stay in every refusal.
Returns the plan, or None when refused for a broken file.
Not here: which keys are reloadable (core/configdiff.py), the signal (server.py).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from proxy.config_loader import load_settings
from proxy.core.configdiff import ReloadPlan, plan_reload
from proxy.errors import ConfigError
from proxy.logconfig import get_logger
from proxy.metrics import count_reload
from proxy.web.app import relay_stores
from proxy.web.keys import RELAY, SETTINGS

log = get_logger("server")


async def reload_config(
    app: web.Application, path: Path | str, environ: Mapping[str, str]
) -> ReloadPlan | None:
    """Re-read proxy.yaml; apply it when every changed key is reloadable."""
    try:
        new = await asyncio.to_thread(load_settings, path, environ)
    except ConfigError as exc:
        log.error("config_reload_refused", problems=[str(p) for p in exc.problems])
        count_reload(False, config=True)
        return None
    plan = plan_reload(app[SETTINGS], new)
    if not plan.possible:
        log.error("config_reload_needs_restart", keys=list(plan.restart_needed))
        count_reload(False, config=True)
        return plan
    if plan.changed:
        # aiohttp marks changing a started app's state deprecated, but it offers no other
        # way to replace a value that handlers read per request; one reference swap on the
        # loop is atomic for them. The relay's bundle holds the settings too: rebuilt.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            app[SETTINGS] = new
            app[RELAY] = relay_stores(app)
    log.info("config_reloaded", keys=list(plan.changed))
    count_reload(True, config=True)
    return plan
