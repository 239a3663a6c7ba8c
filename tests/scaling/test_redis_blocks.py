"""Issue #15: the local block list is shared by the nodes (Redis) and mirrored into each
node's blocks.sqlite3: a block made on one node refuses the card's login on every node and
survives a restart of all nodes, and even the loss of Redis's data."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from proxy.cli.block import run_blocks, run_unblock
from proxy.cli.patrons import run_patrons
from proxy.stores.blocks import Block, BlockList
from proxy.stores.redis_state import StateUnavailable
from proxy.web.keys import BLOCKS, SETTINGS
from tests.scaling.conftest import Cluster
from tests.scaling.redisserver import RedisServer
from tests.scaling.test_redis_sessions import cluster_redis, eventually
from tests.web.conftest import demo_settings
from tests.web.helpers import post_login


async def login_status(cluster: Cluster, node: int) -> int:
    """The status of the adult demo card's login on ``node`` (302: in; 403: refused)."""
    card = cluster.card("adult card")
    resp = await post_login(cluster.nodes[node], card.barcode, card.secret)
    await resp.read()
    return resp.status


async def block_adult(cluster: Cluster, node: int, case: str = "ABUSE-15") -> str:
    """Block the adult demo card through ``node``'s block list (as the admin API does)."""
    blocks = cluster.apps[node][BLOCKS]
    card_hash = blocks.card_hash(cluster.card("adult card").barcode)
    entry = Block(card_hash, "MAIN", case, "test", "staff", cluster.clock.now)
    await asyncio.to_thread(blocks.add, entry)
    return card_hash


def file_hashes(data_dir: Path) -> set[str]:
    """The card hashes a node's blocks.sqlite3 holds (read by a fresh connection)."""
    blocks = BlockList.open(data_dir)
    try:
        return {b.card_hash for b in blocks.list_all()}
    finally:
        blocks.close()


async def test_block_on_a_refuses_on_b_and_lift_on_b_lets_in_on_a(
    make_cluster: Any, tmp_path: Path
) -> None:
    """A block added on node A refuses the login on B at once, B's own file mirrors it (bus);
    lifted on B, the card logs in on A again and both files forget it."""
    cluster = await make_cluster(own_dirs=True)
    assert await login_status(cluster, 1) == 302
    card_hash = await block_adult(cluster, 0)
    assert [await login_status(cluster, n) for n in (0, 1)] == [403, 403]
    await eventually(lambda: card_hash in file_hashes(tmp_path / "node1"))
    assert card_hash in file_hashes(tmp_path / "node0")
    assert await asyncio.to_thread(cluster.apps[1][BLOCKS].lift_case, "ABUSE-15") == 1
    assert [await login_status(cluster, n) for n in (0, 1)] == [302, 302]
    await eventually(lambda: card_hash not in file_hashes(tmp_path / "node0"))
    assert card_hash not in file_hashes(tmp_path / "node1")


async def test_block_survives_restart_of_all_nodes_and_loss_of_redis(
    make_cluster: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """All nodes restarted on fresh data_dirs: Redis keeps the block; Redis's data lost too:
    the first node to start seeds Redis from its file, and every node refuses again."""
    cluster = await make_cluster()
    await block_adult(cluster, 0)
    # KNOWN ISSUE (reported): closing a node while the blocks_changed refresh is running
    # can hang its shutdown; let the bus settle first.
    await asyncio.sleep(0.5)
    for node in cluster.nodes:
        await node.close()
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    for secret in ("pepper.key", "csrf.key"):
        shutil.copy2(tmp_path / "data" / secret, fresh / secret)
    again = await make_cluster(data_dir=str(fresh))
    assert [await login_status(again, n) for n in (0, 1)] == [403, 403]
    await asyncio.sleep(0.5)  # the same known issue
    for node in again.nodes:
        await node.close()
    cluster_redis(again).delete("clamshell:blk", "clamshell:blk:seeded")  # Redis lost them
    third = await make_cluster(data_dir=str(fresh))
    assert [await login_status(third, n) for n in (0, 1)] == [403, 403]


async def test_redis_down_refuses_the_login(make_cluster: Any, redis_server: RedisServer) -> None:
    """Without Redis the block check cannot be made: the check fails closed (StateUnavailable,
    the login's 503 page), it never answers "not blocked"; Redis back: it answers again."""
    cluster = await make_cluster()
    card_hash = await block_adult(cluster, 0)
    blocks = cluster.apps[1][BLOCKS]
    await asyncio.sleep(1.2)  # appendfsync everysec
    redis_server.kill()
    try:
        await asyncio.to_thread(blocks.is_blocked, card_hash, cluster.clock.now)
    except StateUnavailable:
        pass
    else:
        raise AssertionError("answered without Redis")
    assert await login_status(cluster, 1) == 503
    redis_server.start()
    assert await asyncio.to_thread(blocks.is_blocked, card_hash, cluster.clock.now)
    assert await login_status(cluster, 1) == 403


async def test_expired_block_lets_in_and_is_dropped_everywhere(make_cluster: Any) -> None:
    """A block past its expiry refuses nothing; dropping expired blocks empties Redis."""
    cluster = await make_cluster()
    blocks = cluster.apps[0][BLOCKS]
    card_hash = blocks.card_hash(cluster.card("adult card").barcode)
    until = cluster.clock.now + timedelta(minutes=5)
    entry = Block(card_hash, "MAIN", "C-1", "test", "staff", cluster.clock.now, until)
    await asyncio.to_thread(blocks.add, entry)
    assert await login_status(cluster, 1) == 403
    cluster.clock.now += timedelta(minutes=6)
    assert await login_status(cluster, 1) == 302
    assert await asyncio.to_thread(cluster.apps[1][BLOCKS].drop_expired, cluster.clock.now) == 1
    assert cluster_redis(cluster).hlen("clamshell:blk") == 0


async def test_cli_lists_and_lifts_the_shared_list(make_cluster: Any) -> None:
    """``patrons blocks`` and ``patrons unblock`` in redis mode see and lift the block a node
    made (not only this data_dir's file); the card then logs in on every node."""
    cluster = await make_cluster(own_dirs=True)
    card_hash = await block_adult(cluster, 1)
    settings = cluster.apps[0][SETTINGS]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert await asyncio.to_thread(run_blocks, argparse.Namespace(), settings) == 0
    assert card_hash[:12] in out.getvalue()
    args = argparse.Namespace(case="ABUSE-15", hash=None)
    with contextlib.redirect_stdout(io.StringIO()):
        assert await asyncio.to_thread(run_unblock, args, settings) == 0
    assert [await login_status(cluster, n) for n in (0, 1)] == [302, 302]


def test_cli_without_redis_is_a_one_line_error(tmp_path: Path, capsys: Any) -> None:
    """``patrons blocks`` in redis mode with Redis unreachable: one line naming Redis, exit 1."""
    settings = demo_settings(
        tmp_path, 9, state={"backend": "redis", "url": "redis://127.0.0.1:9/0"}
    )
    args = argparse.Namespace(patrons_command="blocks")
    assert run_patrons(args, settings) == 1
    err = capsys.readouterr().err.strip()
    assert err == "Redis (state.url) did not answer: block_read", err
