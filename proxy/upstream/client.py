"""The upstream client: the one owner of connections to vendors, guarded against SSRF.

Contract: ``UpstreamClient.create(settings)`` (inside a running event loop) builds the
connection pool (pool.py) and ``close()`` ends it. In review mode (``proxy=``) the
same pool tunnels every connection through the recording HTTP proxy (CONNECT, then TLS to the
vendor inside the tunnel), so a review records exactly the bytes production sends.
``send()`` makes exactly the request it is given and returns an ``UpstreamResponse`` with
its body unread (the caller streams it with ``iter_body`` and releases it): no
redirects followed, no decompression, no cookies, no headers beyond the policy's own and
the body's framing, explicit connect / first-byte / idle-read deadlines, TLS verified. Every
address connected to is one the ``GuardedResolver`` returned (answers cached for DNS_TTL);
in review mode the vendor host is still checked by it before the CONNECT, and the hop
connects only to a checked address (review/addon.py).
Failures become ``UpstreamError``s with patron-safe messages: unreachable (refused, DNS,
TLS, bad response) → 502, too slow → 504, a forbidden address → 502 with the same page as
"unreachable" (DESIGN P6), no connection slot within ``upstream.queue_timeout`` → 503, a
streamed body that does not match its declared Content-Length → 400. The pool's limits and
the DNS resolver's bounds come from the ``upstream`` settings block.
Admin overrides (``upstream_overrides``: vendor host → ``scheme://ip:port``) keep the vendor's
host name in the URL, so the Host header, SNI and certificate checks stay the vendor's; only
the resolver knows the real address.
Not here: HTTP/1.1 on the wire and the CONNECT tunnel (pool.py), the address
checks (guard.py), the review hop (review/), the errors (upstream/errors.py), which hosts
a rule covers and what headers may leave (core), cookie jars, rewriting, error pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast
from urllib.parse import quote

from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy
from yarl import URL

from proxy.core.addresses import forbidden_reason
from proxy.core.hostmap import DEFAULT_PORTS, Origin, Scheme
from proxy.core.settings import Settings, Timeouts, Upstream
from proxy.logconfig import get_logger
from proxy.upstream.errors import (
    UpstreamBadRequestBody,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from proxy.upstream.guard import (
    DNS_TTL,
    BoundedResolver,
    GuardedResolver,
    Override,
    ip_or_none,
    parse_overrides,
    refused,
)
from proxy.upstream.pool import Address, ConnectionPool, RequestBodyMismatch
from proxy.upstream.wire import PoolKey, UpstreamConnectionError

log = get_logger("upstream")

# Printable ASCII except '#' is left as the browser sent it; anything else is %-escaped so
# the request line holds exactly one request target (RFC 9112 §3.2).
_TARGET_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")


class TimeoutValues(Protocol):
    """Seconds for each upstream deadline; None means "the global value".

    ``core.settings.Timeouts`` and a rule's ``core.rules.RuleTimeouts`` are both one.
    """

    @property
    def connect(self) -> float | None: ...
    @property
    def first_byte(self) -> float | None: ...
    @property
    def idle_read(self) -> float | None: ...


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The system's default verifying context, also trusting ``ca_file`` when given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _checked_proxy(proxy: str | None) -> tuple[str, int] | None:
    """Review mode's HTTP proxy must be an IP literal on loopback (it bypasses the resolver);
    returns its (IP, port)."""
    if proxy is None:
        return None
    url = URL(proxy)
    addr = ip_or_none(url.host or "")
    if url.scheme != "http" or addr is None or not addr.is_loopback or url.port is None:
        raise ValueError(f"proxy must be http://<loopback IP>:<port>, not {proxy!r}")
    return str(addr), url.port


def _request_target(path_qs: str) -> str:
    if not path_qs.startswith("/"):
        raise ValueError(f"request target must start with '/': {path_qs[:40]!r}")
    return quote(path_qs, safe=_TARGET_SAFE)


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where a request goes: the URL's scheme, host, port, and the raw request target."""

    scheme: Scheme
    host: str
    port: int
    path_qs: str

    def __str__(self) -> str:
        default = self.port == DEFAULT_PORTS[self.scheme]
        authority = self.host if default else f"{self.host}:{self.port}"
        return f"{self.scheme}://{authority}{self.path_qs}"

    @classmethod
    def of(cls, url: URL) -> UpstreamTarget:
        """From a yarl URL (tests, callers that already have one)."""
        scheme: Scheme = "https" if url.scheme == "https" else "http"
        return cls(scheme, url.raw_host or "", url.port or DEFAULT_PORTS[scheme], url.raw_path_qs)


class UpstreamResponse(Protocol):
    """A vendor's response with its body unread: what ``send`` returns."""

    status: int

    @property
    def reason(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def headers(self) -> CIMultiDictProxy[str]: ...
    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]: ...
    @property
    def decoded_headers(self) -> list[tuple[str, str]]: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content_type(self) -> str: ...
    def chunks(self) -> AsyncIterator[bytes]: ...
    async def read(self) -> bytes: ...
    def release(self) -> None: ...


class UpstreamClient:
    """The pooled connections to vendors; create it once per app and close it on shutdown.

    Requests go through ``ConnectionPool`` (pool.py); with ``via`` (review mode's
    recording HTTP proxy, a loopback (IP, port)) every connection is a tunnel through it.
    """

    def __init__(
        self,
        resolver: GuardedResolver,
        context: ssl.SSLContext,
        *,
        overrides: Mapping[str, Override],
        timeouts: Timeouts,
        via: tuple[str, int] | None = None,
        limits: Upstream | None = None,
    ) -> None:
        self._resolver = resolver
        self._overrides = overrides
        self.timeouts = timeouts
        self._dns: dict[tuple[str, int], tuple[float, list[Address]]] = {}
        self._merged: dict[int, tuple[TimeoutValues, Timeouts]] = {}  # a rule's, with globals
        self._via = via
        limits = limits or Upstream()
        self._pool = ConnectionPool(
            self._addresses,
            context,
            limit=limits.max_total,
            limit_per_host=limits.max_per_host,
            queue_timeout=limits.queue_timeout,
            unread_timeout=limits.unread_timeout,
        )

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        ca_file: str | None = None,
        proxy: str | None = None,
        base_resolver: AbstractResolver | None = None,
    ) -> UpstreamClient:
        """Build the pool; call inside the running loop.

        Args:
            ca_file: an extra CA bundle to trust besides the system's (review mode, tests).
            proxy: review mode's recording HTTP proxy, ``http://127.0.0.1:<port>``.
            base_resolver: the DNS behind the guard (default: ``BoundedResolver``, getaddrinfo
                on its own threads, bounded as ``settings.upstream`` says).
        """
        via = _checked_proxy(proxy)  # before anything that would need closing
        overrides = parse_overrides(settings.upstream_overrides)
        limits = settings.upstream
        base = base_resolver or BoundedResolver(
            threads=limits.dns_threads,
            per_domain=limits.dns_per_domain,
            negative_ttl=limits.dns_negative_ttl,
        )
        return cls(
            GuardedResolver(overrides, base),
            tls_context(ca_file),
            overrides=overrides,
            timeouts=settings.timeouts,
            via=via,
            limits=limits,
        )

    def target_url(self, origin: Origin, path_qs: str) -> UpstreamTarget:
        """Where to send: the vendor's host, with an override's scheme and port if any.

        ``path_qs`` is the raw request target (``request.raw_path``); it is kept byte for byte
        (printable ASCII as is, anything else %-escaped).
        """
        override = self._overrides.get(origin.host)
        scheme, port = (
            (override.scheme, override.port) if override else (origin.scheme, origin.port)
        )
        return UpstreamTarget(scheme, origin.host, port, _request_target(path_qs))

    @staticmethod
    def host_header(origin: Origin) -> str:
        """The Host value a browser would send to the vendor (never an override's port)."""
        return origin.authority

    def timeouts_for(self, override: TimeoutValues | None) -> Timeouts:
        """The global timeouts with a rule's overrides (its non-None values) applied."""
        if override is None or isinstance(override, Timeouts):
            return override or self.timeouts
        cached = self._merged.get(id(override))
        if cached is None or cached[0] is not override:  # once per rule object
            names = ("connect", "first_byte", "idle_read")
            changes = {n: v for n in names if (v := getattr(override, n)) is not None}
            merged = self.timeouts.model_copy(update=changes) if changes else self.timeouts
            if len(self._merged) > 1024:
                self._merged.clear()
            cached = self._merged[id(override)] = (override, merged)
        return cached[1]

    async def send(
        self,
        method: str,
        url: UpstreamTarget | URL,
        *,
        headers: Mapping[str, str] | Sequence[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None = None,
        timeouts: TimeoutValues | None = None,
    ) -> UpstreamResponse:
        """Send one request; return once the response headers are in, body unread.

        Args:
            url: from ``target_url``; for an overridden host pass ``Host`` in ``headers``.
            headers: exactly what the header policy built; only the body's framing
                (Content-Length or Transfer-Encoding) is added.
            body: streamed when an async iterable: chunked, or with the one valid
                Content-Length in ``headers``, enforced (a longer or shorter stream →
                ``UpstreamBadRequestBody``, connection closed). Any other Content-Length or
                Transfer-Encoding in ``headers`` is replaced by the pool's own framing.
            timeouts: a rule's ``RuleTimeouts`` or full ``Timeouts``; unset values are the
                global ones.
        """
        t = self.timeouts_for(timeouts)
        target = url if isinstance(url, UpstreamTarget) else UpstreamTarget.of(url)
        self._check_literal(target.host)
        # list first: the relay's case, and cheaper than an isinstance() against an ABC
        pairs: Sequence[tuple[str, str]] = (
            headers
            if isinstance(headers, list | tuple)
            else list(cast(Mapping[str, str], headers).items())
        )
        try:
            return await self._pool.request(
                PoolKey(target.scheme, target.host, target.port, self._via),
                method,
                target.path_qs,
                pairs,
                body,
                connect=t.connect,
                first_byte=t.first_byte,
                idle_read=t.idle_read,
            )
        except UpstreamBusy:
            log.warning("upstream_busy", host=target.host)
            raise
        except UpstreamError:
            raise  # ForbiddenUpstream from the resolver: already logged
        except RequestBodyMismatch as exc:
            log.warning("upstream_request_refused", host=target.host, cause=type(exc).__name__)
            raise UpstreamBadRequestBody() from exc
        except TimeoutError as exc:
            log.warning("upstream_timed_out", host=target.host, cause=type(exc).__name__)
            raise UpstreamTimeout() from exc
        except (UpstreamConnectionError, OSError) as exc:
            log.warning("upstream_unreachable", host=target.host, cause=type(exc).__name__)
            raise UpstreamUnreachable() from exc

    async def _addresses(self, host: str, port: int) -> list[Address]:
        """Checked addresses for a host (GuardedResolver), cached for DNS_TTL seconds."""
        now = asyncio.get_running_loop().time()
        cached = self._dns.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        answers = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        found = [(a["family"], a["host"], a["port"]) for a in answers]
        if len(self._dns) > 4096:
            self._dns.clear()
        self._dns[(host, port)] = (now + DNS_TTL, found)
        return found

    def _check_literal(self, host: str) -> None:
        """Refuse a forbidden IP-literal host before waiting for a pool slot (the pool's
        resolver checks literals too, tunnelled or not)."""
        addr = ip_or_none(host)
        if addr is None or host.lower() in self._overrides:
            return
        reason = forbidden_reason(addr)
        if reason is not None:
            raise refused(host, reason)

    async def close(self) -> None:
        """Close pooled connections and the resolver."""
        await self._pool.close()
        await self._resolver.close()


async def read_small(response: UpstreamResponse) -> bytes:
    """A body known to be small (its Content-Length), read at once; failures as in iter_body."""
    with _body_errors(response):
        return await response.read()


@contextlib.contextmanager
def _body_errors(response: UpstreamResponse) -> Iterator[None]:
    """Read failures become UpstreamErrors (logged once, with the host only)."""
    try:
        yield
    except TimeoutError as exc:  # the vendor went silent mid-body
        log.warning("upstream_timed_out", host=response.host, cause=type(exc).__name__)
        raise UpstreamTimeout() from exc
    except UpstreamConnectionError as exc:  # reset, truncated, bad chunks
        log.warning("upstream_unreachable", host=response.host, cause=type(exc).__name__)
        raise UpstreamUnreachable() from exc


async def iter_body(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """The response body as it arrives (still encoded); read failures become UpstreamErrors."""
    with _body_errors(response):
        async for chunk in response.chunks():
            yield chunk
