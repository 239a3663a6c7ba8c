"""Asking a library's back-ends in order, as ``libraries[].auth`` says.

Contract: ``ask_in_order(auth, ask)`` calls ``ask(backend)`` for each back-end in
``auth.use`` until one answers ``Known``; when none did and one was ``Unavailable``, it asks
``auth.fallback`` too (if set and not already in the chain). It returns every answer in
order; ``core.ilsauth.settle`` makes the decision from them. The login (web/card_check.py)
and ``patrons check`` (cli/backend_check.py) share it, so staff see what a login would do.
Not here: asking one back-end (backends.py, the registry lookup), the decision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from proxy.core.authconfig import BackendName, LibraryAuth
from proxy.core.ilsauth import Answer, Known, Unavailable, settle


async def ask_in_order(
    auth: LibraryAuth, ask: Callable[[BackendName], Awaitable[Answer]]
) -> list[Answer]:
    """Every answer asked for, in order (see the module contract)."""
    answers: list[Answer] = []
    for backend in auth.use:
        answers.append(await ask(backend))
        if isinstance(answers[-1], Known):
            return answers
    fallback = auth.fallback
    if isinstance(settle(answers), Unavailable) and fallback and fallback not in auth.use:
        # Only a card the fallback knows gets in; otherwise the outage still answers (503).
        answers.append(await ask(fallback))
    return answers
