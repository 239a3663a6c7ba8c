"""SIGHUP reloads: they run off the event loop, so requests keep being answered (R12)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from proxy.config_loader import load_settings
from proxy.rulebook import Rulebook
from proxy.server import reload
from proxy.tasks import TaskOwner
from proxy.web.app import TASKS
from proxy.web.keys import RULEBOOK

REPO = Path(__file__).resolve().parents[1]
RULE = """id: v{n}
title: Vendor {n}
url: https://www.vendor{n}.org/
hosts: [www.vendor{n}.org, cdn.vendor{n}.org]
domains: [vendor{n}.org]
headers:
  allow: [x-api-key]
rewrite:
  find_replace:
    - find: "https://www.vendor{n}.org/a"
      replace: "/a"
"""
FILES = 600  # a reload of this many files takes long enough for the loop to tick many times
# Ratios, not wall-clock limits: on a loaded machine every gap grows, but a load on the loop
# shows as one gap as long as the whole load, while a load in a thread leaves many short ones.
MAX_GAP_SHARE = 0.5
MIN_TICKS = 5


async def test_R12_sighup_reload_runs_off_the_loop(tmp_path: Path) -> None:
    """R12: the SIGHUP handler returns at once and the loop keeps ticking while rules load."""
    for n in range(FILES):
        (tmp_path / f"v{n:04}.yaml").write_text(RULE.format(n=n), encoding="utf-8")
    book = Rulebook.open(tmp_path, frozenset({"MAIN"}))
    app = web.Application()
    app[RULEBOOK], app[TASKS] = book, TaskOwner()
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = reload(app, load_settings(REPO / "proxy.yaml", env={}), None)
    returned = loop.time() - started  # the handler itself must not load the files
    worst, last, ticks = 0.0, loop.time(), 0
    while not task.done():
        await asyncio.sleep(0.01)
        worst, last, ticks = max(worst, loop.time() - last), loop.time(), ticks + 1
    total = loop.time() - started
    assert book.last_result.ok and len(book.history) == 2
    assert ticks >= MIN_TICKS  # the loop kept running timers while the rules loaded
    assert returned < total * MAX_GAP_SHARE
    assert worst < total * MAX_GAP_SHARE
