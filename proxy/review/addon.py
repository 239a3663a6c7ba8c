"""The review addon: mitmproxy hooks that record the proxy's upstream flows and flag leaks.

Contract: ``ReviewAddon`` is added to an in-process mitmproxy master (review/runner.py) that
listens on 127.0.0.1 only and is the upstream HTTP proxy of clamshell's ``UpstreamClient``
(whose pool tunnels every connection through it with CONNECT, http and https alike, so the
flows here hold the bytes production sends).
- ``requestheaders`` refuses any client that is not on loopback.
- ``server_connect`` decides where mitmproxy connects, so review mode keeps the proxy's own
  guarantees: a host in ``upstream_overrides`` goes to the override's address (the Host
  header, SNI and certificate checks stay the vendor's, exactly as ``GuardedResolver`` does
  without review mode); any other host is resolved here, addresses that
  ``core.addresses.forbidden_reason`` rejects are dropped, and mitmproxy connects to the
  address that was checked (DESIGN P6; no DNS rebinding). Without this, mitmproxy would
  resolve the demo's ``*.test`` names itself and fail, and would reach private addresses.
- ``responseheaders`` streams every non-HTML body (PDFs, images: never stored); HTML bodies
  are kept up to the runner's ``stream_large_bodies`` and only the first ``html_limit`` bytes
  reach the detectors and the saved capture.
- ``request``/``response`` turn each flow into plain ``ObservedFlow`` values and call the pure
  detectors of ``proxy.core.review`` (the same ones ``review --analyze`` uses); findings are
  logged by name only and shown as flow comments in mitmweb.
Memory is bounded: at most ``MAX_OBSERVED`` observed flows and ``MAX_KEPT`` saved flows.
Only the reviewed vendor's flows are kept for the .mitm file; other vendors' requests are
observed (for the cross-vendor pseudonym check) but not saved.
Not here: starting mitmproxy (runner.py), the report (report.py), detectors (core/review/).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from ipaddress import ip_address
from typing import Final
from urllib.parse import urlsplit

from mitmproxy import http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from proxy.core.addresses import forbidden_reason
from proxy.core.review.canaries import Canaries
from proxy.core.review.identifying import identifying_data
from proxy.core.review.observed import Finding, ObservedFlow, ObservedRequest
from proxy.core.review.thirdparty import third_party_references
from proxy.core.review.vendorcookies import cookies_set
from proxy.core.ruleset import RuleIndex
from proxy.logconfig import get_logger
from proxy.upstream.guard import Override

HTML_LIMIT: Final = 256 * 1024  # bytes of decoded HTML kept per page for third-party detection
MAX_OBSERVED: Final = 20_000
MAX_KEPT: Final = 5_000
HTML_TYPES: Final = ("text/html", "application/xhtml+xml")
log = get_logger("review")


class AddressRefused(Exception):
    """No address of the host may be connected to."""


def is_html(content_type: str) -> bool:
    """Whether a Content-Type names an HTML document."""
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


def _html_prefix(response: http.Response | None, limit: int) -> str:
    if response is None or response.raw_content is None:
        return ""
    if not is_html(response.headers.get("content-type", "")):
        return ""
    content = response.get_content(strict=False) or b""
    return content[:limit].decode("utf-8", "replace")


def _pairs(headers: http.Headers) -> tuple[tuple[str, str], ...]:
    """Header fields in order, duplicates kept."""
    items = headers.items(multi=True)  # type: ignore[no-untyped-call]
    return tuple((str(k), str(v)) for k, v in items)


def observe(flow: http.HTTPFlow, html_limit: int = HTML_LIMIT) -> ObservedFlow:
    """The plain values of a flow (request as the vendor got it; bounded HTML prefix)."""
    req = flow.request
    target = urlsplit(req.path)
    body = req.get_content(strict=False) if req.raw_content is not None else b""
    request = ObservedRequest(
        method=req.method,
        host=req.pretty_host.lower(),
        path=target.path,
        query=target.query,
        headers=_pairs(req.headers),
        body=body or b"",
    )
    response = flow.response
    if response is None:
        return ObservedFlow(request)
    return ObservedFlow(
        request,
        status=response.status_code,
        response_headers=_pairs(response.headers),
        content_type=response.headers.get("content-type", ""),
        html=_html_prefix(response, html_limit),
    )


def _note(flow: http.HTTPFlow, findings: list[Finding]) -> None:
    """Mark a flow in mitmweb and log each finding (names and places only)."""
    if not findings:
        return
    flow.marked = ":warning:"
    lines = [f"{f.invariant}: {f.what} in {f.where}" for f in findings]
    flow.comment = "\n".join(filter(None, [flow.comment, *lines]))
    for f in findings:
        log.warning(
            "review_finding", invariant=f.invariant, what=f.what, where=f.where, host=f.host
        )


class ReviewAddon:
    """Records upstream flows of the reviewed vendor and runs the detectors on them."""

    def __init__(
        self,
        *,
        index: RuleIndex,
        canaries: Canaries,
        vendor: str,
        overrides: Mapping[str, Override],
        html_limit: int = HTML_LIMIT,
    ) -> None:
        self.index = index
        self.canaries = canaries
        self.vendor = vendor
        self.overrides = dict(overrides)
        self.html_limit = html_limit
        self.observed: list[ObservedFlow] = []
        self.kept: list[http.HTTPFlow] = []
        self.not_kept = 0
        self.ready = asyncio.Event()

    def in_scope(self, host: str) -> bool:
        """Whether ``host`` belongs to the reviewed vendor (uncovered hosts always do)."""
        rule = self.index.rule_for(host)
        return self.vendor == "all" or rule is None or rule.id == self.vendor

    # ---- mitmproxy hooks

    def running(self) -> None:
        """The listener is up: the runner may read its port."""
        self.ready.set()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Only the proxy on this machine may use the review hop."""
        peer = flow.client_conn.peername
        if not peer or not ip_address(peer[0]).is_loopback:
            flow.kill()  # type: ignore[no-untyped-call]

    async def server_connect(self, data: ServerConnectionHookData) -> None:
        """Connect to the override's address, or to a checked address of the host."""
        if data.server.address is None:
            return
        host, port = data.server.address
        override = self.overrides.get(str(host).lower())
        if override is not None:
            data.server.address = (override.host, port)
            return
        try:
            data.server.address = (await checked_address(str(host), port), port)
        except AddressRefused as exc:
            log.warning("review_upstream_refused", host=host, reason=str(exc))
            data.server.error = f"clamshell review: refused ({exc})"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Stream (never store) every body that is not an HTML page."""
        if flow.response is not None and not is_html(flow.response.headers.get("content-type", "")):
            flow.response.stream = True

    def request(self, flow: http.HTTPFlow) -> None:
        """P1 detectors on the request, as the vendor will receive it."""
        if self.in_scope(flow.request.pretty_host):
            _note(flow, identifying_data(observe(flow, 0).request, self.canaries))

    def response(self, flow: http.HTTPFlow) -> None:
        """Record the flow; note cookies set and third parties in HTML pages."""
        observed = observe(flow, self.html_limit)
        self._record(flow, observed)
        if not self.in_scope(observed.request.host):
            return
        refs = third_party_references(observed.html, self.index) if observed.html else []
        lines = [f"third party: {r.host} ({r.kind})" for r in refs]
        lines += [
            f"sets cookie {c.name} ({c.lifetime})" for c in cookies_set(observed.response_headers)
        ]
        if lines:
            flow.comment = "\n".join(filter(None, [flow.comment, *lines]))

    def error(self, flow: http.HTTPFlow) -> None:
        """A flow that got no response is still a request the vendor (may have) received."""
        self._record(flow, observe(flow, 0))

    # ---- storage

    def _record(self, flow: http.HTTPFlow, observed: ObservedFlow) -> None:
        if len(self.observed) < MAX_OBSERVED:
            self.observed.append(observed)
        if not self.in_scope(observed.request.host):
            return
        if len(self.kept) >= MAX_KEPT:
            self.not_kept += 1
            return
        self.kept.append(_trimmed_copy(flow, self.html_limit))


def _trimmed_copy(flow: http.HTTPFlow, limit: int) -> http.HTTPFlow:
    """A copy to save, its HTML body cut to ``limit`` bytes (the live flow is untouched)."""
    copy: http.HTTPFlow = flow.copy()  # type: ignore[no-untyped-call]
    response = copy.response
    if response is not None and response.raw_content is not None:
        content = response.get_content(strict=False) or b""
        if len(content) > limit:
            response.content = content[:limit]
            copy.comment = "\n".join(filter(None, [copy.comment, f"body cut to {limit} bytes"]))
    return copy


async def checked_address(host: str, port: int) -> str:
    """An address of ``host`` the proxy may connect to (DESIGN P6), or AddressRefused."""
    try:
        literal = ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        reason = forbidden_reason(literal)
        if reason is not None:
            raise AddressRefused(reason)
        return str(literal)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise AddressRefused("DNS lookup failed") from exc
    reasons = []
    for info in infos:
        addr = ip_address(str(info[4][0]).split("%", 1)[0])
        reason = forbidden_reason(addr)
        if reason is None:
            return str(addr)
        reasons.append(reason)
    raise AddressRefused(reasons[0] if reasons else "no address")
