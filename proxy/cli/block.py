"""``patrons block --vendor ID --pseudonym P --date D``: answer a vendor's abuse report.

Contract: with the server running, the command asks its admin API (so the live sessions end
at once); with the server stopped, it works on the files directly. Either way it prints only
the member library, a case number and how many sessions ended — never a barcode or name —
and the patron sees "contact your library" at the next login. Exit 0 when a card was
blocked, 1 when the report cannot be traced (and why).
Not here: the tracing itself (abuse_report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from proxy.abuse_report import CannotTrace, block_by_pseudonym
from proxy.core.settings import Settings
from proxy.rules_loader import load_rules
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.patrons import PatronRegistry
from proxy.stores.sessions import DB_FILE, SqliteSessionStore
from proxy.web.admin.auth import admin_token


def add_block_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``patrons block``."""
    parser.add_argument("--vendor", required=True, help="the vendor rule id the report is about")
    parser.add_argument("--pseudonym", required=True, help="the pseudonym the vendor reported")
    parser.add_argument(
        "--date",
        required=True,
        type=date.fromisoformat,
        help="the day the vendor saw it (YYYY-MM-DD, UTC)",
    )


def run_block(args: argparse.Namespace, settings: Settings) -> int:
    """Block through the running server if there is one, else on the files."""
    body = {"vendor": args.vendor, "pseudonym": args.pseudonym, "day": args.date.isoformat()}
    try:
        answer = via_admin_api(settings, body)
    except ConnectionRefusedError:
        answer = asyncio.run(offline(settings, args.vendor, args.pseudonym, args.date))
    if "error" in answer:
        print(f"patrons block: {answer['error']}", file=sys.stderr)
        return 1
    print(
        f"Blocked a card of library {answer['library']} (case {answer['case']}); "
        f"{answer['sessions_ended']} session(s) ended."
    )
    return 0


def via_admin_api(settings: Settings, body: dict[str, str]) -> dict[str, Any]:
    """POST to the local admin API; ConnectionRefusedError when no server listens."""
    listen = settings.admin.listen
    request = urllib.request.Request(
        f"http://{listen.host}:{listen.port}/api/patrons/block",
        method="POST",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {admin_token(settings)}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return dict(json.load(response))
    except urllib.error.HTTPError as exc:
        return {"error": json.load(exc).get("error", f"HTTP {exc.code}")}
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError) or not settings.admin.enabled:
            raise ConnectionRefusedError from None
        raise


async def offline(settings: Settings, vendor: str, reported: str, day: date) -> dict[str, Any]:
    """The same flow on the files, for a stopped server."""
    data = Path(settings.data_dir)
    index = load_rules(settings.rules_dir, [lib.code for lib in settings.libraries]).index
    registry, epochs = PatronRegistry.open(data), EpochKeyStore.open(data)
    try:
        result = block_by_pseudonym(
            registry=registry,
            epochs=epochs,
            index=index,
            vendor_id=vendor,
            reported=reported,
            day=day,
        )
    except CannotTrace as exc:
        return {"error": exc.public_message}
    finally:
        registry.close()
        epochs.close()
    sessions = await SqliteSessionStore.open(
        data / DB_FILE,
        timedelta(minutes=settings.sessions.idle_minutes),
        timedelta(hours=settings.sessions.lifetime_hours),
    )
    try:
        ended = await sessions.delete_by_patron(result.patron_key)
    finally:
        await sessions.close()
    return {"library": result.library, "case": result.case, "sessions_ended": ended}
