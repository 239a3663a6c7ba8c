"""Issue #18 item 7: the review card review mode imported leaves the registry with it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from proxy.review.runner import ReviewPlan, review_forever
from proxy.stores.patrons import PatronRegistry
from tests.review.test_review_e2e import REVIEW
from tests.web.conftest import demo_settings


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def card_left(tmp_path: Path) -> bool:
    """Whether the registry under the test's data dir still holds the review card."""
    registry = PatronRegistry.open(tmp_path / "data")
    try:
        return registry.lookup(REVIEW.card) is not None
    finally:
        registry.close()


def plan_for(tmp_path: Path) -> ReviewPlan:
    """A review of acme with the e2e review card."""
    return ReviewPlan("acme", tmp_path / "out", tmp_path / "certs", REVIEW)


async def test_item7_review_card_is_removed_when_the_review_ends(tmp_path: Path) -> None:
    """#18.7: after a (short, timed) review the imported review card is gone."""
    settings = demo_settings(tmp_path, free_port(), listen={"port": free_port()})
    files = await review_forever(settings, plan_for(tmp_path), duration=0.2)
    assert files.json.exists()
    assert not card_left(tmp_path)


async def test_item7_review_card_is_removed_when_the_review_fails_to_start(
    tmp_path: Path,
) -> None:
    """#18.7: when the listener cannot bind, the imported review card is removed anyway."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        settings = demo_settings(tmp_path, free_port(), listen={"port": port})
        with pytest.raises(OSError):
            await review_forever(settings, plan_for(tmp_path), duration=0.2)
    assert not card_left(tmp_path)
