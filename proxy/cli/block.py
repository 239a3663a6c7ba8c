"""``patrons block``, ``patrons blocks``, ``patrons unblock``: the local block list (#18).

Contract: ``patrons block --vendor ID --pseudonym P --date D [--case C] [--reason R]
[--expires DAY] [--by NAME]`` answers a vendor's abuse report by putting the card behind the
pseudonym on the block list (stores/blocks.py), which no ``patrons import`` undoes. With the
server running, the command asks its admin API (so the live sessions end
at once); with the server stopped, it works on the files directly. Either way it prints only
the member library, a case number and how many sessions ended — never a barcode or name —
and the patron sees "contact your library" at the next login. Exit 0 when a card was
blocked, 1 when the report cannot be traced (and why).
``patrons blocks`` lists the blocks in force (hash prefix, library, case, reason, who, when,
expiry — never a card number) after deleting expired ones; ``patrons unblock --case C`` or
``--hash PREFIX`` lifts one. Both work on the file directly (the server reads it per login).
Not here: the tracing itself (abuse_report.py), the refusal at login (core/login.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from proxy.abuse_report import (
    REASON_MAX,
    BlockDetails,
    CannotTrace,
    block_by_pseudonym,
    block_expiry,
)
from proxy.core.settings import Settings
from proxy.rules_loader import load_rules
from proxy.stores.epochkeys import EpochKeyStore
from proxy.stores.patrons import PatronRegistry
from proxy.stores.redis_blocks import open_block_list
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
    parser.add_argument("--case", help="your case number (default: a new CASE-… number)")
    parser.add_argument(
        "--reason", default="", type=reason_text, help="a short note (never a name or card)"
    )
    parser.add_argument(
        "--expires",
        type=date.fromisoformat,
        help="the last day of the block (YYYY-MM-DD, UTC; default: until unblocked)",
    )
    parser.add_argument("--by", default="cli", help="who blocks (a staff name; default: cli)")


def reason_text(text: str) -> str:
    """``--reason``: at most REASON_MAX characters."""
    if len(text) > REASON_MAX:
        raise argparse.ArgumentTypeError(f"at most {REASON_MAX} characters")
    return text


def add_block_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``block``, ``blocks`` and ``unblock`` to the ``patrons`` subcommands."""
    add_block_arguments(
        commands.add_parser(
            "block", help="block the card behind a pseudonym a vendor reported (abuse report)"
        )
    )
    commands.add_parser("blocks", help="list the local block list (no card numbers)")
    unblock = commands.add_parser("unblock", help="lift a block by case number or hash prefix")
    which = unblock.add_mutually_exclusive_group(required=True)
    which.add_argument("--case", help="the case number of the block")
    which.add_argument("--hash", help="the hash prefix `patrons blocks` shows")


def run_block(args: argparse.Namespace, settings: Settings) -> int:
    """Block through the running server if there is one, else on the files."""
    body = {"vendor": args.vendor, "pseudonym": args.pseudonym, "day": args.date.isoformat()}
    body |= {"reason": args.reason, "by": args.by}
    body |= {"case": args.case} if args.case else {}
    body |= {"expires": args.expires.isoformat()} if args.expires else {}
    try:
        answer = via_admin_api(settings, body)
    except ConnectionRefusedError:
        details = BlockDetails(
            now=datetime.now(UTC),
            by=args.by,
            case=args.case,
            reason=args.reason,
            expires=block_expiry(args.expires),
        )
        answer = asyncio.run(offline(settings, args.vendor, args.pseudonym, args.date, details))
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


async def offline(
    settings: Settings,
    vendor: str,
    reported: str,
    day: date,
    details: BlockDetails | None = None,
) -> dict[str, Any]:
    """The same flow on the files, for a stopped server."""
    data = Path(settings.data_dir)
    index = load_rules(settings.rules_dir, [lib.code for lib in settings.libraries]).index
    registry, epochs, blocks = PatronRegistry.open(data), EpochKeyStore.open(data), None
    try:
        blocks = open_block_list(data, settings.state)
        result = block_by_pseudonym(
            registry=registry,
            epochs=epochs,
            blocks=blocks,
            index=index,
            vendor_id=vendor,
            reported=reported,
            day=day,
            details=details or BlockDetails(now=datetime.now(UTC)),
        )
    except CannotTrace as exc:
        return {"error": exc.public_message}
    finally:
        registry.close()
        epochs.close()
        if blocks is not None:
            blocks.close()
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


def run_blocks(_args: argparse.Namespace, settings: Settings) -> int:
    """``patrons blocks``: the blocks in force, newest first (expired ones are deleted)."""
    blocks = open_block_list(Path(settings.data_dir), settings.state)
    try:
        blocks.drop_expired(datetime.now(UTC))
        listed = blocks.list_all()
    finally:
        blocks.close()
    if not listed:
        print("No card is blocked.")
        return 0
    print("\t".join(BLOCKS_HEAD))
    for b in listed:
        until = b.expires.isoformat(timespec="minutes") if b.expires else "until lifted"
        when = b.created.isoformat(timespec="minutes")
        print("\t".join((b.prefix, b.library, b.case, b.reason, b.by, when, until)))
    return 0


def run_unblock(args: argparse.Namespace, settings: Settings) -> int:
    """``patrons unblock --case C | --hash PREFIX``: exit 0 when a block was lifted."""
    blocks = open_block_list(Path(settings.data_dir), settings.state)
    try:
        lifted = blocks.lift_case(args.case) if args.case else blocks.lift_prefix(args.hash)
    finally:
        blocks.close()
    if not lifted:
        print("patrons unblock: no block matches", file=sys.stderr)
        return 1
    print(f"Lifted {lifted} block(s); the card can log in again if its ILS status allows.")
    return 0


def with_block(
    settings: Settings, barcode: str, lines: list[str], ok: bool
) -> tuple[list[str], bool]:
    """``patrons check``'s answer, corrected for the block list: a listed card cannot log in."""
    blocks = open_block_list(Path(settings.data_dir), settings.state)
    try:
        card, now = blocks.card_hash(barcode), datetime.now(UTC)
        found = [b for b in blocks.list_all() if b.card_hash == card and b.active(now)]
    finally:
        blocks.close()
    if not found:
        return lines, ok
    until = found[0].expires.isoformat(timespec="minutes") if found[0].expires else "lifted"
    note = f"remote login: no - on the local block list (case {found[0].case}, until {until})"
    return [*(line for line in lines if not line.startswith("remote login:")), note], False


BLOCKS_HEAD: Final = ("hash", "library", "case", "reason", "by", "since (UTC)", "until (UTC)")
# the ``patrons`` subcommands this module runs (proxy/cli/patrons.py dispatches on them)
BLOCK_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, Settings], int]]] = {
    "block": run_block,
    "blocks": run_blocks,
    "unblock": run_unblock,
}
