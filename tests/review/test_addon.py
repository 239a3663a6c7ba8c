"""The review addon (proxy/review/addon.py) driven by mitmproxy's own test helpers."""

from __future__ import annotations

import gzip

from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import taddons, tflow

from proxy.core.review.canaries import Canaries
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex
from proxy.review.addon import ReviewAddon, observe
from proxy.upstream.guard import Override

CARD = "21234000000019"
INDEX = RuleIndex.build(
    [
        VendorRule.model_validate(
            {
                "id": "acme",
                "title": "Acme",
                "url": "https://www.acme.test/",
                "domains": ["acme.test"],
                "pseudonym": {"header": "X-Patron-Pseudonym"},
            }
        ),
        VendorRule.model_validate(
            {
                "id": "bigdb",
                "title": "BigDB",
                "url": "https://search.bigdb.test/",
                "hosts": ["search.bigdb.test"],
            }
        ),
    ]
)
PAGE = b'<html><head><script src="https://stats.trackly.test/t.js"></script></head></html>'


def make_addon(**kwargs: object) -> ReviewAddon:
    """An addon reviewing acme, with one override to a loopback vendor."""
    options: dict[str, object] = {
        "index": INDEX,
        "canaries": Canaries.build(card=CARD, pin="Pin7ReviewZ"),
        "vendor": "acme",
        "overrides": {"www.acme.test": Override("http", "127.0.0.1", 9001)},
        **kwargs,
    }
    return ReviewAddon(**options)  # type: ignore[arg-type]


def flow_to(host: str, *, content_type: str = "text/html", body: bytes = PAGE) -> tflow.HTTPFlow:
    """A finished flow to ``host`` whose response has the given type and body."""
    flow = tflow.tflow(resp=True)
    flow.request.host = host
    flow.request.headers["Host"] = host
    flow.response.headers["Content-Type"] = content_type
    flow.response.content = body
    return flow


async def test_leaky_request_is_marked_and_logged() -> None:
    """A request carrying the review card is marked with a P1 comment."""
    addon = make_addon()
    with taddons.context(addon) as tctx:
        flow = flow_to("www.acme.test")
        flow.request.headers["X-Leak"] = CARD
        await tctx.cycle(addon, flow)
    assert flow.marked
    assert "P1: [card number] sent (raw) in header X-Leak" in flow.comment
    assert CARD not in flow.comment


async def test_clean_page_is_recorded_with_its_third_party() -> None:
    """A vendor page is observed, saved, and its tracker noted; nothing is marked."""
    addon = make_addon()
    with taddons.context(addon) as tctx:
        flow = flow_to("www.acme.test")
        await tctx.cycle(addon, flow)
    assert not flow.marked
    assert "third party: stats.trackly.test (script)" in flow.comment
    assert len(addon.observed) == 1 and len(addon.kept) == 1
    assert "stats.trackly.test" in addon.observed[0].html


async def test_other_vendors_are_observed_but_not_saved() -> None:
    """Another vendor's flow feeds the cross-vendor checks but is not kept for the .mitm."""
    addon = make_addon()
    with taddons.context(addon) as tctx:
        await tctx.cycle(addon, flow_to("search.bigdb.test"))
    assert len(addon.observed) == 1 and addon.kept == []


async def test_non_html_bodies_are_streamed() -> None:
    """PDFs are streamed (never stored); HTML stays buffered for the detectors."""
    addon = make_addon()
    with taddons.context(addon):
        pdf, page = (
            flow_to("www.acme.test", content_type="application/pdf"),
            flow_to("www.acme.test"),
        )
        addon.responseheaders(pdf)
        addon.responseheaders(page)
    assert pdf.response.stream is True and not page.response.stream


async def test_saved_copy_cuts_html_but_live_flow_is_untouched() -> None:
    """Only the first html_limit bytes are kept; the proxy still gets the whole page."""
    addon = make_addon(html_limit=40)
    body = PAGE + b"x" * 1000
    with taddons.context(addon) as tctx:
        flow = flow_to("www.acme.test", body=gzip.compress(body))
        flow.response.headers["Content-Encoding"] = "gzip"
        await tctx.cycle(addon, flow)
    assert flow.response.get_content() == body
    assert addon.kept[0].response.get_content() == body[:40]
    assert len(addon.observed[0].html) == 40


async def test_non_loopback_clients_are_refused() -> None:
    """Only a client on loopback may use the review hop."""
    addon = make_addon()
    with taddons.context(addon):
        flow = flow_to("www.acme.test")
        flow.client_conn.peername = ("192.0.2.10", 5555)
        addon.requestheaders(flow)
    assert flow.error is not None  # mitmproxy's kill() records the flow as killed


async def test_server_connect_routes_overrides_and_refuses_forbidden() -> None:
    """Overridden hosts go to the override's address; a loopback literal is refused (P6)."""
    addon = make_addon()
    with taddons.context(addon):
        mapped = ServerConnectionHookData(tflow.tserver_conn(), tflow.tclient_conn())
        mapped.server.address = ("www.acme.test", 9001)
        await addon.server_connect(mapped)
        refused = ServerConnectionHookData(tflow.tserver_conn(), tflow.tclient_conn())
        refused.server.address = ("127.0.0.1", 8080)
        await addon.server_connect(refused)
    assert mapped.server.address == ("127.0.0.1", 9001) and mapped.server.error is None
    assert refused.server.error is not None and "loopback" in refused.server.error.lower()


def test_observe_keeps_request_as_sent() -> None:
    """observe() turns a flow into plain values: Host-derived host, split path and query."""
    flow = flow_to("www.acme.test")
    flow.request.path = "/search?q=tides"
    flow.request.headers.add("X-Dup", "1")
    flow.request.headers.add("X-Dup", "2")
    seen = observe(flow)
    assert (seen.request.host, seen.request.path, seen.request.query) == (
        "www.acme.test",
        "/search",
        "q=tides",
    )
    assert seen.request.values("x-dup") == ["1", "2"]
    assert seen.status == 200 and "stats.trackly.test" in seen.html
