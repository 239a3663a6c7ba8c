"""The admin API against its own OpenAPI document, driven by schemathesis on a real port."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from proxy.rulebook import Rulebook
from proxy.web.admin.app import build_admin_app
from proxy.web.admin.auth import STAFF
from proxy.web.admin.openapi import openapi_document
from proxy.web.app import Overrides, build_app
from proxy.web.keys import SESSIONS, SUSPENSIONS
from tests.web.admin.test_app import LiveKeysStore
from tests.web.conftest import REPO, Clock, demo_settings

T = TypeVar("T")


@dataclass(frozen=True)
class RunningAdmin:
    """The admin listener's base URL, an admin API key, a library-staff key, and the hash of
    one live session."""

    base: str
    token: str
    session_hash: str
    library_key: str


class LoopThread:
    """An event loop in a thread, so that sync schemathesis tests can reach a real server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        """Stop and close the loop."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def start(tmp: Path) -> tuple[list[web.AppRunner], RunningAdmin]:
    """Main app (started, not listening) plus the admin app on 127.0.0.1:<free port>."""
    rules = tmp / "rules"
    shutil.copytree(REPO / "vendor_rules", rules)
    config = demo_settings(tmp, 9, rules_dir=str(rules))
    clock = Clock()
    book = Rulebook.open(rules, frozenset(lib.code for lib in config.libraries))
    sessions = LiveKeysStore(timedelta(hours=2), timedelta(hours=12))
    main = await build_app(config, book, clock=clock, overrides=Overrides(sessions=sessions))
    main_runner = web.AppRunner(main)
    await main_runner.setup()
    admin = build_admin_app(main, environ={})
    admin_runner = web.AppRunner(admin, access_log=None)
    await admin_runner.setup()
    await web.TCPSite(admin_runner, "127.0.0.1", 0).start()
    host, port = admin_runner.addresses[0][:2]
    _, session = await main[SESSIONS].create(
        library="MAIN", ptype=None, patron_key="p", now=clock()
    )
    session_hash = main[SUSPENSIONS].session_hash(session.key)
    now = clock()
    admin_key = admin[STAFF].create_key("fuzz", "consortium-admin", (), now)  # staff auth
    library_key = admin[STAFF].create_key("fuzz-main", "library-staff", ("MAIN",), now)
    running = RunningAdmin(f"http://{host}:{port}", admin_key, session_hash, library_key)
    return [admin_runner, main_runner], running


@pytest.fixture(scope="module")
def running_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAdmin]:
    """A real admin listener for the whole module."""
    loop = LoopThread()
    runners, running = loop.run(start(tmp_path_factory.mktemp("admin")))
    yield running
    for runner in runners:
        loop.run(runner.cleanup())
    loop.stop()


# The document is built in Python, so it is loaded here at collection time (schemathesis'
# lazy ``from_fixture`` loader breaks on pytest 9: it touches ``Function._nodeid``);
# test_served_document_is_the_one_tested checks that the listener serves exactly this.
schema = schemathesis.openapi.from_dict(openapi_document())


def test_served_document_is_the_one_tested(running_admin: RunningAdmin) -> None:
    """/api/openapi.json on the listener is the document the tests below are generated from."""
    served = requests.get(
        f"{running_admin.base}/api/openapi.json",
        headers={"Authorization": f"Bearer {running_admin.token}"},
        timeout=10,
    )
    assert served.status_code == 200 and served.json() == openapi_document()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_admin_api_conforms_and_never_fails(case: Any, running_admin: RunningAdmin) -> None:
    """Every generated request gets a documented, schema-valid response and never a 5xx."""
    # Valid-looking input may still be refused for reasons a schema cannot state (a 'from'
    # after 'to', an unknown session hash): positive_data_acceptance would call that a bug.
    case.call_and_validate(
        base_url=running_admin.base,
        headers={"Authorization": f"Bearer {running_admin.token}"},
        excluded_checks=[positive_data_acceptance],
        timeout=30,
    )


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_admin_api_never_fails_for_library_staff(case: Any, running_admin: RunningAdmin) -> None:
    """With a library-staff key too: documented answers (403 where the role stops), no 5xx."""
    case.call_and_validate(
        base_url=running_admin.base,
        headers={"Authorization": f"Bearer {running_admin.library_key}"},
        excluded_checks=[positive_data_acceptance],
        timeout=30,
    )
