"""Checking a card at login: throttle, look up, decide, count (pentest R4, R11, R19).

Contract: ``check_card`` returns the login decision for a card, secret and client address.
Failures count per card, per address and per network (/24, /64: ``throttle.ipv4_prefix`` /
``ipv6_prefix``), as keyed hashes; each lock is logged once as ``login_locked scope=...``
and never named to the patron, who sees the message a wrong PIN gets. The global count only
raises an alarm (``login_alarm_raised scope=global``, counted for the admin console) that
slows every login by ``throttle.alarm_delay_ms`` while it lasts and refuses no one. An
unknown card and a wrong PIN do the same work (``look_up_card``: a decoy record stands in).
The lookup (SQLite, HMACs) runs in a worker thread, never on the event loop (#14); since
other logins run meanwhile, the throttle is asked again once it is back, so that a parallel
burst of guesses cannot all pass a check made before any of them was counted.
A good login past ``throttle.card_logins_per_minute`` is refused with a message to wait.
Whatever the back-end answered, the local block list (stores/blocks.py, keyed by the card's
hash) is asked too, in the same worker thread and for every attempt (same work), and a
listed card is refused with the blocked-status message (``core.login.apply_block``, #18).
A library whose ``auth`` names a live back-end (SIP2, LDAP; #16) is asked through
``ask_chain`` instead, one check per card at a time (``LiveBackends.card_turn``: a parallel
burst is throttled guess by guess before it reaches the ILS). The barcode rules chose the
library first (a card that does not match its prefix, length and check digit reaches no
back-end), a throttled attempt makes no network call, the back-ends are asked in order and
``core.ilsauth.settle`` combines their answers; when none could decide, the login raises
``CardCheckUnavailable`` (503, "we can't check your card right now").
Not here: the form, CSRF and sessions (login.py), the counting itself (core/throttle.py),
the back-ends (proxy/ilsauth/).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web

from proxy.core.authconfig import BackendName
from proxy.core.cards import barcode_problem, library_for_barcode, normalize_barcode
from proxy.core.ilsauth import Answer, Known, NotKnown, Unavailable, settle
from proxy.core.keyedhash import keyed_hash
from proxy.core.login import (
    CardFacts,
    LoginAccepted,
    LoginRefused,
    Refusal,
    apply_block,
    decide_login,
    refuse,
)
from proxy.core.settings import Library, Settings
from proxy.core.targets import Target
from proxy.core.throttle import LoginKeys, Scope, ThrottleVerdict, network_of
from proxy.ilsauth.backends import CardCheckUnavailable
from proxy.ilsauth.chain import ask_in_order
from proxy.logconfig import get_logger
from proxy.stores.blocks import BlockList
from proxy.stores.patrons import PatronRegistry
from proxy.web.keys import (
    BLOCKS,
    CLOCK,
    LIVE_AUTH,
    REGISTRY,
    SECRETS,
    SETTINGS,
    THROTTLE,
    USAGE,
)

log = get_logger("login")


async def check_card(
    request: web.Request, card: str, secret: str, target: Target | None, address: str
) -> LoginAccepted | LoginRefused:
    """Throttle, look up, decide; record the outcome in the throttle.

    Args:
        address: the client's address as text ('' when unknown), counted only as a hash.
    """
    app, settings = request.app, request.app[SETTINGS]
    barcode = normalize_barcode(card)
    library = library_for_barcode(barcode, settings.libraries)
    keys = login_keys(request, barcode, address)
    now = app[CLOCK]()
    await slow_down_if_alarmed(request)
    verdict = app[THROTTLE].blocked(keys, now)
    if library is not None and library.auth.live:  # #16: SIP2/LDAP, maybe then the registry
        async with app[LIVE_AUTH].card_turn(keys.card or ""):  # one live check per card
            verdict = verdict or app[THROTTLE].blocked(keys, app[CLOCK]())  # counted meanwhile
            found = await ask_chain(
                app, library, barcode, secret, now, throttled=verdict is not None
            )
        (facts, secret_ok, card_library), blocked = found
    else:  # Always look the card up (same work whether or not it exists, or we are throttled).
        (facts, secret_ok, card_library), blocked = await asyncio.to_thread(
            look_up_and_check_block, app, barcode, secret, library, now
        )
    verdict = verdict or app[THROTTLE].blocked(keys, app[CLOCK]())  # counted meanwhile
    decision = decide_login(
        facts,
        secret_ok=secret_ok,
        throttled=verdict is not None,
        today=now.date(),
        library=card_library,
        target_rule=target.rule if target else None,
    )
    decision = apply_block(decision, blocked=blocked)  # back-end independent (#18)
    decision = record_outcome(request, keys, verdict, decision)
    outcome = "ok" if isinstance(decision, LoginAccepted) else str(decision.reason)
    app[USAGE].login(
        now.date(), library.code if library else "unknown", "throttled" if verdict else outcome
    )
    return decision


def login_keys(request: web.Request, barcode: str, address: str) -> LoginKeys:
    """Keyed hashes of the card, the client address and its network (never raw values)."""
    pepper, limits = request.app[SECRETS].pepper, request.app[SETTINGS].throttle
    network = network_of(address, limits.ipv4_prefix, limits.ipv6_prefix)
    return LoginKeys(
        card=keyed_hash(pepper, "throttle-card", barcode) if barcode else None,
        address=keyed_hash(pepper, "throttle-ip", address),
        network=keyed_hash(pepper, "throttle-net", network),
    )


async def slow_down_if_alarmed(request: web.Request) -> None:
    """While the global alarm is raised, every login waits a bounded delay (R4)."""
    delay_ms = request.app[SETTINGS].throttle.alarm_delay_ms
    if delay_ms and request.app[THROTTLE].alarm(request.app[CLOCK]()) is not None:
        await asyncio.sleep(delay_ms / 1000)


def look_up_and_check_block(
    app: web.Application, barcode: str, secret: str, library: Library | None, now: datetime
) -> tuple[tuple[CardFacts | None, bool, Library | None], bool]:
    """The registry's answer and whether the card is on the block list (a worker thread)."""
    found = look_up_card(app[REGISTRY], app[SETTINGS], barcode, secret, library)
    return found, card_blocked(app[BLOCKS], barcode, now)


Found = tuple[tuple[CardFacts | None, bool, Library | None], bool]


async def ask_chain(
    app: web.Application,
    library: Library,
    barcode: str,
    secret: str,
    now: datetime,
    *,
    throttled: bool,
) -> Found:
    """Ask the library's back-ends in order (#16); a throttled attempt asks none of them.

    Raises:
        CardCheckUnavailable: a back-end that might know the card could not be asked, and
            neither a later one nor the ``fallback`` registry knew it.
    """
    blocked = await asyncio.to_thread(card_blocked, app[BLOCKS], barcode, now)
    if throttled:  # before any network call: a slow ILS must not make guessing cheaper
        return (None, False, None), blocked
    if barcode_problem(barcode, library) is not None or not secret.strip():
        return (None, False, None), blocked  # not this library's card, or no PIN: ask no one
    answers = await ask_in_order(
        library.auth,
        lambda backend: ask_one(app, library, backend, barcode, secret, now),
    )
    answer = settle(answers)
    if isinstance(answer, Unavailable):
        app[USAGE].login(now.date(), library.code, "unavailable")
        raise CardCheckUnavailable(f"{answer.backend} unavailable: {answer.error}")
    if isinstance(answer, NotKnown):
        return (None, False, None), blocked
    return (answer.facts, True, app[SETTINGS].library(answer.facts.library)), blocked


async def ask_one(
    app: web.Application,
    library: Library,
    backend: BackendName,
    barcode: str,
    secret: str,
    now: datetime,
) -> Answer:
    """One back-end's answer; the registry's in a worker thread."""
    if backend == "registry":
        facts, secret_ok, _ = await asyncio.to_thread(
            look_up_card, app[REGISTRY], app[SETTINGS], barcode, secret, library
        )
        if facts is None or not secret_ok:
            return NotKnown("registry", "not in the registry, or the secret did not match")
        return Known("registry", facts, "in the registry; the secret matched")
    patron_key = app[REGISTRY].card_hash(barcode)  # the same key whichever back-end answers
    return await app[LIVE_AUTH].ask(
        library, backend, barcode, secret, patron_key=patron_key, today=now.date()
    )


def card_blocked(blocks: BlockList, barcode: str, now: datetime) -> bool:
    """The back-end-independent block check, keyed by the card's hash (blocking I/O)."""
    return blocks.is_blocked(blocks.card_hash(barcode), now)


def look_up_card(
    registry: PatronRegistry,
    settings: Settings,
    barcode: str,
    secret: str,
    library: Library | None,
) -> tuple[CardFacts | None, bool, Library | None]:
    """The card's facts, whether the secret matched and its library — with the same work
    for an unknown card as for a wrong PIN (R19): a decoy stands in for the missing record."""
    login_with = library.login_with if library else "pin"
    record, known, secret_ok = registry.check_login(
        barcode, secret, login_with, decoy_library=library.code if library else ""
    )
    facts = CardFacts(
        record.library, record.ptype, record.expires, record.status, registry.patron_key(record)
    )
    card_library = settings.library(record.library)
    if not known:
        return None, False, None
    return facts, secret_ok, card_library


def record_outcome(
    request: web.Request,
    keys: LoginKeys,
    verdict: ThrottleVerdict | None,
    decision: LoginAccepted | LoginRefused,
) -> LoginAccepted | LoginRefused:
    """Count a failure or a success; a good login past the card's rate is refused (R11)."""
    throttle, now = request.app[THROTTLE], request.app[CLOCK]()
    if isinstance(decision, LoginRefused):
        if decision.reason is Refusal.UNRECOGNISED and verdict is None:
            log_tripped(throttle.record_failure(keys, now))
        return decision
    throttle.record_success(keys, now)
    if not throttle.admit_login(decision.patron_key, now):
        log.warning("login_rate_exceeded", scope="card")
        return refuse(Refusal.TOO_MANY)
    return decision


def log_tripped(scopes: tuple[Scope, ...]) -> None:
    """One event per lock or alarm this failure caused (for admins; never shown to patrons)."""
    for scope in scopes:
        if scope == "global":
            log.warning("login_alarm_raised", scope=scope)
        else:
            log.warning("login_locked", scope=scope)
