"""#16: the demo ILS answers SIP2 like an ILS, and the demo signs EAST's cards in over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from proxy.config_loader import settings_from
from proxy.core.settings import Settings
from proxy.demo.ils import start_demo_ils
from proxy.demo.patrons import DemoCard, demo_cards, seed
from proxy.demo.settings import demo_config
from proxy.ilsauth.sip2_client import Sip2Client
from proxy.rulebook import Rulebook
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY
from tests.web.helpers import post_login

TODAY = date.today()


def settings_with(tmp_path: Path, ils_port: int) -> Settings:
    """The demo's settings with the SIP2 library pointed at ``ils_port``."""
    raw = demo_config(port=8080, vendor_port=9001, data_dir=tmp_path / "data", ils_port=ils_port)
    raw["public_url"] = "http://proxy.localhost:8080"
    return settings_from(raw, where="test", base=tmp_path)


@pytest.fixture
async def ils(tmp_path: Path) -> AsyncIterator[tuple[int, list[DemoCard]]]:
    """The demo ILS with EAST's demo cards."""
    cards = [c for c in demo_cards(settings_with(tmp_path, 1), TODAY) if c.library == "EAST"]
    server, port = await start_demo_ils(cards)
    yield port, cards
    server.close()
    await server.wait_closed()


async def test_demo_ils_answers_each_card_as_its_note_says(
    ils: tuple[int, list[DemoCard]], tmp_path: Path
) -> None:
    """Good card allowed; lost card and expired card denied; a wrong PIN is not confirmed."""
    port, cards = ils
    library = settings_with(tmp_path, port).library("EAST")
    assert library is not None and library.auth.sip2 is not None
    client = Sip2Client(library.auth.sip2)
    good, lost, expired = cards
    assert (await client.check(good.barcode, good.secret)).allowed
    assert "card_reported_lost" in (await client.check(lost.barcode, lost.secret)).denials
    assert "expired" in (await client.check(expired.barcode, expired.secret)).denials
    assert "invalid_password" in (await client.check(good.barcode, "0000")).denials
    assert "invalid_patron" in (await client.check("27777000009999", "1")).denials
    await client.close()


async def test_the_demo_signs_a_sip2_card_in(
    ils: tuple[int, list[DemoCard]], tmp_path: Path, aiohttp_client: Any
) -> None:
    """The demo's EAST library logs its card in over SIP2; its cards are not in the registry."""
    port, cards = ils
    settings = settings_with(tmp_path, port)
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    app = await build_app(settings, book)
    seed(app[REGISTRY], settings, TODAY)
    assert app[REGISTRY].lookup(cards[0].barcode) is None
    client = await aiohttp_client(app)
    ok = await post_login(client, cards[0].barcode, cards[0].secret)
    assert ok.status == 302, await ok.text()
    lost = await post_login(client, cards[1].barcode, cards[1].secret)
    assert lost.status == 403 and "contact your library" in await lost.text()
