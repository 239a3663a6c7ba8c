"""``python run_proxy.py review …``: run a vendor review, or re-analyse a saved capture.

Contract: ``add_review_parser(commands)`` adds the ``review`` subcommand to the main parser's
subparsers; ``run_review(args, settings)`` runs it and returns the exit code: 0 when the
report was written and every verdict passed (or had no data), 1 when a verdict failed or
review mode could not start, 2 for usage errors.
- ``review --vendor ID|all [--out DIR] [--duration S] [--web] [--certs DIR]``: serve the proxy
  with its upstream traffic through the review hop; write the report on Ctrl-C or after S s.
- ``review --analyze FLOWS.mitm [--vendor ID] [--out DIR]``: JSON+HTML from a saved capture.
The review card comes from proxy.yaml ``review:``; ``--card/--pin/--name/--email/--library``
override it (e.g. before the config has one). Values are never printed.
mitmproxy is imported only when the command runs (it is the optional ``review`` extra).
Not here: the hop and the proxy (proxy/review/runner.py), the report (proxy/review/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.cli.startup import configured
from proxy.core.settings import ReviewCard, Settings
from proxy.errors import ClamshellError


def add_review_parser(commands: Any) -> None:
    """Add ``review`` to the main parser's subcommands (``argparse._SubParsersAction``)."""
    review = commands.add_parser(
        "review", help="vendor review: record what a vendor receives and whom its pages call"
    )
    review.add_argument("--vendor", default=None, help="vendor rule id, or 'all'")
    review.add_argument("--out", default="./reviews", help="report directory (default ./reviews)")
    review.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    review.add_argument("--web", action="store_true", help="run mitmweb's UI (127.0.0.1 only)")
    review.add_argument("--web-port", type=int, default=8082, help="mitmweb port (default 8082)")
    review.add_argument("--certs", default="certs/review", help="review CA dir (certs/review)")
    review.add_argument("--analyze", metavar="FLOWS.mitm", help="re-analyse a saved capture")
    card = review.add_argument_group("review card (default: proxy.yaml `review:`)")
    for flag in ("card", "pin", "name", "email", "library"):
        card.add_argument(f"--{flag}", default=None)
    card.add_argument(
        "--client-ip",
        action="append",
        default=[],
        help="the reviewer's address as the proxy sees it, also a canary (repeatable)",
    )


def review_card(args: argparse.Namespace, settings: Settings) -> ReviewCard:
    """The review card: proxy.yaml ``review:`` with command-line values on top."""
    base = settings.review.model_dump() if settings.review is not None else {}
    given = {k: getattr(args, k) for k in ("card", "pin", "name", "email", "library")}
    merged = {**base, **{k: v for k, v in given.items() if v is not None}}
    if not merged.get("card") or not merged.get("pin"):
        raise ClamshellError(
            "no review card: add `review: {card:, pin:}` to proxy.yaml or --card/--pin"
        )
    return ReviewCard.model_validate(merged)


def review_command(args: argparse.Namespace) -> int:
    """``review …`` with the config's settings."""
    return run_review(args, configured(args))


def run_review(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``review`` (see the module docstring); returns the exit code."""
    try:
        if args.analyze:
            return analyze(args, settings)
        return live(args, settings)
    except ClamshellError as exc:
        print(f"review: {exc}", file=sys.stderr)
        return 1


def live(args: argparse.Namespace, settings: Settings) -> int:
    """``review --vendor ID``: serve, record, report."""
    from proxy.review.runner import ReviewPlan, review_forever

    if not args.vendor:
        print("review: --vendor ID|all is required (or --analyze FLOWS.mitm)", file=sys.stderr)
        return 2
    plan = ReviewPlan(
        vendor=args.vendor,
        out_dir=Path(args.out),
        certs_dir=Path(args.certs),
        card=review_card(args, settings),
        client_ips=tuple(args.client_ip),
        web=args.web,
        web_port=args.web_port,
    )
    files = asyncio.run(review_forever(settings, plan, args.duration))
    return summarize(files.json, [files.json, files.html, files.mitm])


def analyze(args: argparse.Namespace, settings: Settings) -> int:
    """``review --analyze FLOWS.mitm``: the same detectors over a saved capture."""
    from mitmproxy import io
    from mitmproxy.http import HTTPFlow

    from proxy.review.addon import observe
    from proxy.review.report import build_report, write_reports
    from proxy.rulebook import Rulebook

    source = Path(args.analyze)
    with source.open("rb") as fh:
        flows = [f for f in io.FlowReader(fh).stream() if isinstance(f, HTTPFlow)]
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    card = review_card(args, settings)
    canaries = _canaries(card, args, settings)
    report = build_report(
        [observe(f) for f in flows],
        vendor=args.vendor or "all",
        index=book.current.index,
        canaries=canaries,
        generated_at=datetime.now(UTC),
        capture={"source": source.name},
    )
    out = Path(args.out) if args.out != "./reviews" else source.parent
    files = write_reports(report, out)
    return summarize(files.json, [files.json, files.html])


def _canaries(card: ReviewCard, args: argparse.Namespace, settings: Settings) -> Any:
    from proxy.core.review.canaries import Canaries

    return Canaries.build(
        card=card.card,
        pin=card.pin,
        name=card.name,
        email=card.email,
        client_ips=args.client_ip,
        proxy_host=settings.proxy_host,
    )


def summarize(json_path: Path, paths: list[Path | None]) -> int:
    """Print the verdicts and the files; 1 when any verdict failed."""
    import json

    report = json.loads(json_path.read_text("utf-8"))
    for inv, verdict in report["verdicts"].items():
        print(f"{inv}: {verdict['result'].upper():8} {verdict['title']}")
    for path in paths:
        if path is not None:
            print(f"  wrote {path}")
    failed = any(v["result"] == "fail" for v in report["verdicts"].values())
    return 1 if failed else 0
