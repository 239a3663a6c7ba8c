"""Scaling fixtures: a real redis-server per test, and proxy "nodes" sharing it.

A node is a full app (``build_app``) with ``state.backend: redis`` and its own Redis client,
served by its own aiohttp test client; the nodes of one test share the demo vendor, the clock
and the data_dir (as workers on one host do).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.core.settings import Settings
from proxy.demo.patrons import DemoCard, demo_cards, seed
from proxy.demo.vendor import RequestRecorder, start_vendor
from proxy.rulebook import Rulebook
from proxy.secretfiles import ensure_private_dir, read_or_create_secret
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY
from tests.scaling.redisserver import RedisServer, require_redis
from tests.web.conftest import Clock, demo_settings

SHARED_SECRETS = ("pepper.key", "csrf.key")


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


def node_settings(settings: Settings, data_dir: Path) -> Settings:
    """``settings`` with a data_dir of the node's own, holding the shared secrets (as
    docs/scaling.md tells operators: every node has the same pepper.key and csrf.key)."""
    shared = Path(settings.data_dir)
    ensure_private_dir(shared)
    data_dir.mkdir(mode=0o700, exist_ok=True)
    for name in SHARED_SECRETS:
        read_or_create_secret(shared / name)
        shutil.copy2(shared / name, data_dir / name)
    return settings.model_copy(update={"data_dir": str(data_dir)})


@pytest.fixture
async def make_cluster(
    redis_server: RedisServer, aiohttp_client: Any, tmp_path: Path
) -> AsyncIterator[Any]:
    """``await make_cluster(n, **settings)``: n nodes on the test's redis-server (requested
    first: it must outlive the apps, which flush their counters into it on close)."""
    runners: list[web.AppRunner] = []

    async def factory(count: int = 2, *, own_dirs: bool = False, **extra: Any) -> Cluster:
        recorder = RequestRecorder()
        runner, port = await start_vendor("127.0.0.1", 0, recorder=recorder)
        runners.append(runner)
        state = {"backend": "redis", "url": redis_server.url, "command_timeout": 1}
        settings = demo_settings(tmp_path, port, state=state, **extra)
        clock = Clock()
        codes = frozenset(lib.code for lib in settings.libraries)
        apps = []
        for index in range(count):
            mine = node_settings(settings, tmp_path / f"node{index}") if own_dirs else settings
            book = Rulebook.open(settings.rules_dir, codes)
            apps.append(await build_app(mine, book, clock=clock))
            seed(apps[-1][REGISTRY], mine, clock.now.date())
        cards = {c.note: c for c in demo_cards(settings, clock.now.date())}
        nodes = [await aiohttp_client(app) for app in apps]
        return Cluster(nodes, apps, recorder, clock, cards)

    yield factory
    for runner in runners:
        await runner.cleanup()
