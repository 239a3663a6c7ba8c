"""Relay benchmark: this proxy against a minimal aiohttp relay, mitmproxy and nginx, one run.

Run: ``python -m bench.relay [--duration 10] [--connections 64] [--rounds 3] [--single]
[--profile] [--sessions 10000] [--quick] [--keep] [--pywb-python PATH]`` (``make bench``).
Needs ``wrk`` and ``nginx`` (Debian: ``apt-get install wrk nginx-light``) and mitmproxy (the
``review`` extra). ``--pywb-python`` adds the ``minimal+pywb`` row: the minimal relay run by
that interpreter, from a separate virtualenv with ``pywb`` and ``aiohttp`` (pywb pins an old
``redis`` and replaces ``brotli``: never the project's own).

Contract: everything listens on 127.0.0.1 and is started, and killed on exit (process
groups), by this run. The upstream origin is nginx serving static copies of the demo
vendor's ~2 KB page and a 1 MiB PDF from a temporary folder, so the upstream's cost is small
and the same for every row. The targets, all started at once (idle ones cost nothing):
1. direct: wrk to the upstream itself;
2. minimal: ``bench/minimal_relay.py``, the floor cost of relaying in Python;
3. clamshell: ``run_proxy.py serve`` with its own config, data and rules folder and a patron
   logged in through ``POST /login``, so session lookup, licence check, header policy,
   pseudonym, cookie jar and usage accounting are all on the path; JSON logs to a file;
4. mitmproxy: ``mitmdump --mode reverse:`` (the Python peer);
5. nginx: ``proxy_pass`` with upstream keep-alive (the native reference).
Each (target, page) is first checked with one request (status 200 and exactly the upstream's
bytes, so a 302 to the login page can never pass for a fast answer) and warmed up; then
``--rounds`` interleaved passes of ``--duration`` seconds each, and the report gives the
medians: wrk's req/s and p50/p99, the server's CPU time per request (from /proc, which other
processes on this shared machine barely move) and how busy CPU 0 was outside the server.
Where ``taskset`` works the server under test runs on CPU 0 and wrk and the upstream on CPU
1 (for the direct row the upstream moves to CPU 0); otherwise the report says "not pinned".
Then ``--sessions`` real logins into the measured proxy, with its RSS before and after, and
``bench/sessions_memory.py`` for the store alone. ``--profile`` starts second instances of
the proxy and the minimal relay under ``sampled_main``, an in-process CPU-time sampler, and
reports where the CPU goes. The report is printed and written to
``bench/results/relay-<timestamp>.md`` (git-ignored), wrk's raw output beside it.
Not a test: nothing here asserts; the report says whether the issue's targets are met.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import http.client
import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Final
from urllib.parse import urlencode

from bench.linkdense import link_dense_page

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "bench" / "results"
BIN: Final = Path(sys.executable).parent
SERVER_CPU, LOAD_CPU = 0, 1
WWW, CDN = "www.acmejournals.test", "cdn.acmejournals.test"
CARD_BODY, PIN = "2123400000001", "4321"  # MAIN: prefix 21234, 14 digits with the Luhn digit
PDF_SIZE: Final = 2**20
LINKS, LINKS_SIZE = "100k-links", 100_000  # bench/linkdense.py with the demo vendor's hosts
HTML_MARK: Final = "<title>Browse — Acme Journal Archive</title>".encode()  # the 2 KB page's
PYWB_PATH: Final = "/web/"  # pywb's archival prefix path: its URLs keep the vendor's inside
UVLOOP_MAIN: Final = "import sys, uvloop; uvloop.install(); import proxy.cli; proxy.cli.main()"
SAMPLER_FLAG: Final = "--cpu-sampler"  # internal: -m bench.relay --cpu-sampler OUT MODULE -- ARGS
SAMPLE_S: Final = 0.002  # one CPU-time sample every 2 ms of CPU
WRK_MARK: Final = "BENCH-JSON "
# Reported by wrk's done() callback: one JSON line, latencies in microseconds.
WRK_LUA: Final = """wrk.headers["Host"] = "%(host)s"
%(cookie)s
done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('%(mark)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,' ..
    '"p50":%%.0f,"p99":%%.0f,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,' ..
    '"timeout":%%d}\\n', s.requests, s.duration, s.bytes, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""
NGINX_COMMON: Final = """daemon off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  %(http)s
}
"""
NGINX_ORIGIN: Final = """types { text/html html; application/pdf pdf; }
  sendfile on;
  server { listen 127.0.0.1:%(port)d; root %(root)s; }"""
NGINX_RELAY: Final = """upstream origin { server 127.0.0.1:%(up)d; keepalive 128; }
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_max_temp_file_size 0;  # stream through memory buffers, never a temp file
      proxy_buffer_size 64k;       # and big ones: 8 KB buffers cost nginx a quarter more
      proxy_buffers 16 64k;
      proxy_busy_buffers_size 128k;
    }
  }"""
PROXY_YAML: Final = """consortium_name: Bench Consortium
public_url: http://proxy.localhost:%(port)d
listen: {host: 127.0.0.1, port: %(port)d}
data_dir: %(dir)s/data
rules_dir: %(dir)s/rules
log_format: json
libraries:
  - {code: MAIN, name: Main, prefix: "21234", length: 14, check_digit: luhn,
     remote_ptypes: [adult]}
upstream_overrides:
  %(www)s: http://127.0.0.1:%(up)d
  %(cdn)s: http://127.0.0.1:%(up)d
admin: {enabled: false}
"""


class BenchError(Exception):
    """The benchmark cannot run or a target misbehaved; the message says why."""


@dataclass(frozen=True, slots=True)
class Page:
    """One resource every target serves: its path, vendor host and exact bytes."""

    name: str
    path: str
    vendor_host: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    """A running server under test and how to address a page through it."""

    name: str
    port: int
    pids: Callable[[], list[int]]  # processes to pin to the server CPU while measured
    host_for: Callable[[Page], str] = lambda page: page.vendor_host
    cookie: str | None = None
    home_cpu: int = SERVER_CPU  # where it waits between its rows (the upstream: LOAD_CPU)
    rewrites: bool = False  # HTML comes back with its links mapped to the proxy


@dataclass(frozen=True, slots=True)
class Result:
    """One wrk measurement."""

    target: str
    page: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # server CPU time per request
    others: float  # share of CPU 0 used by other processes meanwhile (NaN: not pinned)


@dataclass(frozen=True, slots=True)
class Median(Result):
    """Medians over the rounds, with the spread of req/s."""

    rps_min: float
    rps_max: float


@dataclass(slots=True)
class Run:
    """What the whole run needs: options, the temp dir, started processes, the report."""

    args: argparse.Namespace
    tmp: Path
    pinned: bool
    stack: contextlib.ExitStack
    loadavg: str = field(default_factory=lambda: loadavg())
    revision: str = field(default_factory=lambda: revision())
    raw_log: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- processes


def pin(run: Run, cpu: int) -> list[str]:
    """``taskset -c CPU`` when pinning works, else nothing."""
    return ["taskset", "-c", str(cpu)] if run.pinned else []


def pinning_works() -> bool:
    """Two CPUs we may use, and taskset can place a process on CPU 1."""
    cpus = os.sched_getaffinity(0)
    if shutil.which("taskset") is None or not {SERVER_CPU, LOAD_CPU} <= cpus:
        return False
    probe = subprocess.run(["taskset", "-c", str(LOAD_CPU), "true"], capture_output=True)
    return probe.returncode == 0


def start(run: Run, name: str, argv: Sequence[str], *, cpu: int) -> subprocess.Popen[bytes]:
    """Start a process in its own group, output to a log file; killed when the run ends."""
    log = (run.tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [*pin(run, cpu), *argv], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    run.stack.callback(log.close)
    run.stack.callback(stop, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 5 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def group_pids(pgid: int) -> list[int]:
    """Every process in a process group (nginx: master and worker)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                pids.append(int(stat.parent.name))
    return pids


def set_cpu(pids: Sequence[int], cpu: int) -> None:
    """Move every thread of these processes to one CPU."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), {cpu})


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(run: Run, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
    """Until the port accepts connections; BenchError with the log's tail if it never does."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    tail = (run.tmp / f"{name}.log").read_text(errors="replace")[-2000:]
    raise BenchError(f"{name} did not start listening on {port}:\n{tail}")


# ---------------------------------------------------------------- HTTP checks


def fetch(
    port: int, path: str, host: str, *, cookie: str | None = None, form: str | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request to 127.0.0.1:port; a form body makes it a POST."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": host}
    if cookie:
        headers["Cookie"] = cookie
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request("POST" if form is not None else "GET", path, body=form, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def check_target(run: Run, target: Target, page: Page) -> None:
    """200 with exactly the upstream's bytes (no redirect, no re-encoding).

    A rewriting proxy's HTML must instead keep the page's title and name no vendor origin.
    """
    status, _, body = fetch(target.port, page.path, target.host_for(page), cookie=target.cookie)
    if target.rewrites and page.path.endswith(".html"):
        mark = HTML_MARK if page.name != LINKS else b"<title>Search results</title>"
        if target.name == "minimal+pywb":  # an archival URL still holds the vendor's
            gone = f"{PYWB_PATH}20240101000000".encode() in body and body != page.body
        else:
            gone = b"https://" + WWW.encode() not in body
        mapped = status == 200 and mark in body and gone
        if mapped:
            run.notes.append(f"{target.name} rewrites the {page.name} page: {len(page.body):,} "
                             f"bytes from the upstream, {len(body):,} to the client")  # fmt: skip
            return
    elif status == 200 and body == page.body:
        return
    raise BenchError(
        f"{target.name} {page.name}: status {status}, {len(body)} bytes "
        f"(expected 200 and the upstream's {len(page.body)} bytes)"
    )


# ---------------------------------------------------------------- wrk and CPU accounting


def cpu_ticks(pids: Sequence[int]) -> int:
    """User + system CPU of these processes (all their threads), in clock ticks."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def cpu_busy(cpu: int) -> int:
    """Ticks one CPU spent not idle, whoever ran (from /proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(v) for v in line.split()[1:]]
            return sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait
    return 0


def wrk(run: Run, target: Target, page: Page, seconds: int, connections: int) -> Result:
    """Load one page through one target; latencies from wrk's own histogram.

    Also the server's CPU time per request, and how busy CPU 0 was with *other* work (other
    people's processes): the first barely depends on contention, the second shows it.
    """
    cookie = f'wrk.headers["Cookie"] = "{target.cookie}"' if target.cookie else ""
    script = run.tmp / f"wrk-{target.name}-{page.name}.lua"
    script.write_text(WRK_LUA % {"host": target.host_for(page), "cookie": cookie, "mark": WRK_MARK})
    url = f"http://127.0.0.1:{target.port}{page.path}"
    argv = [*pin(run, LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--latency", "--timeout", "10s", "-s", str(script), url]
    pids = target.pids()
    ticks, busy = cpu_ticks(pids), cpu_busy(SERVER_CPU)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    ticks, busy = cpu_ticks(pids) - ticks, cpu_busy(SERVER_CPU) - busy
    run.raw_log.append(f"## {target.name} {page.name} c={connections} {seconds}s\n{out.stdout}")
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(WRK_MARK)), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed on {target.name} {page.name}: {out.stderr[-500:]}")
    s = json.loads(line.removeprefix(WRK_MARK))
    seconds_run, hz = s["duration_us"] / 1e6, os.sysconf("SC_CLK_TCK")
    return Result(
        target.name, page.name, connections,
        rps=s["requests"] / seconds_run,
        p50_ms=s["p50"] / 1e3,
        p99_ms=s["p99"] / 1e3,
        errors=s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"],
        cpu_us=1e6 * ticks / hz / max(s["requests"], 1),
        others=max(busy - ticks, 0) / hz / seconds_run if run.pinned else float("nan"),
    )  # fmt: skip


def measure(run: Run, target: Target, page: Page, connections: int, seconds: int) -> Result:
    """One row: the target alone on the server CPU for the time of the run."""
    if run.pinned:
        set_cpu(target.pids(), SERVER_CPU)
    try:
        return wrk(run, target, page, seconds, connections)
    finally:
        if run.pinned:
            set_cpu(target.pids(), target.home_cpu)


def rounds(run: Run, targets: Sequence[Target], pages: Sequence[Page]) -> list[Result]:
    """Check and warm every target up, then ``--rounds`` passes over all rows.

    Interleaving spreads whatever else the machine is doing over every target instead of
    letting it land on one; the report takes the median of the rounds.
    """
    rows = [(t, p, c) for t in targets for p in pages for c in run.args.connection_counts]
    for target, page, connections in rows:
        check_target(run, target, page)
        measure(run, target, page, connections, run.args.warmup)
    results = []
    for n in range(run.args.rounds):
        print(f"round {n + 1}/{run.args.rounds}", flush=True)
        for target, page, connections in rows:
            results.append(measure(run, target, page, connections, run.args.duration))
            print(f"  {fmt_row(results[-1], {})}", flush=True)
    return results


def median_rows(results: Sequence[Result]) -> list[Median]:
    """One row per (target, page, connections): medians over the rounds, errors summed."""
    groups: dict[tuple[str, str, int], list[Result]] = {}
    for r in results:
        groups.setdefault((r.target, r.page, r.connections), []).append(r)
    return [
        Median(
            *key,
            rps=statistics.median(r.rps for r in rs),
            p50_ms=statistics.median(r.p50_ms for r in rs),
            p99_ms=statistics.median(r.p99_ms for r in rs),
            errors=sum(r.errors for r in rs),
            cpu_us=statistics.median(r.cpu_us for r in rs),
            others=statistics.median(r.others for r in rs),
            rps_min=min(r.rps for r in rs),
            rps_max=max(r.rps for r in rs),
        )
        for key, rs in groups.items()
    ]


# ---------------------------------------------------------------- upstream and peers


def write_pages(root: Path) -> list[Page]:
    """The demo vendor's 2 KB page and a 1 MiB PDF, as files nginx serves."""
    from proxy.demo.pages import small_page
    from proxy.demo.pdf import noise

    html = small_page().encode()
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    pdf += noise(1, PDF_SIZE - len(pdf))  # pass-through bytes; validity does not matter
    links = link_dense_page(LINKS_SIZE, hosts=(WWW, CDN))
    (root / "pdf").mkdir(parents=True)
    (root / "page-2k.html").write_bytes(html)
    (root / "links-100k.html").write_bytes(links)
    (root / "pdf" / "article-1.pdf").write_bytes(pdf)
    return [
        Page("2k-html", "/page-2k.html", WWW, html),
        Page(LINKS, "/links-100k.html", WWW, links),
        Page("1m-pdf", "/pdf/article-1.pdf", CDN, pdf),
    ]


def start_nginx(run: Run, name: str, http_block: str, port: int, cpu: int) -> Target:
    """An nginx with a config of its own in the temp dir."""
    where = run.tmp / name
    where.mkdir()
    conf = where / "nginx.conf"
    conf.write_text(NGINX_COMMON % {"dir": where, "http": http_block})
    argv = ["nginx", "-p", str(where), "-e", str(where / "error.log"), "-c", str(conf)]
    proc = start(run, name, argv, cpu=cpu)
    wait_listening(run, name, proc, port)
    return Target(name, port, lambda: group_pids(proc.pid), home_cpu=cpu)


def start_upstream(run: Run) -> tuple[Target, list[Page]]:
    """The static origin every relay forwards to (on the load CPU)."""
    docroot = run.tmp / "docroot"
    pages = write_pages(docroot)
    port = free_port()
    origin = NGINX_ORIGIN % {"port": port, "root": docroot}
    return start_nginx(run, "direct", origin, port, LOAD_CPU), pages


def start_minimal(
    run: Run, up: int, *, name: str = "minimal", sampler: Path | None = None
) -> Target:
    """bench/minimal_relay.py (with ``sampler``: under ``sampled_main``); ``minimal+regex``
    rewrites HTML with one regex pass, ``minimal+pywb`` with pywb (``--pywb-python``)."""
    port = free_port()
    args = ["--port", str(port), "--upstream", f"http://127.0.0.1:{up}"]
    kind = name.removesuffix("-sampled")
    rewrite = kind in ("minimal+regex", "minimal+pywb")
    if kind == "minimal+regex":
        args += ["--rewrite-regex", f".proxy.localhost:{port}"]
    python = sys.executable
    if kind == "minimal+pywb":
        args += ["--rewrite-pywb", f"http://proxy.localhost:{port}{PYWB_PATH}"]
        python = run.args.pywb_python
    argv = [python, "-m", "bench.minimal_relay", *args]
    if sampler is not None:
        argv = sampler_argv("bench.minimal_relay", sampler, args)
    proc = start(run, name, argv, cpu=SERVER_CPU)
    wait_listening(run, name, proc, port)
    return Target(name.removesuffix("-sampled"), port, lambda: [proc.pid], rewrites=rewrite)


def start_mitmproxy(run: Run, up: int) -> Target:
    """mitmdump in reverse mode, quiet, with its CA files in the temp dir."""
    port = free_port()
    argv = [str(BIN / "mitmdump"), "--mode", f"reverse:http://127.0.0.1:{up}", "-q"]
    argv += ["--listen-host", "127.0.0.1", "--listen-port", str(port)]
    argv += ["--set", f"confdir={run.tmp / 'mitmproxy'}"]
    proc = start(run, "mitmproxy", argv, cpu=SERVER_CPU)
    wait_listening(run, "mitmproxy", proc, port)
    return Target("mitmproxy", port, lambda: [proc.pid])


def start_nginx_relay(run: Run, up: int) -> Target:
    """nginx proxy_pass with keep-alive to the upstream."""
    port = free_port()
    return start_nginx(run, "nginx", NGINX_RELAY % {"up": up, "port": port}, port, SERVER_CPU)


# ---------------------------------------------------------------- the proxy


def write_proxy_config(where: Path, port: int, up: int, *, rewrite: bool) -> Path:
    """proxy.yaml, a rules folder with the demo vendor's rule, an empty data folder.

    Without ``rewrite`` the rule rewrites no content type: bodies pass through untouched, as
    in issue 4's relay (whose targets are about relaying, not rewriting).
    """
    import yaml

    rule = yaml.safe_load((ROOT / "vendor_rules" / "acme.yaml").read_text())
    if not rewrite:
        rule.setdefault("rewrite", {})["content_types"] = []
    (where / "rules").mkdir(parents=True)
    (where / "rules" / "acme.yaml").write_text(yaml.safe_dump(rule))
    config = where / "proxy.yaml"
    values = {"port": port, "dir": where, "up": up, "www": WWW, "cdn": CDN}
    config.write_text(PROXY_YAML % values + usage_limits())
    return config


def usage_limits() -> str:
    """Abuse limits far above what one benchmark session does (still counted on every request).

    The defaults (5,000 requests and 300 downloads an hour per session) would suspend the
    benchmark's one session within seconds; then the proxy answers 403 and would look fast.
    Likewise the in-flight caps (32 per session) would answer wrk's 64 connections with 429,
    and the per-card session caps would refuse the thousands of logins of ``--sessions``.
    """
    from proxy.core.settings import Settings

    if "limits" not in Settings.model_fields:
        return ""
    limits = "limits: {requests: 1000000000, megabytes: 1000000000, downloads: 1000000000}\n"
    if "relay" in Settings.model_fields:  # R3 caps: wrk's connections all share one session
        limits += "relay: {concurrent_per_session: 10000, concurrent_per_address: 10000}\n"
    if "max_per_card" in Settings.model_fields["sessions"].annotation.model_fields:  # type: ignore[union-attr]
        # R11 caps: the --sessions measurement logs the one bench card in thousands of times
        limits += "sessions: {max_per_card: 1000}\n"
        limits += "throttle: {card_logins_per_minute: 10000}\n"
    return limits


def card() -> str:
    """The benchmark patron's card number (MAIN: Luhn check digit)."""
    from proxy.core.cards import make_check_digit

    return CARD_BODY + make_check_digit(CARD_BODY, "luhn")


def card_csv() -> str:
    """A patron export with the one benchmark card."""
    return f"barcode,pin,library,ptype,expires,status\n{card()},{PIN},MAIN,adult,2099-12-31,ok\n"


def import_card(run: Run, config: Path) -> None:
    """Import the card with ``patrons import``; directly through the store if not wired."""
    path = config.parent / "patrons.csv"
    path.write_text(card_csv())
    argv = [sys.executable, "run_proxy.py", "--config", str(config), "patrons", "import"]
    done = subprocess.run([*argv, str(path)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        run.notes.append("`patrons import` is not wired in the CLI yet: the card was imported "
                         "with `proxy.stores.patron_import.import_lines`.")  # fmt: skip
        import_directly(config, path)


def import_directly(config: Path, path: Path) -> None:
    """``import_lines`` into ``PatronRegistry.open(data_dir)`` (before the server opens it)."""
    from proxy.config_loader import load_settings
    from proxy.stores.patron_import import import_lines
    from proxy.stores.patrons import PatronRegistry

    settings = load_settings(config)
    with PatronRegistry.open(Path(settings.data_dir)) as registry, path.open() as lines:
        summary = import_lines(registry, lines, source=str(path), settings=settings, replace=False)
    if summary.imported != 1:
        raise BenchError(f"the benchmark card was not imported: {summary}")


def csrf_pair(port: int) -> tuple[str, str]:
    """(nonce cookie, form token) from the login page."""
    status, headers, body = fetch(port, "/login", f"proxy.localhost:{port}")
    nonce = re.search(r"clamshell_csrf=([^;]+)", ", ".join(headers.get_all("Set-Cookie") or []))
    token = re.search(rb'name="csrf" value="([^"]+)"', body)
    if status != 200 or nonce is None or token is None:
        raise BenchError(f"GET /login: status {status}, no CSRF cookie or token")
    return nonce.group(1), token.group(1).decode()


def log_in(port: int, csrf: tuple[str, str]) -> str:
    """POST /login; the ``clamshell_session=…`` cookie pair."""
    form = urlencode({"card": card(), "pin": PIN, "csrf": csrf[1], "url": ""})
    host = f"proxy.localhost:{port}"
    status, headers, _ = fetch(port, "/login", host, cookie=f"clamshell_csrf={csrf[0]}", form=form)
    cookies = ", ".join(headers.get_all("Set-Cookie") or [])
    session = re.search(r"clamshell_session=[^;]+", cookies)
    if status != 302 or session is None:
        raise BenchError(f"POST /login: status {status}, no session cookie")
    return session.group(0)


def start_proxy(
    run: Run, up: int, *, name: str = "clamshell", sampler: Path | None = None
) -> Target:
    """``run_proxy.py serve`` as an admin would start it, with one patron logged in.

    ``clamshell+rewrite`` keeps the demo rule's body rewriting; ``clamshell+uvloop`` runs
    the same proxy on uvloop's event loop (``uvloop.install()`` before ``proxy.cli.main``,
    to measure whether the optional loop pays). With ``sampler``, ``proxy.cli.main`` runs
    under ``sampled_main`` instead (profiling only).
    """
    port = free_port()
    rewrite = name.removesuffix("-sampled").endswith("+rewrite")
    config = write_proxy_config(run.tmp / name, port, up, rewrite=rewrite)
    import_card(run, config)
    cli = ["--config", str(config), "--log-format", "json", "serve"]
    argv = [sys.executable, "run_proxy.py", *cli]
    if sampler is not None:
        argv = sampler_argv("proxy.cli", sampler, cli)
    elif name == "clamshell+uvloop":
        argv = [sys.executable, "-c", UVLOOP_MAIN, *cli]
    proc = start(run, name, argv, cpu=SERVER_CPU)
    wait_listening(run, name, proc, port)
    cookie = log_in(port, csrf_pair(port))

    def mapped(page: Page) -> str:
        return f"{page.vendor_host.replace('.', '-')}.proxy.localhost:{port}"

    label = name.removesuffix("-sampled")
    return Target(label, port, lambda: [proc.pid], mapped, cookie, rewrites=rewrite)


# ---------------------------------------------------------------- memory and profile


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def live_sessions(run: Run, pid: int, port: int) -> list[str]:
    """RSS of the running proxy before and after ``--sessions`` real logins (time-bounded)."""
    n, csrf, deadline = run.args.sessions, csrf_pair(port), time.monotonic() + 180
    before, started = rss_mib(pid), time.monotonic()

    def one(_: int) -> bool:
        return time.monotonic() < deadline and bool(log_in(port, csrf))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        made = sum(pool.map(one, range(n)))
    after, seconds = rss_mib(pid), time.monotonic() - started
    return [
        f"- live proxy (`POST /login` × {made:,} in {seconds:.0f} s, SQLite store): "
        f"RSS {before:.1f} → {after:.1f} MiB, **+{after - before:.1f} MiB**"
    ]


def in_process_sessions(n: int) -> list[str]:
    """bench/sessions_memory.py: the session store alone, each backend in a fresh process."""
    argv = [sys.executable, str(ROOT / "bench" / "sessions_memory.py"), str(n)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return [f"- bench/sessions_memory.py failed: {out.stderr.strip()[-300:]}"]
    return [f"- `bench/sessions_memory.py`: `{line.strip()}`" for line in out.stdout.splitlines()]


def place(file: str) -> str:
    """``proxy/web/relay.py`` in the repository, ``aiohttp/client.py`` for a dependency."""
    parts = Path(file).parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    path = Path(file)
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(*parts[-2:]))


PLAIN_PAIR: Final = ("clamshell", "minimal")  # bodies passed through
REWRITE_PAIR: Final = ("clamshell+rewrite", "minimal+regex")  # the link-dense page rewritten


def sampled_main(out: Path, module: str, argv: list[str]) -> int:
    """``module.main(argv)`` under a CPU-time sampler: SIGUSR1 starts afresh, SIGUSR2 writes.

    ITIMER_PROF ticks only while this process uses CPU (user or system time), so the time
    it spends descheduled by other processes is never sampled, unlike py-spy's wall-clock
    samples (which this shared machine skews). The handler runs in the main thread, which
    runs the event loop; C calls (a socket send) count in the Python frame that made them.
    ``out`` gets JSON ``[[frames, root first], count]`` at SIGUSR2.
    """
    counts = collections.Counter[tuple[str, ...]]()
    labels: dict[object, str] = {}

    def tick(_signum: int, frame: FrameType | None) -> None:
        stack = []
        if frame is not None and frame.f_code is tick.__code__:
            frame = frame.f_back  # the tick came while the previous one was being counted
        while frame is not None:
            code = frame.f_code
            label = labels.get(code)
            if label is None:
                label = labels[code] = f"{code.co_qualname} ({place(code.co_filename)})"
            stack.append(label)
            frame = frame.f_back
        counts[tuple(reversed(stack))] += 1

    def begin(*_: object) -> None:
        counts.clear()
        signal.setitimer(signal.ITIMER_PROF, SAMPLE_S, SAMPLE_S)

    def end(*_: object) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)
        out.write_text(json.dumps([[list(k), v] for k, v in counts.items()]))

    signal.signal(signal.SIGPROF, tick)
    signal.signal(signal.SIGUSR1, begin)
    signal.signal(signal.SIGUSR2, end)
    return int(importlib.import_module(module).main(argv) or 0)


def sampler_argv(module: str, out: Path, argv: Sequence[str]) -> list[str]:
    """The command line running ``module.main(argv)`` under ``sampled_main``."""
    return [sys.executable, "-m", "bench.relay", SAMPLER_FLAG, str(out), module, "--", *argv]


def sample(run: Run, target: Target, page: Page, out: Path) -> tuple[list[list[str]], Result]:
    """Load a sampled target like the measured one; its stacks and its figures."""
    connections, pid = run.args.connection_counts[0], target.pids()[0]
    check_target(run, target, page)
    measure(run, target, page, connections, run.args.warmup)
    os.kill(pid, signal.SIGUSR1)
    result = measure(run, target, page, connections, run.args.duration)
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not out.exists():
        raise BenchError(f"the CPU sampler in {target.name} wrote nothing")
    return [frames for frames, n in json.loads(out.read_text()) for _ in range(n)], result


def profiles(
    run: Run, up: int, pages: Sequence[Page], stamp: str, pair: tuple[str, str] = PLAIN_PAIR
) -> list[str]:
    """Second instances of the proxy and the minimal relay (``pair``: the headers-only pair,
    or the rewriting proxy against the relay with one regex pass), sampled; where the CPU
    goes."""
    mine_name, floor_name = pair
    starters = ((mine_name, start_proxy), (floor_name, start_minimal))
    stacks_file = {name: run.tmp / f"{name}-stacks.json" for name, _ in starters}
    code = revision()  # the tree may have moved on since the measured servers started
    targets = {name: starter(run, up, name=f"{name}-sampled", sampler=stacks_file[name])
               for name, starter in starters}  # fmt: skip
    code = "the same code" if code == run.revision else f"code {code} (not the measured rows')"
    lines = [
        f"In-process CPU-time sampler (ITIMER_PROF every {SAMPLE_S * 1e3:g} ms of CPU: time "
        f"taken by other processes is not counted) on second instances of {mine_name} and "
        f"{floor_name}, loaded like the measured ones. µs/req = share of "
        "samples × the instance's CPU per request. Collapsed stacks (speedscope.app, "
        f"flamegraph.pl): `bench/results/relay-{stamp}-<target>-<page>.collapsed.txt`. "
        f"Started on {code}.",
    ]
    for page in pages:
        got = {}
        for name, target in targets.items():
            got[name] = sample(run, target, page, stacks_file[name])
            counted = collections.Counter(";".join(st) for st in got[name][0])
            collapsed = RESULTS / f"relay-{stamp}-{name}-{page.name}.collapsed.txt"
            collapsed.write_text("".join(f"{st} {n}\n" for st, n in counted.items()))
        lines += ["", f"### {page.name}: {mine_name} against {floor_name}", ""]
        for name, (stacks, result) in got.items():
            lines += [f"**{name}**: {len(stacks)} samples, {result.rps:,.0f} req/s at "
                      f"{result.cpu_us:,.0f} µs CPU/request.", ""]  # fmt: skip
            if page is pages[0]:
                lines += [*hotspots(stacks, result.cpu_us, mine=name == mine_name), ""]
        (mine, mine_r), (floor, floor_r) = got[mine_name], got[floor_name]
        lines += difference(mine, mine_r.cpu_us, floor, floor_r.cpu_us, pair)
    return lines


def hotspots(stacks: list[list[str]], cpu_us: float, *, mine: bool, top: int = 25) -> list[str]:
    """Self time with the usual caller; for the proxy also its own functions, inclusive."""
    own, total = collections.Counter[str](), collections.Counter[str]()
    callers = collections.Counter[tuple[str, str]]()
    for stack in stacks:
        own[stack[-1]] += 1
        total.update(set(stack))
        callers[(stack[-1], stack[-2] if len(stack) > 1 else "-")] += 1
    n = max(len(stacks), 1)

    def cells(count: int) -> str:
        return f"| {100 * count / n:.1f} | {cpu_us * count / n:,.0f} |"

    lines = ["| self % | µs/req | function | most frequent caller |", "| ---: | ---: | --- | --- |"]
    for fn, count in own.most_common(top if mine else 12):
        caller = max((c for c in callers.items() if c[0][0] == fn), key=lambda c: c[1])[0][1]
        lines.append(f"{cells(count)} `{fn}` | `{caller}` |")
    if mine:
        ours = [(f, c) for f, c in total.most_common() if "(proxy/" in f]
        lines += ["", "The proxy's own functions, inclusive:", ""]
        lines += ["| incl. % | µs/req | function |", "| ---: | ---: | --- |"]
        lines += [f"{cells(c)} `{f}` |" for f, c in ours[:top]]
    return lines


def inclusive_us(stacks: list[list[str]], cpu_us: float) -> dict[str, float]:
    """µs per request spent in each function, callees included."""
    total = collections.Counter[str]()
    for stack in stacks:
        total.update(set(stack))
    return {f: cpu_us * c / max(len(stacks), 1) for f, c in total.items()}


def difference(
    mine: list[list[str]],
    mine_us: float,
    floor: list[list[str]],
    floor_us: float,
    pair: tuple[str, str] = PLAIN_PAIR,
    top: int = 30,
) -> list[str]:
    """Where the proxy spends more than the minimal relay: inclusive µs/req, side by side."""
    a, b = inclusive_us(mine, mine_us), inclusive_us(floor, floor_us)
    below_main = [f for f in a if a[f] < 0.9 * mine_us]  # drop the event loop's own frames
    rows = sorted(below_main, key=lambda f: a[f] - b.get(f, 0.0), reverse=True)[:top]
    lines = [f"**Extra CPU per request, {pair[0]} − {pair[1]} (inclusive):**", ""]
    lines += [
        f"| function | {pair[0]} µs/req | {pair[1]} µs/req | extra |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| `{f}` | {a[f]:,.0f} | {b.get(f, 0.0):,.0f} | {a[f] - b.get(f, 0.0):,.0f} |"
              for f in rows]  # fmt: skip
    return lines


# ---------------------------------------------------------------- report


def fmt_row(r: Result, base: dict[tuple[str, str, int], Result]) -> str:
    """One table row; ratios against the minimal relay and mitmproxy when measured."""
    minimal = base.get(("minimal", r.page, r.connections))
    mitm = base.get(("mitmproxy", r.page, r.connections))
    spread = f"{r.rps_min:,.0f}–{r.rps_max:,.0f}" if isinstance(r, Median) else "–"
    cells = [
        r.target, r.page, str(r.connections), f"{r.rps:,.0f}", spread,
        f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
        f"{r.rps / minimal.rps:.2f}" if minimal else "–",
        f"{r.rps / mitm.rps:.1f}" if mitm else "–",
        f"{r.p99_ms / minimal.p99_ms:.2f}" if minimal else "–",
        f"{r.cpu_us:,.0f}",
        f"{minimal.cpu_us / r.cpu_us:.2f}" if minimal else "–",
        "–" if math.isnan(r.others) else f"{100 * r.others:.0f}%", str(r.errors),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


TABLE_HEAD: Final = (
    "| target | page | conns | req/s | req/s min–max | p50 ms | p99 ms | req/s × minimal "
    "| req/s × mitmproxy | p99 ÷ minimal's | server CPU µs/req | CPU: minimal's ÷ this "
    "| CPU 0 busy outside the server | errors |\n| --- | --- |" + " ---: |" * 12
)


def verdicts(base: dict[tuple[str, str, int], Result], c: int) -> list[str]:
    """The issue's throughput and latency targets for the 2 KB page."""
    got = [base.get((t, "2k-html", c)) for t in ("clamshell", "minimal", "mitmproxy")]
    if None in got:
        return ["- targets not evaluated (a row is missing)"]
    me, minimal, mitm = got  # type: ignore[misc]
    share, times, p99 = me.rps / minimal.rps, me.rps / mitm.rps, me.p99_ms / minimal.p99_ms
    cpu_share, cpu_times = minimal.cpu_us / me.cpu_us, mitm.cpu_us / me.cpu_us
    where = f"(2 KB, {c} conns)"
    return [
        f"- req/s ≥ 75% of the minimal relay's {where}: {share:.0%} — {met(share >= 0.75)} "
        f"(by CPU per request, which contention barely moves: {cpu_share:.0%})",
        f"- req/s ≥ 6× mitmproxy's {where}: {times:.1f}× — {met(times >= 6)} "
        f"(by CPU per request: {cpu_times:.1f}×)",
        f"- p99 ≤ 1.5× the minimal relay's {where}: {p99:.2f}× — {met(p99 <= 1.5)}",
    ]


def rewrite_verdicts(base: dict[tuple[str, str, int], Result], c: int) -> list[str]:
    """Issue 19's targets: the link-dense page rewritten, and CPU per pass-through request."""
    lines = []
    me, floor = base.get(("clamshell+rewrite", LINKS, c)), base.get(("minimal+regex", LINKS, c))
    if me and floor:
        share, cpu_share = me.rps / floor.rps, floor.cpu_us / me.cpu_us
        lines.append(
            f"- {LINKS} rewritten ({c} conns): req/s ≥ 1.0× the minimal relay + one regex "
            f"pass: {share:.2f}× — {met(share >= 1.0)} (by CPU per request: {cpu_share:.2f}×)"
        )
    pywb = base.get(("minimal+pywb", LINKS, c))
    if me and pywb:
        times, cpu_times = me.rps / pywb.rps, pywb.cpu_us / me.cpu_us
        lines.append(
            f"- {LINKS} rewritten ({c} conns): ≥ 20× the minimal relay + pywb's rewriter: "
            f"{times:.1f}× — {met(times >= 20)} (by CPU per request: {cpu_times:.1f}×)"
        )
    plain = base.get(("clamshell", "2k-html", c))
    if plain:
        lines.append(
            f"- 2 KB pass-through: ≤ 130 µs CPU per request: {plain.cpu_us:,.0f} µs — "
            f"{met(plain.cpu_us <= 130)} (absolute: depends on the machine's load)"
        )
    return lines or ["- targets not evaluated (rows missing)"]


def met(ok: bool) -> str:
    """The verdict word."""
    return "met" if ok else "**MISSED**"


def environment(run: Run) -> list[str]:
    """Machine facts that change what the figures mean."""
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), "?")  # fmt: skip
    pinning = "NOT pinned (taskset unavailable or < 2 CPUs): noisier figures"
    if run.pinned:
        pinning = (f"server under test on CPU {SERVER_CPU}; wrk and the upstream nginx on CPU "
                   f"{LOAD_CPU} (direct row: the upstream on CPU {SERVER_CPU})")  # fmt: skip
    rounds = f"median of {run.args.rounds} interleaved rounds" if run.args.rounds > 1 else "1 round"
    return [
        f"- {os.cpu_count()} CPUs ({model}); load average (1 min) {run.loadavg} at start, "
        f"{loadavg()} at the end",
        f"- code: {run.revision} (at the start of the run)",
        f"- pinning: {pinning}",
        f"- wrk -t1, {run.args.duration} s per row ({rounds}) after {run.args.warmup} s of "
        "warm-up; upstream: nginx serving static files (keep-alive from every relay)",
    ]


def loadavg() -> str:
    """The 1-minute load average."""
    return Path("/proc/loadavg").read_text().split()[0]


def revision() -> str:
    """The commit, and how many files under proxy/ differ from it (read-only git)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "proxy"], capture_output=True,
                           text=True)  # fmt: skip
    if head.returncode != 0:
        return "unknown (no git)"
    changed = len(dirty.stdout.splitlines())
    return head.stdout.strip() + (f" + {changed} changed files under proxy/" if changed else "")


def report(run: Run, results: list[Result], memory: list[str], prof: list[str]) -> str:
    """The Markdown report."""
    base = {(r.target, r.page, r.connections): r for r in results}
    parts = [f"# Relay benchmark, {datetime.now():%Y-%m-%d %H:%M}", "", *environment(run), ""]
    parts += [TABLE_HEAD, *(fmt_row(r, base) for r in results), ""]
    failed = [f"{r.target} {r.page} ({r.errors})" for r in results if r.errors]
    if failed:
        run.notes.append("rows with errors (non-2xx or socket errors): " + ", ".join(failed))
    c = run.args.connection_counts[0]
    parts += ["## Targets (issue 4)", *verdicts(base, c)]
    parts += ["", "## Targets (issue 19)", *rewrite_verdicts(base, c), "", "## Memory", *memory]
    parts += ["", *(f"Note: {n}" for n in dict.fromkeys(run.notes))]
    if prof:
        parts += ["", "## Profiles (2 KB page, 64 connections)", "", *prof]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- main


def require_tools() -> None:
    """wrk, nginx and mitmdump, or a clear error."""
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install -y wrk nginx-light")
    if not (BIN / "mitmdump").exists():
        raise BenchError(f"no {BIN / 'mitmdump'}: pip install -e '.[review]'")


def bench(run: Run, stamp: str) -> str:
    """Start the upstream and every target, measure in rounds, then memory; the report."""
    upstream, all_pages = start_upstream(run)
    up = upstream.port
    starters: dict[str, Callable[[], Target]] = {
        "direct": lambda: upstream,
        "minimal": lambda: start_minimal(run, up),
        "minimal+regex": lambda: start_minimal(run, up, name="minimal+regex"),
        "minimal+pywb": lambda: start_minimal(run, up, name="minimal+pywb"),
        "clamshell": lambda: start_proxy(run, up),
        "clamshell+rewrite": lambda: start_proxy(run, up, name="clamshell+rewrite"),
        "clamshell+uvloop": lambda: start_proxy(run, up, name="clamshell+uvloop"),
        "mitmproxy": lambda: start_mitmproxy(run, up),
        "nginx": lambda: start_nginx_relay(run, up),
    }
    optional = [] if importlib.util.find_spec("uvloop") else ["clamshell+uvloop"]
    optional += [] if run.args.pywb_python else ["minimal+pywb"]
    wanted = run.args.targets or [name for name in starters if name not in optional]
    unknown = [name for name in wanted if name not in starters]
    if unknown:
        raise BenchError(
            f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(starters)}"
        )
    if "minimal+pywb" in wanted and not run.args.pywb_python:
        raise BenchError("the minimal+pywb row needs --pywb-python (a virtualenv with pywb)")
    targets = {name: starters[name]() for name in starters if name in wanted}
    pages = [p for p in all_pages if not run.args.pages or p.name in run.args.pages]
    results = rounds(run, list(targets.values()), pages)
    memory = []
    if run.args.sessions and "clamshell" in targets:
        proxy = targets["clamshell"]
        memory = live_sessions(run, proxy.pids()[0], proxy.port)
        memory += in_process_sessions(run.args.sessions)
    if run.args.rewritten_pages:
        links = next(p for p in all_pages if p.name == LINKS)
        memory += rewrite_memory(run, up, links, run.args.rewritten_pages)
    prof = profiles(run, up, pages, stamp) if run.args.profile else []
    linked = [p for p in pages if p.name == LINKS]
    if run.args.profile and linked and set(REWRITE_PAIR) <= set(targets):
        prof += ["", *profiles(run, up, linked, stamp, REWRITE_PAIR)]
    return report(run, median_rows(results), memory, prof)


def rewrite_memory(run: Run, up: int, page: Page, n: int) -> list[str]:
    """RSS of a fresh rewriting proxy with one session: after start, then after 1,000 and
    ``n`` rewritten pages (one keep-alive connection), current and peak (VmHWM)."""
    target = start_proxy(run, up, name="fresh+rewrite")
    pid = target.pids()[0]
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    headers = {"Host": target.host_for(page), "Cookie": target.cookie or ""}
    figures = [f"after start {rss_mib(pid):.1f} MiB (peak {hwm_mib(pid):.1f})"]
    done, started = 0, time.monotonic()
    try:
        for checkpoint in sorted({min(1000, n), n}):
            for _ in range(checkpoint - done):
                conn.request("GET", page.path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise BenchError(f"rewritten page: status {response.status}")
            done = checkpoint
            figures.append(f"after {done:,} pages {rss_mib(pid):.1f} MiB (peak {hwm_mib(pid):.1f})")
    finally:
        conn.close()
    seconds = time.monotonic() - started
    return [f"- fresh rewriting proxy, one session, the {page.name} page over one connection "
            f"({seconds:.0f} s): " + "; ".join(figures)]  # fmt: skip


def hwm_mib(pid: int) -> float:
    """Peak resident set size of a process (VmHWM), from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Options; ``--quick`` is a short smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per row (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--single", action="store_true", help="also measure at 1 connection")
    parser.add_argument("--rounds", type=int, default=3, help="passes over all rows (median)")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s rows, 1,000 sessions")
    parser.add_argument("--profile", action="store_true", help="profile the proxy (extra runs)")
    parser.add_argument("--sessions", type=int, default=10_000, help="live sessions (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    parser.add_argument("--targets", type=names, default=[], help="comma-separated (all)")
    parser.add_argument("--pages", type=names, default=[], help="comma-separated (all)")
    pages_help = "100 KB pages through clamshell+rewrite for memory (0: skip)"
    parser.add_argument("--rewritten-pages", type=int, default=10_000, help=pages_help)
    pywb_help = "a Python with pywb and aiohttp: adds the minimal+pywb row"
    parser.add_argument("--pywb-python", default="", metavar="PATH", help=pywb_help)
    args = parser.parse_args(argv)
    args.warmup = 2
    if args.quick:
        args.duration, args.warmup, args.rounds = 3, 1, 1
        args.sessions = min(args.sessions, 1000)
        args.rewritten_pages = min(args.rewritten_pages, 1000)
    args.connection_counts = [args.connections, *([1] if args.single else [])]
    return args


def names(text: str) -> list[str]:
    """``a,b`` → ``["a", "b"]``."""
    return [name.strip() for name in text.split(",") if name.strip()]


@contextlib.contextmanager
def terminated_cleanly() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every child is still killed."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def scratch(keep: bool) -> Iterator[Path]:
    """A temporary folder that nginx workers (user nobody under root) can read."""
    tmp = Path(tempfile.mkdtemp(prefix="clamshell-bench-"))
    tmp.chmod(0o755)
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp} (configs, logs)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, write it under bench/results/."""
    args = parse_args(argv)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        require_tools()
        RESULTS.mkdir(exist_ok=True)
        with (
            terminated_cleanly(),
            scratch(args.keep) as tmp,
            contextlib.ExitStack() as stack,  # exits first: children die before tmp goes
        ):
            run = Run(args, tmp, pinning_works(), stack)
            text = bench(run, stamp)
            (RESULTS / f"relay-{stamp}.log").write_text("\n".join(run.raw_log))
    except BenchError as exc:
        print(f"bench.relay: {exc}", file=sys.stderr)
        return 1
    out = RESULTS / f"relay-{stamp}.md"
    out.write_text(text)
    print(text + f"\nwritten to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [SAMPLER_FLAG]:  # OUT MODULE -- ARGS
        sys.exit(sampled_main(Path(sys.argv[2]), sys.argv[3], sys.argv[5:]))
    sys.exit(main())
