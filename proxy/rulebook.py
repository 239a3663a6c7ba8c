"""The live rule set: the current rules plus a safe reload.

Contract: ``Rulebook.current`` is always a rule set that passed every check. ``reload()``
loads the directory again; when that fails the current rules stay, and the failure (every
problem, with file:line:key) is kept in ``last_result`` for the admin console and logs.
Once the app ``attach``-es its compiler, ``Rulebook.snapshot`` is the live compiled
``RuleSnapshot`` (core/snapshot.py): built once per successful load, off the event loop for
reloads, and swapped in one assignment — the relay reads it once per request.
Not here: parsing (rules_loader), compiling (core/snapshot.py), the per-request lookup
(core/ruleset.RuleIndex).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from proxy.core.snapshot import RuleSnapshot, SnapshotCompiler
from proxy.errors import ConfigError
from proxy.logconfig import get_logger
from proxy.metrics import count_reload
from proxy.rules_loader import LoadedRules, load_rules

log = get_logger("rules")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one load attempt did."""

    at: datetime
    ok: bool
    rule_count: int
    problems: tuple[str, ...] = ()


@dataclass
class Rulebook:
    """Holds the current rules for one process; swap is a single attribute assignment."""

    directory: Path
    library_codes: frozenset[str]
    current: LoadedRules
    history: list[ReloadResult] = field(default_factory=list)
    proxy_host: str | None = None  # no rule may cover it (checked on every load, R17)
    # Reloads run in threads (SIGHUP and the admin API): one at a time, so the last to
    # finish is the last started and the history list is never written twice at once.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _compiler: SnapshotCompiler | None = field(default=None, repr=False, compare=False)
    _snapshot: RuleSnapshot | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(
        cls, directory: Path | str, library_codes: frozenset[str], proxy_host: str | None = None
    ) -> Rulebook:
        """Load the first rule set; raises ConfigError (nothing to fall back on yet)."""
        loaded = load_rules(directory, library_codes, proxy_host=proxy_host)
        book = cls(Path(directory), library_codes, loaded, proxy_host=proxy_host)
        book._remember(True, len(loaded.rules), ())
        return book

    def reload(self) -> ReloadResult:
        """Load again; keep the old rules if anything is wrong."""
        with self._lock:
            return self._reload_locked()

    def _reload_locked(self) -> ReloadResult:
        try:
            loaded = load_rules(self.directory, self.library_codes, proxy_host=self.proxy_host)
        except ConfigError as exc:
            problems = tuple(str(p) for p in exc.problems)
            log.warning(
                "rules_reload_failed", problem_count=len(problems), kept=len(self.current.rules)
            )
            return self._remember(False, len(self.current.rules), problems)
        if self._compiler is not None:  # compiled before the swap: requests never wait for it
            self._snapshot = self._compile(loaded)
        self.current = loaded
        log.info("rules_reloaded", rule_count=len(loaded.rules))
        return self._remember(True, len(loaded.rules), ())

    async def reload_async(self) -> ReloadResult:
        """``reload`` off the event loop (file reads go through a thread): the one reload
        entry point of the running server, for SIGHUP and the admin console alike (R12)."""
        result = await asyncio.to_thread(self.reload)
        count_reload(result.ok)
        return result

    def attach(self, compiler: SnapshotCompiler) -> RuleSnapshot:
        """Compile the current rules now and every reloaded set from now on."""
        with self._lock:
            self._compiler = compiler
            self._snapshot = self._compile(self.current)
            return self._snapshot

    @property
    def snapshot(self) -> RuleSnapshot:
        """The live compiled rule set (``attach`` first); read it once per request."""
        if self._snapshot is None:
            raise RuntimeError("no compiler attached to the rulebook")
        return self._snapshot

    def _compile(self, loaded: LoadedRules) -> RuleSnapshot:
        assert self._compiler is not None
        return self._compiler(loaded.rules, loaded.index, loaded.sources)

    @property
    def last_result(self) -> ReloadResult:
        """The most recent attempt."""
        return self.history[-1]

    def _remember(self, ok: bool, count: int, problems: tuple[str, ...]) -> ReloadResult:
        result = ReloadResult(datetime.now(UTC), ok, count, problems)
        self.history = [*self.history[-19:], result]
        return result
