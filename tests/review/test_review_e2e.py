"""Review mode end to end on loopback: proxy → in-process mitmproxy review hop → demo vendor.

The reviewer logs in through the proxy with the review card, browses the demo vendor, and
the report must say P1/P2 pass for the shipped rules, P1 fail when a rule leaks the card in a
header, and name the demo tracker on the article page as a third party in JSON and HTML.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from proxy.core.cards import make_check_digit
from proxy.core.settings import ReviewCard, Settings
from proxy.demo.pages import TRACKER_HOST
from proxy.demo.patrons import seed
from proxy.demo.vendor import RequestRecorder, start_vendor
from proxy.review.report import ReportFiles
from proxy.review.runner import (
    ReviewHop,
    ReviewPlan,
    ensure_review_card,
    finish_review,
    make_addon,
    open_review_app,
)
from proxy.rulebook import Rulebook
from proxy.web.keys import REGISTRY
from tests.web.conftest import PORTAL, REPO, Clock, demo_settings
from tests.web.helpers import post_login, session_of

BODY = "2123477766655"
CARD = BODY + make_check_digit(BODY, "luhn")
REVIEW = ReviewCard(
    card=CARD,
    pin="Pin7ReviewZ",
    name="Quentin Reviewcanary",
    email="quentin.reviewcanary@example.org",
    library="MAIN",
    ptype="staff",
)
WWW = f"www-acmejournals-test.{PORTAL}"
BIGDB = f"search-bigdb-test.{PORTAL}"


@dataclass
class Reviewed:
    """The files of one review run and what the demo vendor received."""

    files: ReportFiles
    report: dict[str, Any]
    html: str
    vendor: RequestRecorder


ReviewRunner = Callable[..., Any]


@pytest.fixture
async def run_review(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[ReviewRunner]:
    """Run one review of acme through a real hop; ``rules_dir`` may replace the shipped rules."""
    cleanup: list[Any] = []

    async def review(rules_dir: Path | None = None) -> Reviewed:
        recorder = RequestRecorder()
        runner, port = await start_vendor("127.0.0.1", 0, recorder=recorder)
        cleanup.append(runner.cleanup)
        extra = {"rules_dir": str(rules_dir)} if rules_dir else {}
        settings = demo_settings(tmp_path, port, **extra)
        plan = ReviewPlan("acme", tmp_path / "out", tmp_path / "certs" / "review", REVIEW)
        book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
        addon = make_addon(settings, book, plan)
        hop = ReviewHop(addon, plan.certs_dir)
        await hop.start()
        cleanup.append(hop.stop)
        app = await open_review_app(settings, book, hop, clock=Clock())
        await browse(app, settings)
        files = finish_review(addon, plan, settings, Clock().now)
        report = json.loads(files.json.read_text("utf-8"))
        return Reviewed(files, report, files.html.read_text("utf-8"), recorder)

    async def browse(app: web.Application, settings: Settings) -> None:
        seed(app[REGISTRY], settings, Clock().now.date())
        assert ensure_review_card(app[REGISTRY], settings, REVIEW, Clock().now.date())
        client = await aiohttp_client(app)
        auth = session_of(await post_login(client, REVIEW.card, REVIEW.pin))
        for host, path in [(WWW, "/"), (WWW, "/article/4"), (WWW, "/search?q=tides"), (BIGDB, "/")]:
            resp = await client.get(path, headers={**auth, "Host": host})
            assert resp.status == 200, (host, path, resp.status)

    yield review
    for step in reversed(cleanup):
        await step()


def leaky_rules(tmp_path: Path) -> Path:
    """A copy of the shipped rules where acme's rule sends the review card in a header."""
    rules = tmp_path / "leaky_rules"
    shutil.copytree(REPO / "vendor_rules", rules)
    acme = rules / "acme.yaml"
    text = acme.read_text("utf-8")
    assert "    X-Consortium: demo\n" in text
    acme.write_text(text.replace("    X-Consortium: demo\n", f"    X-Leak: '{CARD}'\n"), "utf-8")
    return rules


async def test_clean_run_passes_p1_and_p2(run_review: ReviewRunner) -> None:
    """With the shipped demo rules the report says pass for P1, P2 and P6."""
    reviewed: Reviewed = await run_review()
    verdicts = reviewed.report["verdicts"]
    assert verdicts["P1"]["result"] == "pass", verdicts["P1"]
    assert verdicts["P2"]["result"] == "pass", verdicts["P2"]
    assert verdicts["P6"]["result"] == "pass", verdicts["P6"]
    assert reviewed.report["capture"]["flows"] >= 3
    assert "P1: PASS" in reviewed.html and "P2: PASS" in reviewed.html
    acme = next(p for p in reviewed.report["pseudonyms"] if p["vendor"] == "acme")
    assert acme["header"] == "X-Patron-Pseudonym" and acme["requests_without"] == 0


async def test_tracker_on_article_page_is_flagged(run_review: ReviewRunner) -> None:
    """The article page's tracker script is an unknown third party in JSON and HTML."""
    reviewed: Reviewed = await run_review()
    rows = {row["host"]: row for row in reviewed.report["third_parties"]}
    assert TRACKER_HOST in rows
    assert "script" in rows[TRACKER_HOST]["kinds"]
    assert rows[TRACKER_HOST]["known_tracker"] is False
    assert TRACKER_HOST in reviewed.html and "unknown third party" in reviewed.html


async def test_leaky_rule_fails_p1_in_both_reports(
    run_review: ReviewRunner, tmp_path: Path
) -> None:
    """A rule that sets a header to the card number fails P1, and no report holds the number."""
    reviewed: Reviewed = await run_review(leaky_rules(tmp_path))
    p1 = reviewed.report["verdicts"]["P1"]
    assert p1["result"] == "fail"
    assert any("[card number]" in r and "X-Leak" in r for r in p1["reasons"]), p1
    assert "P1: FAIL" in reviewed.html and "X-Leak" in reviewed.html
    assert reviewed.vendor.find(CARD), "the leak really reached the vendor"
    for text in (reviewed.files.json.read_text("utf-8"), reviewed.html):
        for secret in (CARD, REVIEW.pin, REVIEW.email, "Reviewcanary"):
            assert secret.lower() not in text.lower(), secret


async def test_capture_file_is_private_and_inside_out(run_review: ReviewRunner) -> None:
    """The .mitm capture sits next to the reports with mode 0600 and holds only acme flows."""
    from mitmproxy import io

    reviewed: Reviewed = await run_review()
    mitm = reviewed.files.mitm
    assert mitm is not None and mitm.parent == reviewed.files.json.parent
    assert stat.S_IMODE(mitm.stat().st_mode) == 0o600
    with mitm.open("rb") as fh:
        hosts = {f.request.pretty_host for f in io.FlowReader(fh).stream()}
    assert hosts and all(h.endswith("acmejournals.test") for h in hosts), hosts


async def test_analyze_saved_capture_gives_the_same_verdicts(
    run_review: ReviewRunner, tmp_path: Path
) -> None:
    """``review --analyze FLOWS.mitm`` re-runs the detectors and finds the same P1 failure."""
    import argparse

    from proxy.cli.review import add_review_parser
    from proxy.cli.review import run_review as run_review_command

    reviewed: Reviewed = await run_review(leaky_rules(tmp_path))
    parser = argparse.ArgumentParser()
    add_review_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "again"
    argv = ["review", "--analyze", str(reviewed.files.mitm), "--vendor", "acme", "--out", str(out)]
    args = parser.parse_args([*argv, "--card", CARD, "--pin", REVIEW.pin])
    settings = demo_settings(tmp_path, 1, rules_dir=str(tmp_path / "leaky_rules"))
    assert await asyncio.to_thread(run_review_command, args, settings) == 1
    (again,) = out.glob("review-acme-*.json")
    verdicts = json.loads(again.read_text("utf-8"))["verdicts"]
    assert verdicts["P1"]["reasons"] == reviewed.report["verdicts"]["P1"]["reasons"]
