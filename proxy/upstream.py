"""The upstream client: the one owner of connections to vendors, guarded against SSRF.

Contract: ``UpstreamClient.create(settings)`` (inside a running event loop) builds the
connection pool (upstream_pool.py; in review mode instead the code base's only aiohttp
``ClientSession``, which reaches vendors through the recording proxy) and ``close()`` ends
it. ``send()`` makes exactly the request it is given and returns an ``UpstreamResponse``
with its body unread (the caller streams it with ``iter_body`` and releases it): no
redirects followed, no decompression, no cookies, no headers beyond the policy's own and
the body's framing, explicit connect / first-byte / idle-read deadlines, TLS verified. Every
address connected to is one the ``GuardedResolver`` returned (answers cached for DNS_TTL).
Failures become ``UpstreamError``s with patron-safe messages: unreachable (refused, DNS,
TLS, bad response) → 502, too slow → 504, a forbidden address → 502 with the same page as
"unreachable" (DESIGN P6).
Admin overrides (``upstream_overrides``: vendor host → ``scheme://ip:port``) keep the vendor's
host name in the URL, so the Host header, SNI and certificate checks stay the vendor's; only
the resolver knows the real address.
Not here: HTTP/1.1 on the wire (upstream_pool.py), which hosts a rule covers and what
headers may leave (core), per-session cookie jars, rewriting, rendering errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final, Protocol, cast
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

from proxy.core.addresses import forbidden_reason
from proxy.core.hostmap import DEFAULT_PORTS, Origin, Scheme
from proxy.core.settings import Settings, Timeouts
from proxy.errors import ClamshellError
from proxy.logconfig import get_logger
from proxy.upstream_pool import Address, ConnectionPool, PoolKey, UpstreamConnectionError

log = get_logger("upstream")

POOL_LIMIT: Final = 256  # open upstream connections in all
POOL_LIMIT_PER_HOST: Final = 100  # per vendor (host, port, TLS): caps what one vendor can hog
DNS_TTL: Final = 60  # seconds; only checked answers are ever cached (GuardedResolver filters)
# Headers aiohttp would add on its own (Accept: */*, Accept-Encoding: gzip…, User-Agent:
# Python/3.11 aiohttp/3.x, Content-Type: application/octet-stream for bodies). Each is a
# fingerprint or a lie about the patron's browser: only the header policy decides them.
SKIP_AUTO_HEADERS: Final = frozenset(
    {hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE}
)
# Printable ASCII except '#' is left as the browser sent it; anything else is %-escaped so
# the request line holds exactly one request target (RFC 9112 §3.2).
_TARGET_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")
_NUMERIC_FLAGS: Final = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV

UNREACHABLE_MESSAGE: Final = (
    "The database's server could not be reached. Please try again in a few minutes."
)


class UpstreamError(ClamshellError):
    """The vendor's server could not give an answer."""

    status_hint = 502
    public_message = UNREACHABLE_MESSAGE


class UpstreamUnreachable(UpstreamError):
    """Connection refused or reset, DNS failure, TLS failure (e.g. a bad certificate)."""


class ForbiddenUpstream(UpstreamError):
    """The host resolves only to addresses the proxy must never connect to (DESIGN P6).

    The patron sees the same page as for an unreachable vendor: nothing tells a prober
    which internal addresses exist.
    """

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class UpstreamTimeout(UpstreamError):
    """The vendor did not connect, start answering, or keep sending in time."""

    status_hint = 504
    public_message = "The database's server is taking too long to answer. Please try again."


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


@dataclass(frozen=True, slots=True)
class Override:
    """Where an admin-mapped vendor host really is: ``http://127.0.0.1:9001``."""

    scheme: Scheme
    host: str
    port: int

    @classmethod
    def parse(cls, origin: str) -> Override:
        """Parse an origin already validated by ``Settings`` (scheme http/https, a host)."""
        parts = urlsplit(origin)
        scheme: Scheme = "https" if parts.scheme == "https" else "http"
        return cls(scheme, parts.hostname or "", parts.port or DEFAULT_PORTS[scheme])


def parse_overrides(raw: Mapping[str, str]) -> dict[str, Override]:
    """``Settings.upstream_overrides`` as values, keyed by lowercase vendor host."""
    return {host.lower(): Override.parse(origin) for host, origin in raw.items()}


@functools.lru_cache(maxsize=1024)  # per request (hosts repeat); ipaddress parsing is slow
def _ip_or_none(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip("[]"))
    except ValueError:
        return None


def _answer_reason(answer: ResolveResult) -> str | None:
    addr = _ip_or_none(answer["host"])
    return "not an IP address" if addr is None else forbidden_reason(addr)


def _literal_result(hostname: str, addr: IPv4Address | IPv6Address, port: int) -> ResolveResult:
    family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    return ResolveResult(
        hostname=hostname, host=str(addr), port=port, family=family, proto=0, flags=_NUMERIC_FLAGS
    )


def _refused(host: str, reason: str) -> ForbiddenUpstream:
    log.warning("upstream_refused", host=host, reason=reason)
    return ForbiddenUpstream(host, reason)


class GuardedResolver(AbstractResolver):
    """A resolver that never answers with an address the proxy must not connect to.

    Hosts in ``upstream_overrides`` map to the override's address, unchecked (the admin chose
    it) and with the port asked for. Any other host is resolved by ``base``; forbidden
    addresses are dropped and ``ForbiddenUpstream`` is raised if none is left.

    No DNS-rebinding window: aiohttp's connector connects to exactly the addresses this
    method returns (and caches only those), it never resolves the name a second time. The
    address that was checked is the address that is connected to.
    """

    def __init__(self, overrides: Mapping[str, Override], base: AbstractResolver) -> None:
        self._overrides = overrides
        self._base = base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        override = self._overrides.get(host.lower())
        if override is not None:
            return await self._resolve_override(host, port, family, override)
        literal = _ip_or_none(host)  # aiohttp skips resolvers for IP literals; just in case
        if literal is not None:
            reason = forbidden_reason(literal)
            if reason is not None:
                raise _refused(host, reason)
            return [_literal_result(host, literal, port)]
        answers = await self._base.resolve(host, port, family)
        reasons = [_answer_reason(answer) for answer in answers]
        allowed = [answer for answer, why in zip(answers, reasons, strict=True) if why is None]
        if not allowed:
            raise _refused(host, next(filter(None, reasons), "no address"))
        return allowed

    async def _resolve_override(
        self, host: str, port: int, family: socket.AddressFamily, override: Override
    ) -> list[ResolveResult]:
        literal = _ip_or_none(override.host)
        if literal is not None:
            return [_literal_result(host, literal, port)]
        return await self._base.resolve(override.host, port, family)

    async def close(self) -> None:
        await self._base.close()


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The system's default verifying context, also trusting ``ca_file`` when given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _checked_proxy(proxy: str | None) -> str | None:
    """Review mode's HTTP proxy must be an IP literal on loopback (it bypasses the resolver)."""
    if proxy is None:
        return None
    url = URL(proxy)
    addr = _ip_or_none(url.host or "")
    if url.scheme != "http" or addr is None or not addr.is_loopback:
        raise ValueError(f"proxy must be http://<loopback IP>:<port>, not {proxy!r}")
    return proxy


def _connector(resolver: GuardedResolver, context: ssl.SSLContext) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(
        limit=POOL_LIMIT,
        limit_per_host=POOL_LIMIT_PER_HOST,
        ttl_dns_cache=DNS_TTL,
        enable_cleanup_closed=True,
        ssl=context,  # verification on, always: a bad certificate is a 502, not a downgrade
        resolver=resolver,  # every connection's address comes from the guard
    )


def _client_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    # sock_read also runs while waiting for the headers, so it must not cut first_byte
    # short; send() narrows it to idle_read once the headers are in.
    return aiohttp.ClientTimeout(
        total=None, connect=None, sock_connect=t.connect, sock_read=max(t.first_byte, t.idle_read)
    )


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


class _AiohttpResponse:
    """aiohttp's ClientResponse as an ``UpstreamResponse`` (review mode's proxied path)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    @property
    def reason(self) -> str:
        return self._response.reason or ""

    @property
    def host(self) -> str:
        return self._response.url.host or ""

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._response.headers

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._response.raw_headers

    @property
    def decoded_headers(self) -> list[tuple[str, str]]:
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.raw_headers]

    @property
    def content_length(self) -> int | None:
        return self._response.content_length

    @property
    def content_type(self) -> str:
        return self._response.content_type

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    async def read(self) -> bytes:
        return await self._response.read()

    def release(self) -> None:
        self._response.release()


class UpstreamClient:
    """The pooled connections to vendors; create it once per app and close it on shutdown.

    Requests go through ``ConnectionPool`` (upstream_pool.py). Review mode's recording HTTP
    proxy is reached through aiohttp's client instead, the one ``ClientSession`` of the code
    base, created only then.
    """

    def __init__(
        self,
        pool: ConnectionPool | None,
        session: aiohttp.ClientSession | None,  # noqa: TID251 (a type, not a construction)
        resolver: GuardedResolver,
        *,
        overrides: Mapping[str, Override],
        timeouts: Timeouts,
        proxy: str | None = None,
    ) -> None:
        self._pool = pool
        self._session = session
        self._resolver = resolver
        self._overrides = overrides
        self.timeouts = timeouts
        self._proxy = proxy
        self._dns: dict[tuple[str, int], tuple[float, list[Address]]] = {}
        # id(Timeouts) → (it, its ClientTimeout): built once per distinct value, looked up by
        # identity (hashing a pydantic model per request showed in the profile).
        self._client_timeouts: dict[int, tuple[Timeouts, aiohttp.ClientTimeout]] = {}
        self._merged: dict[int, tuple[TimeoutValues, Timeouts]] = {}  # a rule's, with globals

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        ca_file: str | None = None,
        proxy: str | None = None,
        base_resolver: AbstractResolver | None = None,
    ) -> UpstreamClient:
        """Build the pool (or, for review mode, the session); call inside the running loop.

        Args:
            ca_file: an extra CA bundle to trust besides the system's (review mode, tests).
            proxy: review mode's recording HTTP proxy, ``http://127.0.0.1:<port>``.
            base_resolver: the DNS behind the guard (default: getaddrinfo in a thread).
        """
        proxy = _checked_proxy(proxy)  # before anything that would need closing
        overrides = parse_overrides(settings.upstream_overrides)
        resolver = GuardedResolver(overrides, base_resolver or aiohttp.ThreadedResolver())
        context = tls_context(ca_file)
        if proxy is None:
            client = cls(None, None, resolver, overrides=overrides, timeouts=settings.timeouts)
            client._pool = ConnectionPool(
                client._addresses, context, limit=POOL_LIMIT, limit_per_host=POOL_LIMIT_PER_HOST
            )
            return client
        # The one ClientSession of the code base (CONVENTIONS 6: one owner per resource).
        session = aiohttp.ClientSession(  # noqa: TID251
            connector=_connector(resolver, context),
            cookie_jar=aiohttp.DummyCookieJar(),  # per-session jars live in the relay
            auto_decompress=False,
            trust_env=False,  # no HTTP(S)_PROXY / .netrc from the environment
            skip_auto_headers=SKIP_AUTO_HEADERS,
            timeout=_client_timeout(settings.timeouts),
            requote_redirect_url=False,
        )
        return cls(
            None,
            session,
            resolver,
            overrides=overrides,
            timeouts=settings.timeouts,
            proxy=proxy,
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
            body: streamed when an async iterable (chunked unless Content-Length is given).
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
            if self._pool is None:
                return await self._send_proxied(method, target, pairs, body, t)
            return await self._pool.request(
                PoolKey(target.scheme, target.host, target.port),
                method,
                target.path_qs,
                pairs,
                body,
                connect=t.connect,
                first_byte=t.first_byte,
                idle_read=t.idle_read,
            )
        except UpstreamError:
            raise  # ForbiddenUpstream from the resolver: already logged
        except TimeoutError as exc:  # also aiohttp's ServerTimeoutError / ConnectionTimeoutError
            log.warning("upstream_timed_out", host=target.host, cause=type(exc).__name__)
            raise UpstreamTimeout() from exc
        except (UpstreamConnectionError, aiohttp.ClientError, OSError) as exc:
            log.warning("upstream_unreachable", host=target.host, cause=type(exc).__name__)
            raise UpstreamUnreachable() from exc

    async def _send_proxied(
        self,
        method: str,
        target: UpstreamTarget,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None,
        t: Timeouts,
    ) -> UpstreamResponse:
        """Through review mode's HTTP proxy, with aiohttp's client."""
        assert self._session is not None
        async with asyncio.timeout(t.first_byte):
            response = await self._session.request(
                method,
                URL(str(target), encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                compress=None,
                proxy=self._proxy,
                timeout=self._client_timeout_for(t),
            )
        _narrow_read_timeout(response, t.idle_read)
        return _AiohttpResponse(response)

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

    def _client_timeout_for(self, t: Timeouts) -> aiohttp.ClientTimeout:
        cached = self._client_timeouts.get(id(t))
        if cached is None or cached[0] is not t:
            if len(self._client_timeouts) > 1024:
                self._client_timeouts.clear()
            cached = self._client_timeouts[id(t)] = (t, _client_timeout(t))
        return cached[1]

    def _check_literal(self, host: str) -> None:
        """An IP-literal host would skip the resolver's checks (aiohttp's): check it here."""
        addr = _ip_or_none(host)
        if addr is None or host.lower() in self._overrides:
            return
        reason = forbidden_reason(addr)
        if reason is not None:
            raise _refused(host, reason)

    async def close(self) -> None:
        """Close pooled connections and the resolver."""
        if self._pool is not None:
            await self._pool.close()
        if self._session is not None:
            await self._session.close()
        await self._resolver.close()


def _narrow_read_timeout(response: aiohttp.ClientResponse, idle_read: float) -> None:
    """At most ``idle_read`` seconds of silence while the body streams (aiohttp path).

    The new value applies from the next chunk on (a timer already running keeps its
    length). The timer is not restarted here: aiohttp stops it while *we* are not reading
    (back-pressure) or once the body is complete, and restarting it would blame the vendor.
    """
    connection = response.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.read_timeout = idle_read


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
    except (UpstreamConnectionError, aiohttp.ClientError) as exc:  # reset, truncated, bad chunks
        log.warning("upstream_unreachable", host=response.host, cause=type(exc).__name__)
        raise UpstreamUnreachable() from exc


async def iter_body(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """The response body as it arrives (still encoded); read failures become UpstreamErrors."""
    with _body_errors(response):
        async for chunk in response.chunks():
            yield chunk
