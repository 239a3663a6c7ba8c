"""How much RSS do 10,000 live sessions add? (Benchmark, not a test; target < 50 MB.)

Usage: ``.venv/bin/python bench/sessions_memory.py [N]``. Each backend runs in a fresh
interpreter so the figures do not share allocator state: memory (create N, visit each once),
sqlite (the same, then flush), and sqlite-reopen (load N sessions from the file, as after a
restart). RSS is read from /proc/self/statm after a gc, before and after.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.stores.sessions import DB_FILE, MemorySessionStore, SqliteSessionStore

IDLE, LIFETIME = timedelta(minutes=120), timedelta(hours=12)
T0 = datetime(2026, 11, 29, 9, tzinfo=UTC)
LIBRARIES = ("main", "north", "south", "east", "west")


def rss_mib() -> float:
    gc.collect()
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def fill(store: MemorySessionStore, n: int) -> None:
    tokens = []
    for i in range(n):
        token, _ = await store.create(
            library=LIBRARIES[i % 5], ptype="adult", patron_key=os.urandom(32).hex(), now=T0
        )
        tokens.append(token)
    for token in tokens:  # each session visited once: last_seen replaced as in real use
        await store.get(token, T0 + timedelta(seconds=1))
    await store.flush()


async def child(backend: str, n: int, path: Path) -> None:
    before = rss_mib()
    if backend == "memory":
        store: MemorySessionStore = MemorySessionStore(IDLE, LIFETIME)
        await fill(store, n)
    elif backend == "sqlite":
        store = await SqliteSessionStore.open(path, IDLE, LIFETIME)
        await fill(store, n)
    else:  # sqlite-reopen: the file was filled by the previous child
        store = await SqliteSessionStore.open(path, IDLE, LIFETIME)
    after = rss_mib()
    live = await store.count_active(T0 + timedelta(seconds=2))
    print(f"{backend:14} {live:>7} sessions  RSS +{after - before:6.1f} MiB")
    await store.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / DB_FILE)
        for backend in ("memory", "sqlite", "sqlite-reopen"):
            cmd = [sys.executable, __file__, "--child", backend, str(n), path]
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        asyncio.run(child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
    else:
        main()
