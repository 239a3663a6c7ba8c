"""Logins per second through SIP2 to the demo ILS (pool 4), and the latency SIP2 adds (#16).

Usage: ``.venv/bin/python -m bench.ils_login [--seconds 8] [--concurrency 16]``.
One process runs the demo ILS (proxy/demo/ils.py), the real portal on a loopback TCP port
(aiohttp TestServer: real sockets, real SQLite data dir) and the clients. For each of two
libraries — MAIN (registry) and EAST (SIP2, ``pool_size: 4``) — ``--concurrency`` clients
post good logins (full path: CSRF, throttle, back-end, block list, session) for
``--seconds``. It prints logins/s and p50/p99 per library, the p99 difference (what the
SIP2 back-end adds, on this machine, in this run) and the ratio of throughputs. Throttles
are raised so that a benchmark is not refused as abuse. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.config_loader import settings_from
from proxy.demo.ils import start_demo_ils
from proxy.demo.patrons import demo_cards, seed
from proxy.demo.settings import demo_config
from proxy.rulebook import Rulebook
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HOST = "proxy.localhost:8080"


def settings_for(data: Path, ils_port: int):  # type: ignore[no-untyped-def]
    raw = demo_config(port=8080, vendor_port=9001, data_dir=data, ils_port=ils_port)
    raw["throttle"] = {
        "card_logins_per_minute": 10_000,
        "card_attempts": 1000,
        "ip_attempts": 100_000,
        "network_attempts": 1_000_000,
    }
    raw["sessions"] = {"max_per_card": 1000}
    raw["admin"] = {"enabled": False}
    return settings_from(raw, where="<bench>", base=data)


async def one_client(
    session: TestClient,
    card: str,
    pin: str,
    until: float,
    latencies: list[float],
) -> None:
    form = await session.get("/login", headers={"Host": HOST})
    token = CSRF.search(await form.text())
    assert token is not None
    nonce = form.cookies["clamshell_csrf"].value  # sent by hand: a login deletes the cookie
    data = {"csrf": token[1], "url": "", "card": card, "pin": pin}
    headers = {"Host": HOST, "Origin": f"http://{HOST}", "Cookie": f"clamshell_csrf={nonce}"}
    while time.perf_counter() < until:
        started = time.perf_counter()
        async with session.post(
            "/login", data=data, headers=headers, allow_redirects=False
        ) as resp:
            await resp.read()
            if resp.status != 302:
                raise RuntimeError(f"login refused: {resp.status}")
        latencies.append(time.perf_counter() - started)


async def run(seconds: float, concurrency: int) -> None:
    today = datetime.now(UTC).date()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        probe = settings_for(data, 1)
        cards = demo_cards(probe, today)
        ils, ils_port = await start_demo_ils(c for c in cards if c.library == "EAST")
        settings = settings_for(data, ils_port)
        book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
        app = await build_app(settings, book)
        seed(app[REGISTRY], settings, today)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        results = {}
        for code in ("MAIN", "EAST", "MAIN", "EAST"):  # interleaved: warm-up effects cancel
            card = next(c for c in cards if c.library == code)
            latencies: list[float] = []
            until = time.perf_counter() + seconds / 2
            jar = [
                TestClient(server, cookie_jar=aiohttp.DummyCookieJar()) for _ in range(concurrency)
            ]
            started = time.perf_counter()
            try:
                await asyncio.gather(
                    *(one_client(s, card.barcode, card.secret, until, latencies) for s in jar)
                )
            finally:
                elapsed = time.perf_counter() - started
                for s in jar:
                    await s.session.close()  # not s.close(): that stops the server
            total, lat = results.get(code, (0.0, []))
            results[code] = (total + elapsed, [*lat, *latencies])
        await server.close()
        ils.close()
    rows = {}
    for code, (elapsed, lat) in results.items():
        lat.sort()
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000
        rows[code] = (len(lat) / elapsed, p50, p99)
        back = "sip2 (pool 4)" if code == "EAST" else "registry"
        print(
            f"{code:5} {back:14} {len(lat) / elapsed:8.0f} logins/s  "
            f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({len(lat)} logins)"
        )
    print(
        f"SIP2 adds {rows['EAST'][2] - rows['MAIN'][2]:+.1f} ms at p99; "
        f"throughput ratio sip2/registry {rows['EAST'][0] / rows['MAIN'][0]:.2f} "
        f"(concurrency {concurrency}, {seconds:.0f} s per library)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
