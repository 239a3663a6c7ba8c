"""Scaling fixtures: a real redis-server per test, and proxy "nodes" sharing it.

A node is a full app (``build_app``) with ``state.backend: redis`` and its own Redis client,
served by its own aiohttp test client; the nodes of one test share the demo vendor, the clock
and the data_dir (as workers on one host do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.demo.patrons import DemoCard, demo_cards, seed
from proxy.demo.vendor import RequestRecorder, start_vendor
from proxy.rulebook import Rulebook
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY
from tests.scaling.redisserver import RedisServer, require_redis
from tests.web.conftest import Clock, demo_settings


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server (AOF everysec) in its own folder, stopped after the test."""
    require_redis()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@dataclass
class Cluster:
    """Nodes sharing one Redis, one vendor and one clock."""

    nodes: list[TestClient]
    apps: list[web.Application]
    vendor: RequestRecorder
    clock: Clock
    cards: dict[str, DemoCard]

    def card(self, note_start: str) -> DemoCard:
        """The demo card whose note starts with ``note_start``."""
        return next(c for k, c in self.cards.items() if k.startswith(note_start))


@pytest.fixture
async def make_cluster(
    aiohttp_client: Any, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[Any]:
    """``await make_cluster(n, **settings)``: n nodes on the test's redis-server."""
    runners: list[web.AppRunner] = []

    async def factory(count: int = 2, **extra: Any) -> Cluster:
        recorder = RequestRecorder()
        runner, port = await start_vendor("127.0.0.1", 0, recorder=recorder)
        runners.append(runner)
        state = {"backend": "redis", "url": redis_server.url, "command_timeout": 1}
        settings = demo_settings(tmp_path, port, state=state, **extra)
        clock = Clock()
        codes = frozenset(lib.code for lib in settings.libraries)
        apps = [
            await build_app(settings, Rulebook.open(settings.rules_dir, codes), clock=clock)
            for _ in range(count)
        ]
        seed(apps[0][REGISTRY], settings, clock.now.date())
        cards = {c.note: c for c in demo_cards(settings, clock.now.date())}
        nodes = [await aiohttp_client(app) for app in apps]
        return Cluster(nodes, apps, recorder, clock, cards)

    yield factory
    for runner in runners:
        await runner.cleanup()
