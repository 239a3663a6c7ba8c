"""Web fixtures: the real app on loopback, a real demo vendor, a real SQLite data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.config_loader import settings_from
from proxy.core.settings import Settings
from proxy.demo.pages import ACME_HOSTS, BIGDB_HOSTS
from proxy.demo.patrons import DemoCard, demo_cards, seed
from proxy.demo.settings import DEMO_LIBRARIES
from proxy.demo.vendor import RequestRecorder, start_vendor
from proxy.rulebook import Rulebook
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY

REPO = Path(__file__).resolve().parents[2]
PORTAL = "proxy.localhost:8080"
PUBLIC = f"http://{PORTAL}"


@dataclass
class Clock:
    """An injected clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 29, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


@dataclass
class Stack:
    """A running proxy, its demo vendor, its clock and the demo cards."""

    client: TestClient
    vendor: RequestRecorder
    clock: Clock
    settings: Settings
    cards: dict[str, DemoCard]
    app: web.Application

    def card(self, note_start: str) -> DemoCard:
        """The demo card whose note starts with ``note_start``."""
        return next(c for k, c in self.cards.items() if k.startswith(note_start))


def demo_settings(tmp_path: Path, vendor_port: int, **extra: Any) -> Settings:
    """The demo's settings, pointed at a vendor on ``vendor_port`` and a temp data dir."""
    vendor = f"http://127.0.0.1:{vendor_port}"
    raw: dict[str, Any] = {
        "consortium_name": "Test Consortium",
        "public_url": PUBLIC,
        "data_dir": str(tmp_path / "data"),
        "rules_dir": str(REPO / "vendor_rules"),
        "libraries": DEMO_LIBRARIES,
        "upstream_overrides": {h: vendor for h in (*ACME_HOSTS, *BIGDB_HOSTS)},
        "timeouts": {"connect": 2, "first_byte": 2, "idle_read": 2},
    }
    return settings_from({**raw, **extra}, where="test", base=tmp_path)


StackFactory = Callable[..., Any]


@pytest.fixture
async def make_stack(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[StackFactory]:
    """Build a proxy + recording demo vendor; keyword arguments override settings keys."""
    runners: list[web.AppRunner] = []

    async def factory(**extra: Any) -> Stack:
        recorder = RequestRecorder()
        runner, port = await start_vendor("127.0.0.1", 0, recorder=recorder)
        runners.append(runner)
        settings = demo_settings(tmp_path, port, **extra)
        clock = Clock()
        book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
        app = await build_app(settings, book, clock=clock)
        seed(app[REGISTRY], settings, clock.now.date())
        cards = {c.note: c for c in demo_cards(settings, clock.now.date())}
        client = await aiohttp_client(app)
        return Stack(client, recorder, clock, settings, cards, app)

    yield factory
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    """The default stack."""
    result: Stack = await make_stack()
    return result
