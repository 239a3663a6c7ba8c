"""One forwarded request as the relay's steps share it.

Contract: an ``Exchange`` is built once, after ``decide`` answered ``Forward``, and handed to
each step of the relay shell (caps, limits, upstream request, response) instead of the same
six arguments; it is read-only, and its snapshot is the one the request started with.
Not here: deciding (core/decision.py), the steps themselves (web/relay*.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from proxy.core.decision import ForwardPlan
from proxy.core.snapshot import RuleSnapshot
from proxy.stores.sessions import Session
from proxy.web.keys import RelayStores


@dataclass(frozen=True, slots=True)
class Exchange:
    """The browser's request, the relay's stores, the rule snapshot, the plan, the session
    (none for an anonymous plan) and the time the request was decided at."""

    request: web.Request
    stores: RelayStores
    snapshot: RuleSnapshot
    plan: ForwardPlan
    session: Session | None  # None only for an anonymous plan (#17)
    now: datetime
