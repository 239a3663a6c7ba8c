"""The local block list (#18 item 1): keyed card hashes only, expiry, lifting, no raw card."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from proxy.stores.blocks import DB_FILE, Block, BlockList, BlockListError
from proxy.stores.patrons import PatronRegistry

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CANARY_CARD = "29999000424242"


def block_of(blocks: BlockList, card: str, case: str, **extra: object) -> Block:
    """A block of ``card`` with test values."""
    fields: dict[str, object] = {
        "card_hash": blocks.card_hash(card),
        "library": "MAIN",
        "case": case,
        "reason": "abuse report",
        "by": "cli",
        "created": NOW,
        **extra,
    }
    return Block(**fields)  # type: ignore[arg-type]


def test_block_key_is_the_registry_card_hash(tmp_path: Path) -> None:
    """#18: the block list hashes a card exactly as the registry does (same pepper)."""
    with PatronRegistry.open(tmp_path) as registry:
        expected = registry.card_hash(CANARY_CARD)
    blocks = BlockList.open(tmp_path)
    try:
        assert blocks.card_hash(f" {CANARY_CARD} ") == expected
    finally:
        blocks.close()


def test_block_survives_reopen_and_lifts_by_case(tmp_path: Path) -> None:
    """#18: a block is kept on disk, listed, and lifted by its case number."""
    blocks = BlockList.open(tmp_path)
    blocks.add(block_of(blocks, CANARY_CARD, "C-1"))
    blocks.close()
    blocks = BlockList.open(tmp_path)
    try:
        card = blocks.card_hash(CANARY_CARD)
        assert blocks.is_blocked(card, NOW)
        [listed] = blocks.list_all()
        assert (listed.case, listed.library, listed.by, listed.expires) == (
            "C-1",
            "MAIN",
            "cli",
            None,
        )
        assert blocks.lift_case("C-1") == 1
        assert not blocks.is_blocked(card, NOW) and blocks.list_all() == []
    finally:
        blocks.close()


def test_expiry_is_honoured(tmp_path: Path) -> None:
    """#18: a block with an expiry stops at that time and is then deleted."""
    blocks = BlockList.open(tmp_path)
    try:
        blocks.add(block_of(blocks, CANARY_CARD, "C-2", expires=NOW + timedelta(days=1)))
        card = blocks.card_hash(CANARY_CARD)
        assert blocks.is_blocked(card, NOW + timedelta(hours=23))
        assert not blocks.is_blocked(card, NOW + timedelta(days=1))
        assert blocks.drop_expired(NOW + timedelta(hours=1)) == 0
        assert blocks.drop_expired(NOW + timedelta(days=2)) == 1
        assert blocks.list_all() == []
    finally:
        blocks.close()


def test_lift_by_hash_prefix(tmp_path: Path) -> None:
    """#18: a block is lifted by a hash prefix; too short a prefix is refused."""
    blocks = BlockList.open(tmp_path)
    try:
        blocks.add(block_of(blocks, CANARY_CARD, "C-3"))
        prefix = blocks.list_all()[0].prefix
        with pytest.raises(BlockListError):
            blocks.lift_prefix(prefix[:4])
        assert blocks.lift_prefix("f" * 8 if not prefix.startswith("f" * 8) else "0" * 8) == 0
        assert blocks.lift_prefix(prefix.upper()) == 1
        assert blocks.list_all() == []
    finally:
        blocks.close()


def test_block_file_holds_no_raw_card(tmp_path: Path) -> None:
    """#18 canary: the block list's files never contain the card number (DESIGN P4)."""
    blocks = BlockList.open(tmp_path)
    try:
        blocks.add(block_of(blocks, CANARY_CARD, "C-4"))
        blocks.add(block_of(blocks, CANARY_CARD, "C-5"))  # a rewrite of the same row
    finally:
        blocks.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith(DB_FILE)]
    assert files
    for path in files:
        assert CANARY_CARD.encode() not in path.read_bytes(), path
        assert path.stat().st_mode & 0o077 == 0, path
