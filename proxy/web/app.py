"""The application factory: builds the aiohttp app and owns its resources.

Contract: ``await build_app(settings, rulebook)`` returns a ready ``web.Application`` whose
long-lived resources (secrets, patron registry, session store, epoch keys, throttle, cookie
jars, the one upstream ClientSession) are created here, inside the running loop, and closed
in ``on_cleanup``; background maintenance (session flush and purge, throttle expiry) starts
on startup and is cancelled on shutdown. The host dispatch decides portal vs mapped vendor
host from a validated Host header only.
Not here: the handlers' logic (portal.py, login.py, relay.py), config parsing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from aiohttp import web

from proxy.core.abuse import AbuseMonitor
from proxy.core.cookiejar import JarRegistry
from proxy.core.disclosure import Disclosures
from proxy.core.hostmap import HostMap
from proxy.core.inflight import InFlight
from proxy.core.pseudonym import SessionPseudonyms
from proxy.core.settings import Settings
from proxy.core.snapshot import compile_snapshot
from proxy.core.throttle import Throttle, ThrottleLimits
from proxy.core.usage import UsageCounters
from proxy.ilsauth.backends import LiveBackends
from proxy.logconfig import get_logger
from proxy.purge import Stores, purge_all
from proxy.rulebook import Rulebook
from proxy.rules_loader import is_public_suffix
from proxy.secretfiles import read_or_create_secret
from proxy.stores.abuse_counters import open_abuse_counters
from proxy.stores.address_quotas import open_anonymous_quota
from proxy.stores.backends import RELOAD, open_login_throttle, open_session_store, open_state
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.patrons import PatronRegistry
from proxy.stores.redis_blocks import SharedBlockList, open_block_list
from proxy.stores.redis_epochkeys import SharedEpochKeys
from proxy.stores.redis_jars import RedisJars
from proxy.stores.redis_state import RedisState, StateUnavailable
from proxy.stores.redis_suspensions import SharedSuspensions
from proxy.stores.redis_usage import SharedUsage
from proxy.stores.sessions import SessionStore, run_flusher, run_purger
from proxy.stores.stats import StatsStore
from proxy.stores.suspensions import Suspensions
from proxy.tasks import TaskOwner
from proxy.upstream.client import UpstreamClient
from proxy.web import brand_assets, login, portal, transparency
from proxy.web.edge_headers import add_edge_headers, mark_relayed
from proxy.web.errors import Handler, checked_host, error_boundary
from proxy.web.keys import (
    ABUSE,
    BLOCKS,
    CLOCK,
    DISCLOSURES,
    EPOCHS,
    HOSTMAP,
    IN_FLIGHT,
    JARS,
    LIVE_AUTH,
    LOGIN_THROTTLE,
    PAGES,
    PSEUDONYMS,
    REGISTRY,
    RELAY,
    RULEBOOK,
    SECRETS,
    SESSIONS,
    SETTINGS,
    SHARED_USAGE,
    STALLS,
    STATE,
    STATS,
    SUSPENSIONS,
    THROTTLE,
    UPSTREAM,
    USAGE,
    ProxySecrets,
    RelayStores,
)
from proxy.web.page_response import switch_language
from proxy.web.pages import Pages, load_pages
from proxy.web.relay import relay_handler
from proxy.web.relay_guard import StallWatcher
from proxy.web.relay_request import install_expect_handler

STATIC_DIR: Final = Path(__file__).parent / "static"
TASKS: web.AppKey[TaskOwner] = web.AppKey("tasks", TaskOwner)
COUNTER_EXPIRY_S: Final = 60.0
USAGE_FLUSH_S: Final = 5.0
PURGE_EVERY_S: Final = 6 * 3600.0
log = get_logger("app")


def utc_now() -> datetime:
    """The real clock (tests inject their own)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Overrides:
    """Resources a test or review mode supplies instead of the defaults."""

    sessions: SessionStore | None = None
    upstream: UpstreamClient | None = None


@web.middleware
async def host_dispatch(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Portal host → the router; any other host under the proxy → the relay."""
    host = checked_host(request)
    if request.app[HOSTMAP].is_portal(host):
        return await handler(request)
    mark_relayed(request)
    return await relay_handler(request, host)


async def build_app(
    settings: Settings,
    rulebook: Rulebook,
    *,
    clock: Callable[[], datetime] = utc_now,
    overrides: Overrides = Overrides(),
) -> web.Application:
    """Assemble the patron-facing application; call inside the running event loop."""
    app = web.Application(middlewares=[error_boundary, host_dispatch], client_max_size=2**20)
    app[SETTINGS], app[RULEBOOK], app[CLOCK] = settings, rulebook, clock
    app[HOSTMAP] = hostmap = HostMap(settings.proxy_host, settings.proxy_port)
    app[PAGES] = Pages(await asyncio.to_thread(load_pages, settings.pages.dir))  # #21
    # One compiled RuleSnapshot per (re)load; the relay reads the live one once per request.
    rulebook.attach(functools.partial(compile_snapshot, hostmap=hostmap, settings=settings))
    await open_resources(app, settings, overrides)
    app[TASKS] = TaskOwner()
    app.on_startup.append(start_maintenance)
    app.on_shutdown.append(stop_maintenance)
    app.on_cleanup.append(close_resources)
    app.on_response_prepare.append(add_edge_headers)
    portal.add_routes(app)
    login.add_routes(app)
    brand_assets.add_routes(app)
    transparency.add_routes(app)
    app.router.add_post("/language", switch_language)
    app.router.add_static("/static", STATIC_DIR, append_version=False)
    portal.add_catch_all(app)
    install_expect_handler(app)  # after the last route: mapped hosts' 100 waits for the relay
    return app


async def open_resources(app: web.Application, settings: Settings, overrides: Overrides) -> None:
    """Create every long-lived resource (closed by ``close_resources``)."""
    data = Path(settings.data_dir)
    app[SECRETS] = ProxySecrets(
        pepper=read_or_create_secret(data / "pepper.key"),
        csrf_key=read_or_create_secret(data / "csrf.key"),
    )
    app[REGISTRY] = await asyncio.to_thread(PatronRegistry.open, data)
    app[BLOCKS] = await asyncio.to_thread(open_block_list, data, settings.state)  # #15
    app[LIVE_AUTH] = await asyncio.to_thread(
        LiveBackends.open, settings.libraries, clock=app[CLOCK]
    )
    app[EPOCHS] = await asyncio.to_thread(EpochKeyStore.open, data)
    app[STATE] = open_state(settings)  # #15: None in local mode, Redis for workers and nodes
    app[SESSIONS] = overrides.sessions or await open_session_store(settings, app[STATE])
    app[THROTTLE] = Throttle(ThrottleLimits.from_settings(settings.throttle))
    app[LOGIN_THROTTLE] = open_login_throttle(settings, app[STATE], app[THROTTLE])
    app[JARS] = JarRegistry(is_public_suffix=is_public_suffix)
    app[STATS] = await asyncio.to_thread(StatsStore.open, data)
    app[USAGE] = UsageCounters(share_patrons=app[STATE] is not None)
    state = app[STATE]
    app[SHARED_USAGE] = None if state is None else SharedUsage(state, app[SECRETS].pepper)
    app[ABUSE] = AbuseMonitor()
    app[IN_FLIGHT] = InFlight()
    app[STALLS] = StallWatcher(settings.relay.client_write_seconds)
    app[PSEUDONYMS] = SessionPseudonyms()
    app[DISCLOSURES] = Disclosures()  # #21: the transparency page's facts, in memory
    suspended_for = timedelta(minutes=settings.limits.suspension_minutes)
    app[SUSPENSIONS] = await asyncio.to_thread(
        Suspensions.open, data, app[SECRETS].pepper, suspended_for
    )
    forgetters = (
        app[JARS].drop_session,
        app[ABUSE].forget,
        app[SUSPENSIONS].forget,
        app[PSEUDONYMS].forget,
        app[DISCLOSURES].forget,
    )
    for forget in forgetters:
        app[SESSIONS].add_delete_listener(forget)  # DESIGN P5: all of it dies with the session
    app[UPSTREAM] = overrides.upstream or UpstreamClient.create(
        settings, ca_file=settings.upstream_ca
    )
    app[RELAY] = relay_stores(app)


def relay_stores(app: web.Application) -> RelayStores:
    """The relay's resources, handed to its steps explicitly (web/relay.py)."""
    return RelayStores(
        app[SETTINGS],
        app[UPSTREAM],
        app[JARS],
        app[PSEUDONYMS],
        app[EPOCHS],
        open_abuse_counters(app[STATE], app[ABUSE], app[SECRETS].pepper),
        app[SUSPENSIONS],
        app[USAGE],
        app[IN_FLIGHT],
        app[STALLS],
        app[DISCLOSURES],
        anonymous=open_anonymous_quota(app[STATE], app[SECRETS].pepper),
        shared_jars=shared_jars(app),
    )


def shared_jars(app: web.Application) -> RedisJars | None:
    """#15: in redis mode, jars are loaded from and saved to Redis around each exchange."""
    state = app[STATE]
    if state is None:
        return None
    jars = RedisJars(state)
    app[SESSIONS].add_delete_listener(jars.forget)
    return jars


async def close_resources(app: web.Application) -> None:
    """Close what ``open_resources`` opened (sessions flush their last_seen first)."""
    app[STALLS].close()
    await app[LIVE_AUTH].close()
    await app[UPSTREAM].close()
    try:
        await flush_usage(app)
    except Exception as exc:  # e.g. Redis gone: still close every store below
        log.error("usage_flush_failed", error=type(exc).__name__)
    await app[SESSIONS].close()
    state = app[STATE]
    if state is not None:
        await state.close()
    await asyncio.to_thread(app[STATS].close)
    await asyncio.to_thread(app[SUSPENSIONS].close)
    await asyncio.to_thread(app[EPOCHS].close)
    await asyncio.to_thread(app[REGISTRY].close)
    await asyncio.to_thread(app[BLOCKS].close)


async def start_maintenance(app: web.Application) -> None:
    """Session flush and purge, throttle expiry."""
    tasks = app[TASKS]
    tasks.spawn(run_flusher(app[SESSIONS]), name="sessions_flush")
    tasks.spawn(run_purger(app[SESSIONS], app[CLOCK]), name="sessions_purge")
    tasks.spawn(expire_counters(app), name="counters_expire")
    tasks.spawn(flush_usage_forever(app), name="usage_flush")
    state = app[STATE]
    shared = None
    if state is not None:  # #15: a reload asked on another node reloads this one too
        state.on(RELOAD, lambda _: tasks.spawn(app[RULEBOOK].reload_async(), name="bus_reload"))
        await share_suspensions(state, app[SUSPENSIONS], tasks, app[CLOCK]())
        if isinstance(blocks := app[BLOCKS], SharedBlockList):  # #15: blocks of other nodes
            blocks.follow(state, tasks)
        keep = timedelta(days=app[SETTINGS].retention.epoch_key_days)
        shared = SharedEpochKeys(state, app[EPOCHS], tasks, keep)
        tasks.spawn(state.run_bus(), name="state_bus")
    tasks.spawn(purge_forever(app, shared), name="retention_purge")


async def share_suspensions(
    state: RedisState, book: Suspensions, tasks: TaskOwner, now: datetime
) -> None:
    """#15: suspensions marked on any node hold on every node (and after restarts)."""
    shared = SharedSuspensions(state, book, tasks)
    try:
        restored = await shared.restore(now)
        log.info("suspensions_restored", count=restored)
    except StateUnavailable:  # serving starts; the relay's own checks fail closed meanwhile
        log.error("suspensions_restore_failed")


async def stop_maintenance(app: web.Application) -> None:
    """Cancel the background tasks."""
    await app[TASKS].cancel_all()


async def expire_counters(app: web.Application) -> None:
    """Every minute: drop old failed-login counters, card-network sightings, usage counters
    and suspensions that ran out (their rows are deleted in a worker thread)."""
    limits = app[SETTINGS].limits
    interval = timedelta(minutes=limits.card_networks_minutes)
    while True:
        await asyncio.sleep(COUNTER_EXPIRY_S)
        now = app[CLOCK]()
        app[THROTTLE].expire(now)
        app[ABUSE].expire_networks(now, interval)
        app[ABUSE].expire(now, timedelta(minutes=limits.interval_minutes))
        ended = app[SUSPENSIONS].drop_expired(now)
        if ended:
            await asyncio.to_thread(app[SUSPENSIONS].delete, ended, now)


async def flush_usage(app: web.Application) -> None:
    """Write the counters gathered since the last flush (kept for the next try on failure);
    with Redis, add them there, and the leader process writes everyone's to the file."""
    drained, shared = app[USAGE].drain(), app[SHARED_USAGE]
    if drained:  # Drained is falsy when it holds no counter at all
        try:
            if shared is None:
                await asyncio.to_thread(app[STATS].add, drained)
            else:
                await shared.push(drained, app[CLOCK]())
        except Exception:
            app[USAGE].restore(drained)
            raise
    if shared is not None:
        await shared.flush_if_leader(app[STATS])


async def flush_usage_forever(app: web.Application) -> None:
    """Flush usage counters every few seconds: no database write per request."""
    while True:
        await asyncio.sleep(USAGE_FLUSH_S)
        try:
            await flush_usage(app)
        except Exception as exc:  # the counters were restored; the next round retries
            log.error("usage_flush_failed", error=type(exc).__name__)


async def purge_forever(app: web.Application, shared: SharedEpochKeys | None = None) -> None:
    """Apply the retention rules at start-up and every few hours (see proxy/purge.py); with
    Redis, agree on the epoch keys with every node and have them destroy the old ones too."""
    stores = Stores(app[EPOCHS], app[STATS], app[SUSPENSIONS], app[SESSIONS])
    while True:
        try:
            now = app[CLOCK]()
            report = await purge_all(stores, app[SETTINGS], now)
            log.info("retention_applied", **dataclasses.asdict(report))
            if shared is not None:
                await shared.sync()
                await shared.destroyed(now - timedelta(days=app[SETTINGS].retention.epoch_key_days))
        except Exception as exc:  # try again next round; the failure is logged
            log.error("retention_failed", error=type(exc).__name__)
        await asyncio.sleep(PURGE_EVERY_S)
