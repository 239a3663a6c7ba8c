"""Browser fixtures: the demo over HTTPS on loopback, driven by Debian's Chromium via Playwright.

How it runs, and why this shape:

- **Servers in a thread of their own.** The demo vendor (HTTPS, a test CA), the proxy (HTTPS, a
  dev CA, ``upstream_ca`` = the vendor's test CA, ``upstream_overrides`` → the vendor) and the
  admin listener all run in one event loop in a daemon thread (``ServerThread``), started once
  per session (``stack``) or per module (``start_stack`` with other rules). Tests are plain sync
  functions driving Chromium through Playwright's *sync* API in the main thread (started and
  stopped per module: see ``playwright``). A blocking browser call can never stall the servers,
  nor the reverse, and there is no event loop to share with pytest-asyncio (whose
  function-scoped loops close between tests). A test that touches server state does it on the
  servers' loop with ``ServerThread.call``.
- **Name resolution.** Chromium gets ``--host-resolver-rules`` mapping ``proxy.localhost`` and
  ``*.proxy.localhost`` to 127.0.0.1, leaving the literal 127.0.0.1 (the admin console) alone and
  making every other name NOTFOUND at once, so a request that escapes the proxy never leaves the
  machine. It is still *recorded*: Playwright's ``request`` event fires before resolution, and
  ``Browsing`` keeps every request the context made (failed ones too), which is what the
  containment assertions read. Only a request the browser refused itself before any I/O (a CSP
  violation, mixed content) does not count as sent: that is how ``third_party: block`` works.
- **TLS.** Playwright cannot add a CA to Chromium's trust store (on Linux an NSS database edited
  with ``certutil`` from libnss3-tools, not installed here; enterprise policy files would be
  machine-wide). So ``browser`` contexts use ``ignore_https_errors`` (tests not about TLS), and
  ``pinned_browser`` is launched with ``--ignore-certificate-errors-spki-list=<base64 SHA-256 of
  the dev leaf's SPKI>``: Chromium verifies as usual and forgives a failure (here: the unknown
  dev CA) only when a certificate in the served chain has that key, so only our leaf gets
  through (name and expiry errors on it would be forgiven too; Python's verifier checks those in
  tests/web/test_tls.py). The journey runs there, so Secure cookies, CORS and the download
  happen in a real secure context; test_journey.py also shows that without the pin Chromium
  refuses the proxy's certificate.
- **No browser.** In CI (``CI=true``) a missing ``/usr/bin/chromium`` fails every browser test
  with a message saying what to install; elsewhere the tests skip with that reason.
- **Failures leave screenshots** of every open page in ``test-artifacts/`` (git-ignored), named
  after the test and the step it was in; the paths appear in the report's "browser screenshots"
  section, so the CI log points at them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    sync_playwright,
)

from proxy.certs import create_dev_ca, create_leaf, test_ca
from proxy.config_loader import settings_from
from proxy.core.settings import Settings
from proxy.core.targets import resolve_target
from proxy.demo.patrons import DemoCard, demo_cards, seed
from proxy.demo.settings import DEMO_LIBRARIES
from proxy.demo.tls import DEMO_TLS_HOSTS, start_vendor_tls
from proxy.demo.vendor import RequestRecorder
from proxy.rulebook import Rulebook
from proxy.server import start_site, tls_context
from proxy.web.admin.app import start_admin
from proxy.web.admin.auth import admin_token
from proxy.web.app import build_app
from proxy.web.keys import HOSTMAP, REGISTRY, RULEBOOK

REPO: Final = Path(__file__).resolve().parents[2]
ARTIFACTS: Final = REPO / "test-artifacts"
CHROMIUM: Final = Path("/usr/bin/chromium")
PROXY_HOST: Final = "proxy.localhost"
CONSORTIUM: Final = "Demo Library Consortium"
# The flags issue 8 asks for, plus no QUIC (nothing here speaks HTTP/3).
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # The proxy's names → loopback; 127.0.0.1 itself (the admin console) as it is; the rest fails.
    f"--host-resolver-rules=MAP *.{PROXY_HOST} 127.0.0.1, MAP {PROXY_HOST} 127.0.0.1, "
    "EXCLUDE 127.0.0.1, MAP * ~NOTFOUND",
)
# Schemes that never reach the network, so they cannot escape the proxy (the chrome* ones are
# the browser's own pages and resources, e.g. the PDF viewer's).
LOCAL_SCHEMES: Final = frozenset(
    {"data", "blob", "about", "javascript", "chrome", "chrome-error", "chrome-extension"}
)
# Playwright's failure text for a request the browser itself refused before resolving or
# connecting (a CSP violation; http:// from an https page): nothing left the browser. A request
# that fails for any other reason (our resolver's NOTFOUND included) was sent.
BLOCKED_IN_BROWSER: Final = frozenset({"csp", "mixed-content"})
STEP_CHARS: Final = re.compile(r"[^A-Za-z0-9_.-]+")
TIMEOUT_MS: Final = 10_000

T = TypeVar("T")


# ---------------------------------------------------------------- the servers' thread


class ServerThread:
    """An event loop running forever in a daemon thread; coroutines are submitted to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="servers", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the servers' loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and wait for the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@dataclass(frozen=True, slots=True)
class Certs:
    """The proxy's dev CA and leaf, and the vendor's test CA and leaf."""

    dev_ca: Path
    leaf_chain: Path
    leaf_key: Path
    leaf_spki: str  # base64 SHA-256 of the leaf's SubjectPublicKeyInfo (Chromium's pin format)
    vendor_ca: Path
    vendor_cert: Path
    vendor_key: Path


def make_certs(directory: Path) -> Certs:
    """Create both CAs and leaves under ``directory``."""
    now = datetime.now(UTC)
    ca = create_dev_ca(directory / "proxy", PROXY_HOST, force=False, now=now)
    leaf = create_leaf(directory / "proxy", ca, PROXY_HOST, force=False, now=now)
    assert leaf.chain_path is not None
    vendor_ca, vendor_cert, vendor_key = test_ca(directory / "vendor", list(DEMO_TLS_HOSTS))
    return Certs(
        ca.cert_path,
        leaf.chain_path,
        leaf.key_path,
        spki_pin(leaf.cert),
        vendor_ca,
        vendor_cert,
        vendor_key,
    )


def spki_pin(cert: x509.Certificate) -> str:
    """What ``--ignore-certificate-errors-spki-list`` expects for ``cert``."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------- the running demo


@dataclass(slots=True)
class Stack:
    """The running demo: proxy, admin console and vendor, and what a test needs to know."""

    server: ServerThread
    app: web.Application
    settings: Settings
    cards: tuple[DemoCard, ...]
    vendor: RequestRecorder
    admin_url: str
    admin_token: str
    runners: list[web.AppRunner] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Stack({self.portal})"

    @property
    def portal(self) -> str:
        """``https://proxy.localhost:<port>``."""
        return self.settings.public_url

    @property
    def port(self) -> int:
        """The proxy's port."""
        return self.settings.listen.port

    def card(self, note_start: str) -> DemoCard:
        """The demo card whose note starts with ``note_start``."""
        return next(c for c in self.cards if c.note.startswith(note_start))

    def login_url(self, vendor_url: str) -> str:
        """The EZproxy-style starting URL for ``vendor_url``."""
        return f"{self.portal}/login?url={vendor_url}"

    def mapped(self, vendor_url: str) -> str:
        """``vendor_url`` as the browser reaches it through the proxy."""
        hostmap = self.app[HOSTMAP]
        target = resolve_target(vendor_url, self.app[RULEBOOK].current.index, hostmap)
        return target.mapped_url(hostmap, "https")

    def is_proxied(self, url: str) -> bool:
        """True when ``url`` stays on the proxy: https/wss to its host or one label below."""
        parts = urlsplit(url)
        if parts.scheme in LOCAL_SCHEMES:
            return True
        label, _, parent = (parts.hostname or "").partition(".")
        on_proxy = f"{label}.{parent}" == PROXY_HOST or parent == PROXY_HOST
        return parts.scheme in ("https", "wss") and on_proxy and parts.port == self.port


async def start_stack(
    server: ServerThread,
    work: Path,
    certs: Certs,
    rules_dir: Path,
    extra: dict[str, Any] | None = None,
) -> Stack:
    """Start vendor, proxy and admin on the servers' loop (call through ``server.call``)."""
    vendor = RequestRecorder()
    vendor_runner, vendor_port = await start_vendor_tls(
        vendor, cert=certs.vendor_cert, key=certs.vendor_key
    )
    port, admin_port = free_port(), free_port()
    settings = stack_settings(work, certs, rules_dir, port, admin_port, vendor_port, extra)
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    app = await build_app(settings, book)
    today = datetime.now(UTC).date()
    seed(app[REGISTRY], settings, today)
    runner = await start_site(app, "127.0.0.1", port, ssl_context=tls_context(settings))
    admin = await start_admin(app)
    assert admin is not None, "the admin console is disabled in the test settings"
    return Stack(
        server,
        app,
        settings,
        tuple(demo_cards(settings, today)),
        vendor,
        admin_url=f"http://127.0.0.1:{admin_port}",
        admin_token=admin_token(settings),
        runners=[admin, runner, vendor_runner],  # admin first: it reads the main app's stores
    )


def stack_settings(
    work: Path,
    certs: Certs,
    rules_dir: Path,
    port: int,
    admin_port: int,
    vendor_port: int,
    extra: dict[str, Any] | None = None,
) -> Settings:
    """The demo's proxy.yaml over HTTPS on ``port``, its vendor on ``vendor_port``."""
    vendor = f"https://127.0.0.1:{vendor_port}"
    raw = {
        "consortium_name": CONSORTIUM,
        "public_url": f"https://{PROXY_HOST}:{port}",
        "listen": {"host": "127.0.0.1", "port": port},
        "data_dir": str(work / "data"),
        "rules_dir": str(rules_dir),
        "libraries": DEMO_LIBRARIES,
        "tls": {"cert": str(certs.leaf_chain), "key": str(certs.leaf_key)},
        "upstream_ca": str(certs.vendor_ca),
        "upstream_overrides": {host: vendor for host in DEMO_TLS_HOSTS},
        "admin": {"listen": {"host": "127.0.0.1", "port": admin_port}},
        # Every page is signed into in every language (#21): more good logins a minute than a
        # patron makes (R11's limit has its own tests in tests/web).
        "throttle": {"card_logins_per_minute": 1000},
        **(extra or {}),
    }
    return settings_from(raw, where="tests/browser", base=work)


async def stop_stack(stack: Stack) -> None:
    """Clean every runner up (admin first)."""
    for runner in stack.runners:
        await runner.cleanup()


def rules_with(directory: Path, vendor_id: str, replace: tuple[str, str]) -> Path:
    """A copy of the repo's vendor rules with one textual change to ``<vendor_id>.yaml``."""
    shutil.copytree(REPO / "vendor_rules", directory)
    path = directory / f"{vendor_id}.yaml"
    text = path.read_text("utf-8")
    assert replace[0] in text, f"{path.name} no longer holds {replace[0]!r}"
    path.write_text(text.replace(*replace), "utf-8")
    return directory


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    """The servers' event loop thread."""
    thread = ServerThread()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Dev CA + leaf for the proxy, test CA + leaf for the vendor (shared by every stack)."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def stack(
    server: ServerThread, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The demo with the repo's vendor rules."""
    work = tmp_path_factory.mktemp("stack")
    running = server.call(start_stack(server, work, certs, REPO / "vendor_rules"))
    yield running
    server.call(stop_stack(running))


# ---------------------------------------------------------------- the browser


def browser_missing_reason() -> str | None:
    """Why no browser test can run here, or None."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`; "
            ".ci/run does it)"
        )
    return None


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright, once Chromium is known to be there (CI: missing is a failure).

    Module-scoped on purpose: while the sync API is started it marks its own event loop as
    running in the main thread, so pytest-asyncio tests collected after this package would fail
    with "cannot be called from a running event loop"; stopping it clears that.
    """
    reason = browser_missing_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as driver:
        yield driver


def launch(playwright: Playwright, *extra: str) -> Browser:
    """Debian's Chromium with the suite's flags."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *extra]
    )


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium for tests that are not about TLS (their contexts ignore certificate errors)."""
    chromium = launch(playwright)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def pinned_browser(playwright: Playwright, certs: Certs) -> Iterator[Browser]:
    """Chromium that accepts the proxy's certificate only by its pinned key."""
    chromium = launch(playwright, f"--ignore-certificate-errors-spki-list={certs.leaf_spki}")
    yield chromium
    chromium.close()


@dataclass(slots=True)
class Browsing:
    """One browser context: its page, every request it made, and the current step's name."""

    context: BrowserContext
    page: Page
    requests: list[Request] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    step: str = "start"

    @classmethod
    def open(
        cls, browser: Browser, *, ignore_https_errors: bool, locale: str = "en-US"
    ) -> Browsing:
        """A fresh context (no cookies) recording every request, and its first page;
        ``locale`` also sets the Accept-Language Chromium sends."""
        context = browser.new_context(
            ignore_https_errors=ignore_https_errors, locale=locale, accept_downloads=True
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        browsing = cls(context, page)
        context.on("request", lambda request: browsing.requests.append(request))
        page.on("websocket", lambda socket: browsing.sockets.append(socket.url))
        return browsing

    def __repr__(self) -> str:  # short in tracebacks: the URLs are in the assertion message
        return f"Browsing(step={self.step!r}, {len(self.requests)} requests)"

    @property
    def urls(self) -> list[str]:
        """Every URL the context asked for, failed and blocked ones included."""
        return [r.url for r in self.requests] + self.sockets

    def sent(self) -> list[str]:
        """URLs the browser tried to fetch: all but those it refused itself before any I/O."""
        return [r.url for r in self.requests if r.failure not in BLOCKED_IN_BROWSER] + self.sockets

    def escaped(self, stack: Stack) -> list[str]:
        """Sent URLs that left the proxy (in order, without repeats)."""
        return list(dict.fromkeys(url for url in self.sent() if not stack.is_proxied(url)))

    def screenshot_all(self, name: str) -> list[Path]:
        """Save a full-page screenshot of every open page; returns the files."""
        ARTIFACTS.mkdir(exist_ok=True)
        saved = []
        for i, page in enumerate(self.context.pages):
            suffix = f"-{i}" if i else ""
            path = ARTIFACTS / STEP_CHARS.sub("_", f"{name}-{self.step}{suffix}.png")
            try:
                page.screenshot(path=str(path), full_page=True, timeout=5_000)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                path = path.with_suffix(f".png (not saved: {type(exc).__name__})")
            saved.append(path)
        return saved


def submit_login(page: Page, card: DemoCard, secret: str | None = None) -> None:
    """Fill the portal's sign-in form with ``card`` (and its secret, unless given) and submit."""
    page.get_by_label("Library card number").fill(card.barcode)
    page.get_by_label("PIN").fill(card.secret if secret is None else secret)  # "PIN or last name"
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    """A fresh context in ``browser`` (certificate errors ignored: not a TLS test)."""
    opened = Browsing.open(browser, ignore_https_errors=True)
    yield opened
    opened.context.close()


@pytest.fixture
def pinned_browsing(pinned_browser: Browser) -> Iterator[Browsing]:
    """A fresh context in ``pinned_browser`` (certificate errors are *not* ignored)."""
    opened = Browsing.open(pinned_browser, ignore_https_errors=False)
    yield opened
    opened.context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failing browser test, screenshot its pages and name the files in the report."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Browsing):
                paths = value.screenshot_all(item.name)
                lines = "\n".join(f"screenshot: {p}" for p in paths)
                report.sections.append(("browser screenshots", lines))
    return report
