"""``patrons check`` for a library whose cards are checked live (SIP2, LDAP; #16).

Contract: ``check_live(settings, library, barcode, secret)`` asks the library's back-ends in
order, as a login would (stopping at the first that knows the card; ``fallback`` after an
outage), and returns the lines to print and whether the card could log in remotely: which
back-end answered, how long it took and why (``core.ilsauth``'s staff reasons), then the
login decision. Nothing personal exists to print: the back-ends' answers hold none.
The block list is applied by the caller (``cli.block.with_block``), as for the registry.
Not here: reading the card and PIN (cli/patrons.py), the login's throttling (web/card_check.py).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from pathlib import Path

from proxy.core.authconfig import BackendName
from proxy.core.ilsauth import Answer, Known, NotKnown, Unavailable, settle
from proxy.core.login import LoginRefused, decide_login
from proxy.core.settings import Library, Settings
from proxy.ilsauth.backends import LiveBackends
from proxy.ilsauth.chain import ask_in_order
from proxy.stores.patrons import PatronRegistry
from proxy.web.card_check import look_up_card


def check_live(
    settings: Settings, library: Library, barcode: str, secret: str
) -> tuple[list[str], bool]:
    """Lines describing each back-end's answer and the decision; True when it could log in."""
    with PatronRegistry.open(Path(settings.data_dir)) as registry:
        answers, lines = asyncio.run(_ask(settings, library, registry, barcode, secret))
    answer = settle(answers)
    lines.insert(
        0, f"library: {library.code} ({library.name}); back-ends: " + ", ".join(library.auth.use)
    )
    if isinstance(answer, Unavailable):
        return [
            *lines,
            "remote login: unknown - no back-end could decide (patrons see a 503)",
        ], False
    if isinstance(answer, NotKnown):
        return [*lines, "remote login: no - card unknown or PIN/password wrong"], False
    decision = decide_login(
        answer.facts,
        secret_ok=True,
        throttled=False,
        today=date.today(),
        library=library,
        target_rule=None,
    )
    lines.append(f"decided by: {answer.backend}; patron type: {answer.facts.ptype}")
    if isinstance(decision, LoginRefused):
        return [*lines, f"remote login: no - {decision.reason}: {decision.message}"], False
    return [*lines, "remote login: yes (login throttling is not checked here)"], True


async def _ask(
    settings: Settings, library: Library, registry: PatronRegistry, barcode: str, secret: str
) -> tuple[list[Answer], list[str]]:
    backends = await asyncio.to_thread(
        LiveBackends.open, [library], clock=lambda: datetime.now(UTC)
    )
    lines: list[str] = []

    async def timed(backend: BackendName) -> Answer:
        started = time.perf_counter()
        answer = await _one(backends, settings, library, registry, backend, barcode, secret)
        lines.append(_describe(answer, time.perf_counter() - started))
        return answer

    try:
        answers = await ask_in_order(library.auth, timed)
    finally:
        await backends.close()
    return answers, lines


async def _one(
    backends: LiveBackends,
    settings: Settings,
    library: Library,
    registry: PatronRegistry,
    backend: BackendName,
    barcode: str,
    secret: str,
) -> Answer:
    if backend == "registry":
        facts, ok, _ = look_up_card(registry, settings, barcode, secret, library)
        if facts is None or not ok:
            return NotKnown("registry", "not in the registry, or the secret did not match")
        return Known("registry", facts, "in the registry; the secret matched")
    return await backends.ask(
        library,
        backend,
        barcode,
        secret,
        patron_key=registry.card_hash(barcode),
        today=date.today(),
    )


def _describe(answer: Answer, seconds: float) -> str:
    took = f"{seconds * 1000:.0f} ms"
    if isinstance(answer, Unavailable):
        return f"{answer.backend}: unavailable after {took} ({answer.error})"
    return f"{answer.backend}: answered in {took}: {answer.why}"
