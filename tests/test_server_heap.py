"""settle_heap: a serving process hides its start-up heap from the collector (bench/relay.py
showed full collections walking it as the main source of tail latency)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import asyncio, gc
from proxy.server import GC_THRESHOLDS, settle_heap
built = [{"rule": i} for i in range(1000)]  # start-up objects that live for ever
before = gc.get_freeze_count()
asyncio.run(settle_heap())
assert before == 0, before
assert gc.get_freeze_count() >= len(built), gc.get_freeze_count()
assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()
print("settled")
"""


def test_settle_heap_freezes_the_start_up_heap_and_raises_thresholds() -> None:
    # A fresh interpreter: freezing is process-wide and must not leak into the test run.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "settled"
