"""Background tasks: the one place that creates asyncio tasks, and keeps them referenced.

Contract: ``TaskGroupOwner.spawn(coro, name=...)`` starts a task, keeps a strong reference
(asyncio holds only weak ones, so an unreferenced task can vanish mid-flight), logs a crash
with its name, and ``cancel_all()`` stops them on shutdown. Ruff bans
``asyncio.create_task`` elsewhere (TID251).
Not here: what the tasks do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from proxy.logconfig import get_logger

log = get_logger("tasks")


class TaskOwner:
    """Owns the app's background tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start ``coro`` as a named, referenced task."""
        task = asyncio.create_task(coro, name=name)  # noqa: TID251 — the one allowed place
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task_crashed", task=task.get_name(), error=type(task.exception()).__name__)

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them to finish."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
