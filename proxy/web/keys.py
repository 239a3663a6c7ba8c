"""Typed application keys: the one place that names what lives on the aiohttp app.

Contract: each resource has exactly one key and one owner: ``web/app.py`` creates it in
``build_app`` (or starts it in the app's cleanup context) and closes it on shutdown.
Not here: constructing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from proxy.core.abuse import AbuseMonitor
from proxy.core.cookiejar import JarRegistry
from proxy.core.disclosure import Disclosures
from proxy.core.hostmap import HostMap
from proxy.core.inflight import InFlight
from proxy.core.pseudonym import SessionPseudonyms
from proxy.core.settings import Settings
from proxy.core.throttle import Throttle
from proxy.core.usage import UsageCounters
from proxy.ilsauth.backends import LiveBackends
from proxy.rulebook import Rulebook
from proxy.stores.abuse_counters import AbuseCounters
from proxy.stores.address_quotas import AnonymousQuota, LocalAnonymousQuota
from proxy.stores.blocks import BlockList
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.patrons import PatronRegistry
from proxy.stores.redis_jars import RedisJars
from proxy.stores.redis_state import RedisState
from proxy.stores.redis_usage import SharedUsage
from proxy.stores.sessions import SessionStore
from proxy.stores.stats import StatsStore
from proxy.stores.suspensions import Suspensions
from proxy.stores.throttles import LoginThrottle
from proxy.upstream.client import UpstreamClient
from proxy.web.pages import Pages
from proxy.web.relay_guard import StallWatcher


@dataclass(frozen=True, slots=True)
class ProxySecrets:
    """Secrets read from data_dir (mode 0600): the hashing pepper and the CSRF key."""

    pepper: bytes
    csrf_key: bytes


@dataclass(frozen=True, slots=True)
class RelayStores:
    """What the relay's shell uses besides the request: handed to its steps explicitly."""

    settings: Settings
    upstream: UpstreamClient
    jars: JarRegistry
    pseudonyms: SessionPseudonyms
    epochs: EpochKeyStore
    abuse: AbuseCounters  # #15: the process's AbuseMonitor, or shared in Redis
    suspensions: Suspensions
    usage: UsageCounters
    in_flight: InFlight
    stalls: StallWatcher
    disclosures: Disclosures  # #21: what each vendor got, per session (transparency page)
    anonymous: AnonymousQuota = field(default_factory=LocalAnonymousQuota)  # #17, #15: Redis
    shared_jars: RedisJars | None = None  # #15: redis mode only


SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
RULEBOOK: web.AppKey[Rulebook] = web.AppKey("rulebook", Rulebook)
HOSTMAP: web.AppKey[HostMap] = web.AppKey("hostmap", HostMap)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
SECRETS: web.AppKey[ProxySecrets] = web.AppKey("secrets", ProxySecrets)
REGISTRY: web.AppKey[PatronRegistry] = web.AppKey("registry", PatronRegistry)
BLOCKS: web.AppKey[BlockList] = web.AppKey("blocks", BlockList)  # #18: the local block list
SESSIONS: web.AppKey[SessionStore] = web.AppKey("sessions")
THROTTLE: web.AppKey[Throttle] = web.AppKey("throttle", Throttle)
EPOCHS: web.AppKey[EpochKeyStore] = web.AppKey("epochs", EpochKeyStore)
JARS: web.AppKey[JarRegistry] = web.AppKey("jars", JarRegistry)
UPSTREAM: web.AppKey[UpstreamClient] = web.AppKey("upstream", UpstreamClient)
STATS: web.AppKey[StatsStore] = web.AppKey("stats", StatsStore)
USAGE: web.AppKey[UsageCounters] = web.AppKey("usage", UsageCounters)
ABUSE: web.AppKey[AbuseMonitor] = web.AppKey("abuse", AbuseMonitor)
IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight", InFlight)  # R3: per-patron caps
STALLS: web.AppKey[StallWatcher] = web.AppKey("stalls", StallWatcher)  # R3: slow readers
SUSPENSIONS: web.AppKey[Suspensions] = web.AppKey("suspensions", Suspensions)
PSEUDONYMS: web.AppKey[SessionPseudonyms] = web.AppKey("pseudonyms", SessionPseudonyms)
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")  # #15: local or Redis
SHARED_USAGE: web.AppKey[SharedUsage | None] = web.AppKey("shared_usage")  # #15: redis mode
STATE: web.AppKey[RedisState | None] = web.AppKey("state")  # #15: None with backend local
LIVE_AUTH: web.AppKey[LiveBackends] = web.AppKey("live_auth", LiveBackends)  # #16: SIP2/LDAP
RELAY: web.AppKey[RelayStores] = web.AppKey("relay", RelayStores)  # built from the above
PAGES: web.AppKey[Pages] = web.AppKey("pages", Pages)  # #21: templates, brand, catalogues
DISCLOSURES: web.AppKey[Disclosures] = web.AppKey("disclosures", Disclosures)  # #21
