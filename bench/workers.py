"""Workers benchmark (#15): the 2 KB page through ``serve --workers 1`` and ``--workers 2``,
with ``state.backend: local`` and ``redis``, and Redis's memory per 10,000 sessions.

Run: ``python -m bench.workers [--duration 8] [--connections 64] [--rounds 1]``. Needs
``wrk``, ``nginx`` and ``/usr/bin/redis-server``.

Contract: reuses bench/relay.py's pieces (the nginx origin serving the demo's 2 KB page, the
proxy config with one patron logged in through ``POST /login``, wrk with its JSON line, CPU
time from /proc). Rows: local ×1, redis ×1, redis ×2 (local ×2 is refused by design: the
run checks that it exits 2). Each proxy's CPU time is summed over its whole process group
(supervisor and workers), so "server CPU µs/request" is comparable between 1 and 2 workers.
How the load generator is accounted for: nothing is pinned here (two workers need both
cores), so wrk and the nginx origin compete with the workers for the same two cores; req/s
ratios therefore understate what two workers give on a machine with a separate load
generator, while CPU µs/request does not depend on that. The report says so, and gives the
load average (other people's processes on this shared machine move every figure).
Then 10,000 sessions are written through ``RedisSessionStore`` into a fresh Redis and
``INFO memory``'s ``used_memory`` is compared before and after.
Not a test: nothing here asserts. Report: printed and written to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from bench.relay import (
    RESULTS,
    ROOT,
    BenchError,
    Page,
    Result,
    Run,
    Target,
    check_target,
    csrf_pair,
    free_port,
    group_pids,
    import_card,
    log_in,
    revision,
    scratch,
    start,
    start_upstream,
    terminated_cleanly,
    wait_listening,
    write_proxy_config,
    wrk,
)

REDIS_SERVER: Final = "/usr/bin/redis-server"
SESSIONS: Final = 10_000


def start_redis(run: Run) -> str:
    """A redis-server for the run (AOF everysec, as docs/scaling.md recommends); its URL."""
    port, folder = free_port(), run.tmp / "redis"
    folder.mkdir()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    argv += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    proc = start(run, "redis", argv, cpu=0)
    wait_listening(run, "redis", proc, port)
    return f"redis://127.0.0.1:{port}/0"


def start_proxy(run: Run, up: int, name: str, workers: int, redis_url: str | None) -> Target:
    """``serve --workers N`` with one patron logged in."""
    port = free_port()
    config = write_proxy_config(run.tmp / name, port, up, rewrite=False)
    if redis_url is not None:
        with config.open("a") as out:
            out.write(f"state: {{backend: redis, url: '{redis_url}'}}\n")
    import_card(run, config)
    argv = [sys.executable, "run_proxy.py", "--config", str(config), "--log-format", "json"]
    proc = start(run, name, [*argv, "serve", "--workers", str(workers)], cpu=0)
    wait_listening(run, name, proc, port)
    time.sleep(3 if workers > 1 else 0)  # the other workers finish starting
    cookie = log_in(port, csrf_pair(port))

    def mapped(page: Page) -> str:
        return f"{page.vendor_host.replace('.', '-')}.proxy.localhost:{port}"

    return Target(name, port, lambda: group_pids(proc.pid), mapped, cookie)


def local_two_refused(run: Run, up: int) -> str:
    """``--workers 2`` on local state: the exit code and the one line it printed."""
    config = write_proxy_config(run.tmp / "local-x2", free_port(), up, rewrite=False)
    argv = [sys.executable, "run_proxy.py", "--config", str(config), "serve", "--workers", "2"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    return f"exit {done.returncode}: {done.stderr.strip()}"


def redis_memory(url: str, count: int) -> tuple[int, int]:
    """``used_memory`` before and after ``count`` sessions written as a node writes them."""
    from proxy.core.settings import State
    from proxy.stores.redis_sessions import RedisSessionStore
    from proxy.stores.redis_state import RedisState

    async def fill() -> tuple[int, int]:
        state = RedisState.connect(State(backend="redis", url=url, key_prefix="memtest:"))
        store = RedisSessionStore(state, timedelta(hours=2), timedelta(hours=12))
        before = (await state.client.info("memory"))["used_memory"]
        now = datetime.now(UTC)
        for n in range(count):
            patron = f"{n:064x}"  # a keyed hash is 64 hex characters
            await store.create(library="MAIN", ptype="adult", patron_key=patron, now=now)
        after = (await state.client.info("memory"))["used_memory"]
        await state.close()
        return int(before), int(after)

    return asyncio.run(fill())


def fmt(r: Result, base: Result | None) -> str:
    """One table row, with the ratio to the one-worker row of the same backend."""
    ratio = f"{r.rps / base.rps:.2f}" if base is not None else "–"
    cells = [r.target, f"{r.rps:,.0f}", ratio, f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}"]
    cells += [f"{r.cpu_us:,.0f}", str(r.errors)]
    return "| " + " | ".join(cells) + " |"


def bench(run: Run) -> str:
    """Start the origin, Redis and the proxies; measure; the report."""
    upstream, pages = start_upstream(run)
    page = pages[0]  # the 2 KB page
    url = start_redis(run)
    refused = local_two_refused(run, upstream.port)
    targets = [
        start_proxy(run, upstream.port, "local-x1", 1, None),
        start_proxy(run, upstream.port, "redis-x1", 1, url),
        start_proxy(run, upstream.port, "redis-x2", 2, url),
    ]
    for target in targets:
        check_target(run, target, page)
        wrk(run, target, page, 2, run.args.connections)  # warm-up
    results: dict[str, list[Result]] = {t.name: [] for t in targets}
    for _ in range(run.args.rounds):
        for target in targets:
            results[target.name].append(
                wrk(run, target, page, run.args.duration, run.args.connections)
            )
    best = {name: max(rows, key=lambda r: r.rps) for name, rows in results.items()}
    before, after = redis_memory(url, SESSIONS)
    return report(run, best, refused, after - before)


def report(run: Run, best: dict[str, Result], refused: str, memory: int) -> str:
    """The Markdown report."""
    local, one, two = best["local-x1"], best["redis-x1"], best["redis-x2"]
    lines = [
        f"# Workers benchmark {datetime.now():%Y-%m-%d %H:%M} ({revision()})",
        "",
        f"2 KB page, wrk -t1 -c{run.args.connections}, {run.args.duration} s rows, best of "
        f"{run.args.rounds}; load average at start {run.loadavg}. Not pinned: the workers, wrk "
        "and the nginx origin share the machine's 2 cores (and other people's processes do).",
        "",
        "| target | req/s | × 1 worker | p50 ms | p99 ms | server CPU µs/req | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        fmt(local, None),
        fmt(one, None),
        fmt(two, one),
        "",
        f"- redis ×1 ÷ local ×1 (per worker): {one.rps / local.rps:.2f} req/s, "
        f"CPU µs/req {one.cpu_us / local.cpu_us:.2f}×",
        f"- redis ×2 ÷ redis ×1: {two.rps / one.rps:.2f} req/s",
        f"- local ×2: {refused}",
        f"- Redis memory for {SESSIONS:,} sessions (INFO memory used_memory): "
        f"{memory / 2**20:.1f} MiB ({memory / SESSIONS:,.0f} bytes per session)",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Options (kept short: the machine is shared)."""
    parser = argparse.ArgumentParser(description="clamshell workers benchmark")
    parser.add_argument("--duration", type=int, default=8, help="seconds per row (default 8)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--rounds", type=int, default=1, help="passes over all rows (best)")
    args = parser.parse_args(argv)
    args.connection_counts = [args.connections]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, write it under bench/results/."""
    args = parse_args(argv)
    missing = [t for t in ("wrk", "nginx", REDIS_SERVER) if shutil.which(t) is None]
    if missing:
        print(f"bench.workers: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    RESULTS.mkdir(exist_ok=True)
    try:
        with terminated_cleanly(), scratch(False) as tmp, contextlib.ExitStack() as stack:
            text = bench(Run(args, tmp, False, stack))
    except BenchError as exc:
        print(f"bench.workers: {exc}", file=sys.stderr)
        return 1
    out = RESULTS / f"workers-{datetime.now():%Y%m%d-%H%M%S}.md"
    out.write_text(text)
    print(text + f"\nwritten to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
