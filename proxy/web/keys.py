"""Typed application keys: the one place that names what lives on the aiohttp app.

Contract: each resource has exactly one key and one owner (the app factory creates it and,
where it must be closed, closes it in a cleanup context).
Not here: constructing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from proxy.core.hostmap import HostMap
from proxy.core.settings import Settings
from proxy.rulebook import Rulebook

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
RULEBOOK: web.AppKey[Rulebook] = web.AppKey("rulebook", Rulebook)
HOSTMAP: web.AppKey[HostMap] = web.AppKey("hostmap", HostMap)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
