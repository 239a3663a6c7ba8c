"""Instructions per relayed request, counted by valgrind: a figure the machine's load cannot move.

Run: ``python -m bench.relay_instructions [--requests 500] [--tree DIR …] [--minimal]
[--uvloop] [--rewrite]`` from the repository root. Needs ``valgrind`` (Debian: ``apt-get install -y
valgrind``) and ``nginx``.

Contract: bench/relay.py's upstream (nginx, the demo vendor's 2 KB page) and, for each
``--tree`` (default: this repository; another checkout, e.g. ``git worktree add /tmp/main
main``, gives a before/after), its proxy started as bench/relay.py starts it, with one patron
logged in, under ``valgrind --tool=callgrind --instr-atstart=no``; 50 warm-up requests over one
keep-alive connection, then callgrind's instrumentation is switched on (``callgrind_control -i
on``) for ``--requests`` more and the user-space instructions they took are divided by their
number. ``--minimal`` adds bench/minimal_relay.py, the floor; ``--uvloop`` runs the proxy on
uvloop (it must be importable). ``--rewrite`` relays the 100 KB link-dense page instead,
rewritten: the proxy with the demo rule's rewriting on, the minimal relay with its one regex
pass (issue 19's through-proxy comparison, load-free). Kernel time (the socket calls) is not
counted, so this complements bench/relay.py's CPU µs per request rather than replacing it;
repeated runs agree within ~0.5%, where CPU time on this shared machine moved by ±10% between
rounds.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import bench.relay as br

WARM_UP = 50


def wait_port(port: int, seconds: float = 300) -> None:
    """Until the port accepts connections (valgrind starts Python ~20× slower)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.5)
    raise br.BenchError(f"nothing listens on {port} after {seconds:.0f} s")


def total_instructions(out: Path) -> int:
    """The largest ``summary:``/``totals:`` figure of callgrind's dump files."""
    found = 0
    for dump in out.parent.glob(out.name + "*"):
        for line in dump.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                found = max(found, int(line.split()[1]))
    return found


def count(run: br.Run, up: int, page: br.Page, label: str, tree: Path | None, n: int) -> str:
    """One target under callgrind: its table row, instructions per request."""
    name = f"target-{len(list(run.tmp.glob('target-*.log')))}"  # files in the temp dir
    port, out = br.free_port(), run.tmp / f"{name}.callgrind"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    cookie, host, rewrite = "", page.vendor_host, bool(run.args.rewrite)
    if tree is None:
        argv = [sys.executable, "-m", "bench.minimal_relay", "--port", str(port)]
        argv += ["--upstream", f"http://127.0.0.1:{up}"]
        argv += ["--rewrite-regex", f".proxy.localhost:{port}"] if rewrite else []
    else:
        br.ROOT = tree  # start() runs the proxy from this checkout
        config = br.write_proxy_config(run.tmp / name, port, up, rewrite=rewrite)
        br.import_card(run, config)
        main = ["-c", br.UVLOOP_MAIN] if run.args.uvloop else ["run_proxy.py"]
        argv = [sys.executable, *main, "--config", str(config), "--log-format", "json", "serve"]
    proc = br.start(run, name, [*valgrind, *argv], cpu=br.SERVER_CPU)
    wait_port(port)
    if tree is not None:
        cookie = br.log_in(port, br.csrf_pair(port))
        host = f"{page.vendor_host.replace('.', '-')}.proxy.localhost:{port}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(k: int) -> None:
        for _ in range(k):
            conn.request("GET", page.path, headers={"Host": host, "Cookie": cookie})
            response = conn.getresponse()
            body = response.read()
            same = body == page.body
            if response.status != 200 or same == rewrite:  # rewritten: it must have changed
                raise br.BenchError(f"{label}: status {response.status} or other bytes")

    control = ["callgrind_control"]
    get(WARM_UP)
    subprocess.run([*control, "-i", "on", str(proc.pid)], capture_output=True, check=True)
    get(n)
    subprocess.run([*control, "-d", str(proc.pid)], capture_output=True, check=True)
    subprocess.run([*control, "-i", "off", str(proc.pid)], capture_output=True, check=True)
    conn.close()
    return f"| {label} | {total_instructions(out) / n:,.0f} |"


def main(argv: Sequence[str] | None = None) -> int:
    """Count every target in turn; print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=500, help="counted requests (500)")
    parser.add_argument("--tree", type=Path, action="append", help="a checkout (repeatable)")
    parser.add_argument("--minimal", action="store_true", help="also the minimal relay")
    parser.add_argument("--uvloop", action="store_true", help="run the proxy on uvloop")
    parser.add_argument("--rewrite", action="store_true", help="the link-dense page, rewritten")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("nginx") is None:
        print("bench.relay_instructions: needs valgrind and nginx", file=sys.stderr)
        return 1
    trees = [t.resolve() for t in args.tree or [br.ROOT]]
    what = f"{br.LINKS} page rewritten" if args.rewrite else "2 KB page"
    lines = [f"| target ({what}, one connection) | instructions per request |", "| --- | ---: |"]
    tmp = Path(tempfile.mkdtemp(prefix="clamshell-instr-"))
    tmp.chmod(0o755)
    try:
        with contextlib.ExitStack() as stack:
            run = br.Run(br.parse_args(["--sessions", "0"]), tmp, False, stack)
            run.args.uvloop, run.args.rewrite = args.uvloop, args.rewrite
            upstream, pages = br.start_upstream(run)
            page = next(p for p in pages if p.name == br.LINKS) if args.rewrite else pages[0]
            for tree in trees:
                label = f"clamshell ({tree})" + (" on uvloop" if args.uvloop else "")
                lines.append(count(run, upstream.port, page, label, tree, args.requests))
            if args.minimal:
                label = "minimal + one regex pass" if args.rewrite else "minimal"
                lines.append(count(run, upstream.port, page, label, None, args.requests))
    except br.BenchError as exc:
        print(f"bench.relay_instructions: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
