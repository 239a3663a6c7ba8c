"""Logins per second through SIP2 to the demo ILS (pool 4), and the latency SIP2 adds (#16).

Usage: ``.venv/bin/python -m bench.ils_login [--seconds 8] [--concurrency 16]``.
One process runs the demo ILS (proxy/demo/ils.py), the real portal on a loopback TCP port
(aiohttp TestServer: real sockets, real SQLite data dir) and the clients. For each of two
libraries — MAIN (registry) and EAST (SIP2, ``pool_size: 4``) — ``--concurrency`` clients
post good logins (full path: CSRF, throttle, back-end, block list, session) for
``--seconds``. It prints logins/s and p50/p99 per library, the p99 difference (what the
SIP2 back-end adds, on this machine, in this run) and the ratio of throughputs; a third row
runs the SIP2 client alone against the demo ILS (the back-end's own cost). Throttles
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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.config_loader import settings_from
from proxy.core.cards import make_check_digit
from proxy.core.settings import Settings
from proxy.core.sip2 import Sip2Settings
from proxy.demo.ils import start_demo_ils
from proxy.demo.patrons import DemoCard, seed
from proxy.demo.settings import demo_config
from proxy.ilsauth.sip2_client import Sip2Client
from proxy.rulebook import Rulebook
from proxy.stores.patron_import import import_lines
from proxy.stores.patrons import PatronRegistry
from proxy.web.app import build_app
from proxy.web.keys import REGISTRY

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HOST = "proxy.localhost:8080"


def settings_for(data: Path, ils_port: int) -> Settings:
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


Sample = tuple[float, list[float]]  # (elapsed seconds, latencies in seconds)


def bench_cards(settings: Settings, code: str, n: int, today: date) -> list[DemoCard]:
    """``n`` good cards of library ``code`` (serials from 1000: clear of the demo's own)."""
    library = settings.library(code)
    assert library is not None
    cards = []
    for serial in range(1000, 1000 + n):
        body = library.prefix + str(serial).zfill(library.length - len(library.prefix) - 1)
        barcode = body + make_check_digit(body, library.check_digit)
        ptype = "sip2" if library.auth.live else "adult"
        cards.append(DemoCard(code, barcode, "1234", ptype, today + timedelta(days=30), "ok", ""))
    return cards


def import_cards(registry: PatronRegistry, settings: Settings, cards: list[DemoCard]) -> None:
    """Put registry cards in, as the nightly import would."""
    lines = ["barcode,pin,library,ptype,expires,status"]
    lines += [f"{c.barcode},{c.secret},{c.library},{c.ptype},{c.expires},ok" for c in cards]
    import_lines(registry, lines, source="<bench>", settings=settings, replace=False)


async def measure_logins(
    server: TestServer, cards: list[DemoCard], seconds: float, concurrency: int
) -> Sample:
    """``concurrency`` browsers posting good logins, each with its own card, for ``seconds``
    (different cards: the login serializes live checks of one card on purpose)."""
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    jar = [TestClient(server, cookie_jar=aiohttp.DummyCookieJar()) for _ in range(concurrency)]
    started = time.perf_counter()
    try:
        await asyncio.gather(
            *(
                one_client(s, card.barcode, card.secret, until, latencies)
                for s, card in zip(jar, cards, strict=False)
            )
        )
    finally:
        elapsed = time.perf_counter() - started
        for s in jar:
            await s.session.close()  # not s.close(): that stops the server
    return elapsed, latencies


async def measure_client(
    settings: Sip2Settings, cards: list[DemoCard], seconds: float, concurrency: int
) -> Sample:
    """The SIP2 client alone (pool as configured): what the back-end itself costs."""
    client = Sip2Client(settings)
    latencies: list[float] = []
    until = time.perf_counter() + seconds

    async def worker(card: DemoCard) -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            verdict = await client.check(card.barcode, card.secret)
            if not verdict.allowed:
                raise RuntimeError("the demo ILS refused the card")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(card) for card in cards[:concurrency]))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed, latencies


async def run(seconds: float, concurrency: int) -> None:
    today = datetime.now(UTC).date()
    results: dict[str, Sample] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        probe = settings_for(data, 1)
        cards = {code: bench_cards(probe, code, concurrency, today) for code in ("MAIN", "EAST")}
        ils, ils_port = await start_demo_ils(cards["EAST"])
        settings = settings_for(data, ils_port)
        book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
        app = await build_app(settings, book)
        seed(app[REGISTRY], settings, today)
        import_cards(app[REGISTRY], settings, cards["MAIN"])
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        east = settings.library("EAST")
        assert east is not None and east.auth.sip2 is not None
        rounds = [("MAIN", "login"), ("EAST", "login"), ("EAST", "client")] * 2  # interleaved
        for code, kind in rounds:
            sample = await (
                measure_logins(server, cards[code], seconds / 2, concurrency)
                if kind == "login"
                else measure_client(east.auth.sip2, cards[code], seconds / 2, concurrency)
            )
            total, lat = results.get(f"{code} {kind}", (0.0, []))
            results[f"{code} {kind}"] = (total + sample[0], [*lat, *sample[1]])
        await server.close()
        ils.close()
    report(results, seconds, concurrency)


LABELS = {
    "MAIN login": "login, registry",
    "EAST login": "login, sip2 pool 4",
    "EAST client": "sip2 client alone",
}


def report(results: dict[str, Sample], seconds: float, concurrency: int) -> None:
    """One line per measurement, then the differences that answer the question."""
    rows = {}
    for name, (elapsed, lat) in results.items():
        lat.sort()
        p50 = statistics.median(lat) * 1000
        p99 = lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000
        rows[name] = (len(lat) / elapsed, p50, p99)
        print(
            f"{LABELS[name]:20} {len(lat) / elapsed:8.0f} /s  "
            f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({len(lat)})"
        )
    main, east = rows["MAIN login"], rows["EAST login"]
    print(
        f"SIP2 login vs registry login: p99 {east[2] - main[2]:+.1f} ms, "
        f"throughput ratio {east[0] / main[0]:.2f} "
        f"(concurrency {concurrency}, {seconds:.0f} s per row)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
