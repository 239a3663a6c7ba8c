"""Which proxy.yaml keys changed, and whether a running server can take the change (#20).

Contract: ``RELOADABLE`` names the top-level keys a SIGHUP may change in place: every request
reads them afresh from the settings. ``plan_reload(old, new)`` returns the changed keys split
into those two sets; a reload is all-or-nothing, so any restart-only key refuses the whole
new file (the old settings stay). Pure: no I/O.
Not here: reading the file (config_loader.py), applying it (config_reload.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from proxy.core.settings import Settings

# Keys whose readers look them up per request or per login (issue #20 lists libraries,
# limits, throttle, networks and the menu). Listeners, TLS, the data dir and the stores are
# built once at start: changing them needs a restart.
RELOADABLE: Final = frozenset(
    {
        "consortium_name",
        "libraries",  # incl. each library's auto_login_networks
        "throttle",
        "limits",
        "login",
        "trusted_proxies",  # networks
        "menu",  # issue 21 (when the key exists)
    }
)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The changed top-level keys: reloadable ones, and those that need a restart."""

    changed: tuple[str, ...]
    restart_needed: tuple[str, ...]

    @property
    def possible(self) -> bool:
        """True when nothing that needs a restart changed."""
        return not self.restart_needed


def plan_reload(old: Settings, new: Settings) -> ReloadPlan:
    """Compare two settings key by key."""
    fields = sorted(type(old).model_fields)
    changed = tuple(k for k in fields if getattr(old, k) != getattr(new, k))
    return ReloadPlan(
        changed=tuple(k for k in changed if k in RELOADABLE),
        restart_needed=tuple(k for k in changed if k not in RELOADABLE),
    )
