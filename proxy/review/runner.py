"""Review mode: the proxy, with its upstream traffic through an in-process mitmproxy.

Contract: ``ReviewHop`` runs mitmproxy (``DumpMaster``, or ``WebMaster`` for ``--web``) in
this event loop, listening on 127.0.0.1 at a free port, with ``confdir`` = the review cert dir
so mitmproxy creates its CA (``mitmproxy-ca-cert.pem``) there on first use.
``open_review_app`` builds the normal proxy app whose one ``UpstreamClient`` tunnels its
pooled connections through the hop (CONNECT host:port, then TLS or plain HTTP inside, the
same bytes as production) and trusts that CA — only in review mode, never otherwise.
``ensure_review_card`` imports the review card into the registry when it is missing, and
``review_forever`` removes a card it imported when the review ends or fails to start.
``finish_review`` builds and writes the report from what the addon saw. ``review_forever``
is the command: serve until ``duration`` seconds pass or SIGINT/SIGTERM, then shut the
listener, the proxy and the hop down and write the report.
Every upstream flow passes the hop; only the reviewed vendor's flows are saved (addon.py).
Not here: detectors (core/review/), report layout (report.py), argument parsing
(proxy/cli/review.py).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from mitmproxy import options
from mitmproxy.tools.dump import DumpMaster

from proxy.core.review.canaries import Canaries
from proxy.core.settings import ReviewCard, Settings
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.review.addon import ReviewAddon
from proxy.review.report import ReportFiles, build_report, write_reports
from proxy.rulebook import Rulebook
from proxy.server import require_c_parser, start_site
from proxy.stores.patron_import import import_lines
from proxy.stores.patrons import PatronRegistry
from proxy.tasks import TaskOwner
from proxy.upstream.client import UpstreamClient
from proxy.upstream.guard import parse_overrides
from proxy.web.app import Overrides, build_app, utc_now
from proxy.web.keys import REGISTRY

CA_FILE: Final = "mitmproxy-ca-cert.pem"  # written by mitmproxy's tlsconfig addon in confdir
STREAM_LARGE_BODIES: Final = "1m"  # bodies above this are streamed by mitmproxy, never stored
START_TIMEOUT_S: Final = 15.0
LOOPBACK: Final = "127.0.0.1"
log = get_logger("review")


class ReviewError(ClamshellError):
    """Review mode cannot start (no review card, the card cannot be imported, …)."""


@dataclass(frozen=True, slots=True)
class ReviewPlan:
    """What to review and where the files go."""

    vendor: str  # a rule id, or "all"
    out_dir: Path
    certs_dir: Path
    card: ReviewCard
    client_ips: tuple[str, ...] = ()
    web: bool = False
    web_port: int = 8082

    def canaries(self, settings: Settings) -> Canaries:
        """The card's values, client addresses, the proxy's host and session cookie."""
        return Canaries.build(
            card=self.card.card,
            pin=self.card.pin,
            name=self.card.name,
            email=self.card.email,
            client_ips=self.client_ips,
            proxy_host=settings.proxy_host,
        )


class ReviewHop:
    """The in-process mitmproxy with the review addon, on loopback."""

    def __init__(
        self,
        addon: ReviewAddon,
        certs_dir: Path,
        *,
        web: bool = False,
        web_port: int = 8082,
        upstream_ca: Path | None = None,
    ) -> None:
        self.addon = addon
        self.certs_dir = certs_dir
        self.web = web
        self.web_port = web_port
        self.upstream_ca = upstream_ca  # trusted for vendors instead of the system's (tests)
        self.port = 0
        self._tasks = TaskOwner()
        self._master: Any = None  # mitmproxy's Master: its methods are untyped
        self._run: asyncio.Task[Any] | None = None

    @property
    def proxy_url(self) -> str:
        """What the UpstreamClient uses as its HTTP proxy (it CONNECTs through it)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The review CA certificate mitmproxy created under the cert dir."""
        return self.certs_dir / CA_FILE

    def _master_for(self) -> Any:
        opts = options.Options(confdir=str(self.certs_dir), listen_host=LOOPBACK, listen_port=0)
        master: Any
        if self.web:
            from mitmproxy.tools.web.master import WebMaster

            master = WebMaster(opts, with_termlog=False)
            master.options.update(web_host=LOOPBACK, web_port=self.web_port, web_open_browser=False)
        else:
            master = DumpMaster(opts, with_termlog=False, with_dumper=False)
        master.options.update(stream_large_bodies=STREAM_LARGE_BODIES, connection_strategy="lazy")
        if self.upstream_ca is not None:
            master.options.update(ssl_verify_upstream_trusted_ca=str(self.upstream_ca))
        master.addons.add(self.addon)
        return master

    async def start(self) -> None:
        """Start mitmproxy and wait until it listens (its CA exists by then)."""
        self.certs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._master = self._master_for()
        self._run = self._tasks.spawn(self._master.run(), name="review_hop")
        ready = self._tasks.spawn(self.addon.ready.wait(), name="review_hop_ready")
        done, _ = await asyncio.wait(
            {ready, self._run}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            await self.stop()
            raise ReviewError("the review hop (mitmproxy) did not start")
        addrs = self._master.addons.get("proxyserver").listen_addrs()
        self.port = next(int(a[1]) for a in addrs if a[0] == LOOPBACK)
        log.info("review_hop_started", port=self.port, web=self.web)

    async def stop(self) -> None:
        """Shut mitmproxy down and wait for it."""
        if self._master is not None:
            self._master.shutdown()
        if self._run is not None:
            await asyncio.wait({self._run}, timeout=START_TIMEOUT_S)
        await self._tasks.cancel_all()


async def open_review_app(
    settings: Settings,
    rulebook: Rulebook,
    hop: ReviewHop,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> web.Application:
    """The proxy app whose upstream traffic goes through ``hop`` (which must be started)."""
    client = UpstreamClient.create(settings, ca_file=str(hop.ca_file), proxy=hop.proxy_url)
    return await build_app(settings, rulebook, clock=clock, overrides=Overrides(upstream=client))


def ensure_review_card(
    registry: PatronRegistry, settings: Settings, card: ReviewCard, today: date
) -> bool:
    """Import the review card unless the registry has it; True when it was imported."""
    if registry.lookup(card.card) is not None:
        return False
    library = settings.library(card.library) if card.library else None
    library = library or (settings.libraries[0] if settings.libraries else None)
    if library is None:
        raise ReviewError("proxy.yaml defines no library for the review card")
    ptype = card.ptype or (library.remote_ptypes[0] if library.remote_ptypes else "staff")
    surname = card.name.split()[-1] if card.name.split() else ""
    pin, last = (card.pin, "") if library.login_with == "pin" else ("", surname)
    expires = (today + timedelta(days=365)).isoformat()
    lines = [
        "barcode,pin,last_name,library,ptype,expires,status",
        f"{card.card},{pin},{last},{library.code},{ptype},{expires},ok",
    ]
    summary = import_lines(
        registry, lines, source="<review card>", settings=settings, replace=False
    )
    if not summary.committed:
        raise ReviewError("the review card could not be imported: " + "; ".join(summary.problems))
    return True


def finish_review(
    addon: ReviewAddon, plan: ReviewPlan, settings: Settings, now: datetime
) -> ReportFiles:
    """Build the report from the addon's flows and write JSON, HTML and .mitm."""
    report = build_report(
        addon.observed,
        vendor=plan.vendor,
        index=addon.index,
        canaries=plan.canaries(settings),
        generated_at=now,
        capture={"flows_saved": len(addon.kept), "flows_not_saved": addon.not_kept},
    )
    return write_reports(report, plan.out_dir, flows=addon.kept)


def make_addon(settings: Settings, rulebook: Rulebook, plan: ReviewPlan) -> ReviewAddon:
    """The addon for ``plan`` (unknown vendor ids are refused)."""
    index = rulebook.current.index
    if plan.vendor != "all" and plan.vendor not in index.by_id:
        known = ", ".join(sorted(index.by_id)) or "none"
        raise ReviewError(f"no vendor rule with id {plan.vendor!r} (known: {known})")
    return ReviewAddon(
        index=index,
        canaries=plan.canaries(settings),
        vendor=plan.vendor,
        overrides=parse_overrides(settings.upstream_overrides),
    )


async def wait_for_stop(duration: float | None) -> None:
    """Until SIGINT/SIGTERM or ``duration`` seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=duration)
    except TimeoutError:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def review_forever(
    settings: Settings, plan: ReviewPlan, duration: float | None
) -> ReportFiles:
    """Run a review session (see the module docstring); returns where the report went."""
    require_c_parser()
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    addon = make_addon(settings, book, plan)
    hop = ReviewHop(addon, plan.certs_dir, web=plan.web, web_port=plan.web_port)
    await hop.start()
    try:
        app = await open_review_app(settings, book, hop)
        imported = await asyncio.to_thread(
            ensure_review_card, app[REGISTRY], settings, plan.card, datetime.now(UTC).date()
        )
        await serve_review(app, settings, plan, hop, imported=imported, duration=duration)
    finally:
        await hop.stop()
    return finish_review(addon, plan, settings, datetime.now(UTC))


async def serve_review(
    app: web.Application,
    settings: Settings,
    plan: ReviewPlan,
    hop: ReviewHop,
    *,
    imported: bool,
    duration: float | None,
) -> None:
    """Listen until stopped. #18.7: a card this review imported is removed when the review
    ends or the listener fails to start, before the app (and its registry) closes."""
    site: web.AppRunner | None = None
    try:
        site = await start_site(app, settings.listen.host, settings.listen.port)
        print_banner(settings, plan, hop, imported=imported)
        await wait_for_stop(duration)
    finally:
        if imported:
            await asyncio.to_thread(forget_review_card, app, plan.card)
        if site is not None:
            await site.cleanup()


def forget_review_card(app: web.Application, card: ReviewCard) -> None:
    """Remove the review card that ``ensure_review_card`` imported (idempotent)."""
    if app[REGISTRY].remove(card.card):
        log.info("review_card_removed")


def print_banner(settings: Settings, plan: ReviewPlan, hop: ReviewHop, *, imported: bool) -> None:
    """What the reviewer needs (never the card's values)."""
    web_ui = f"\n  mitmweb:      http://{LOOPBACK}:{plan.web_port}/" if plan.web else ""
    note = " (imported into the registry)" if imported else ""
    print(
        f"\nclamshell review of {plan.vendor!r} is running (Ctrl-C writes the report).\n"
        f"  Portal:       {settings.public_url}/login\n"
        f"  Review card:  the card in proxy.yaml `review:` / --card{note}\n"
        f"  Review hop:   {hop.proxy_url} (loopback; CA {hop.ca_file}){web_ui}\n"
        f"  Report into:  {plan.out_dir}\n",
        flush=True,
    )
