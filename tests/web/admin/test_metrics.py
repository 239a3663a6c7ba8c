"""Prometheus /metrics on the admin listener: content, who may scrape, and no label that can
name a patron (canaries for path, query, session, card, PIN, address)."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from proxy.metrics import status_class
from proxy.web.admin.app import build_admin_app
from proxy.web.admin.auth import STAFF
from proxy.web.keys import RULEBOOK
from tests.web.conftest import PORTAL, Stack, StackFactory
from tests.web.helpers import post_login, session_of

WWW = f"www-acmejournals-test.{PORTAL}"
PATH_CANARY = "canary-path-5c1e9a"
QUERY_CANARY = "canary-query-77d2"
CARD_CANARY = "21234999999999"
PIN_CANARY = "9137"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of an exposition: name, labels, value."""
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


async def traffic(stack: Stack) -> str:
    """A good login, a refused one with a canary card, vendor pages with canary paths; returns
    the session cookie value."""
    card = stack.card("adult card")
    auth = session_of(await post_login(stack.client, card.barcode, card.secret))
    await post_login(stack.client, CARD_CANARY, PIN_CANARY)
    for path in (f"/{PATH_CANARY}?q={QUERY_CANARY}", "/", "/missing-page"):
        resp = await stack.client.get(path, headers={"Host": WWW, **auth}, allow_redirects=False)
        await resp.read()
    return auth["Cookie"].split("=", 1)[1]


async def scrape(aiohttp_client: Any, stack: Stack, role: str = "auditor") -> tuple[int, str]:
    """GET /metrics on an admin app over the stack, with an API key of ``role``."""
    client = await aiohttp_client(build_admin_app(stack.app, environ={}))
    admin = client.server.app
    key = admin[STAFF].create_key(
        "prom", role, ("MAIN",) if role == "library-staff" else (), stack.clock()
    )
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    return resp.status, await resp.text()


async def test_metrics_count_requests_logins_and_latency(
    make_stack: StackFactory, aiohttp_client: Any
) -> None:
    """Relayed responses by vendor and status class, logins by library and outcome, upstream
    latency and the scrape-time gauges are all there."""
    stack = await make_stack()
    _, before = await scrape(aiohttp_client, stack)
    await traffic(stack)
    status, text = await scrape(aiohttp_client, stack)
    assert status == 200

    def value(name: str, **labels: str) -> float:
        return sum(
            v
            for n, lab, v in samples(text)
            if n == name and all(lab.get(k) == want for k, want in labels.items())
        ) - sum(
            v
            for n, lab, v in samples(before)
            if n == name and all(lab.get(k) == want for k, want in labels.items())
        )

    assert value("clamshell_relayed_requests_total", vendor="acme") >= 3
    assert value("clamshell_relayed_requests_total", vendor="acme", status_class="2xx") >= 1
    assert value("clamshell_relayed_bytes_total", vendor="acme") > 0
    assert value("clamshell_rewritten_bytes_total", vendor="acme") > 0  # HTML pages
    assert value("clamshell_upstream_seconds_count", vendor="acme") >= 3
    assert value("clamshell_logins_total", library="MAIN", outcome="ok") == 1
    assert value("clamshell_logins_total") == 2
    gauges = {n: v for n, _, v in samples(text)}
    assert gauges["clamshell_active_sessions"] >= 1
    assert gauges["clamshell_vendor_rules"] >= 1


async def test_no_label_names_a_patron(make_stack: StackFactory, aiohttp_client: Any) -> None:
    """No label value carries a path, query, session, card, PIN or address; every label value
    this stack's traffic adds is from a closed set or its configuration (the collectors are
    the process's, so other tests' configurations may have left their own library codes)."""
    stack = await make_stack()
    _, before = await scrape(aiohttp_client, stack)
    # Label sets, not values: another test's leftover app may still move its own series.
    earlier = {(n, tuple(sorted(lab.items()))) for n, lab, _ in samples(before)}
    session = await traffic(stack)
    _, text = await scrape(aiohttp_client, stack)
    # Names, labels and help texts, without the sample values: a 4-digit PIN can turn up
    # in a timestamp's digits (``_created`` samples), which names nobody.
    words = "\n".join(
        line if line.startswith("#") else line.rsplit(" ", 1)[0] for line in text.splitlines()
    )
    for canary in (PATH_CANARY, QUERY_CANARY, CARD_CANARY, PIN_CANARY, session, "127.0.0.1"):
        assert canary not in words
    vendors = {rule.id for rule in stack.app[RULEBOOK].current.rules}
    libraries = {lib.code for lib in stack.settings.libraries} | {"unknown"}
    allowed: dict[str, Any] = {
        "status_class": {status_class(s) for s in (100, 200, 300, 400, 500)},
        "library": libraries,
        "result": {"ok", "refused"},
        "le": None,  # histogram bucket bounds
        "vendor": vendors,
        "outcome": None,
        "limit": None,
    }
    for name, labels, _ in samples(text):
        if not name.startswith("clamshell_"):
            continue
        for key, val in labels.items():
            assert re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", val), (name, key, val)
        if (name, tuple(sorted(labels.items()))) in earlier:
            continue  # not this stack's: labelled before its traffic
        for key, val in labels.items():
            assert key in allowed, (name, key)
            if allowed[key] is not None:
                assert val in allowed[key], (name, key, val)


async def test_metrics_need_a_consortium_wide_role(
    make_stack: StackFactory, aiohttp_client: Any
) -> None:
    """Library staff cannot scrape consortium-wide figures; no credential is 401."""
    stack = await make_stack()
    assert (await scrape(aiohttp_client, stack, "library-staff"))[0] == 403
    client = await aiohttp_client(build_admin_app(stack.app, environ={}))
    assert (await client.get("/metrics")).status == 401


async def test_allow_listed_address_scrapes_without_a_key(
    make_stack: StackFactory, aiohttp_client: Any
) -> None:
    """An address in admin.metrics_allow scrapes /metrics without a key, and only /metrics."""
    stack = await make_stack(admin={"metrics_allow": ["127.0.0.0/8"]})
    client = await aiohttp_client(build_admin_app(stack.app, environ={}))
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/api/stats")).status == 401
