"""Review mode's way to vendors: aiohttp's client through the recording HTTP proxy.

Contract: ``ProxiedSender.create(resolver, context, proxy, timeouts)`` builds the code base's
only aiohttp ``ClientSession`` (one owner: ``UpstreamClient``) and ``send()`` makes one
request through the review hop with the same rules as the pool: no redirects, no
decompression, no cookies, no headers of aiohttp's own, first-byte and idle-read deadlines,
TLS verified. Responses are ``UpstreamResponse``s like the pool's.
Not here: the review hop itself (proxy/review/), the normal path (upstream_pool.py).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Final

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from proxy.core.settings import Timeouts
from proxy.upstream_guard import DNS_TTL, GuardedResolver
from proxy.upstream_pool import POOL_LIMIT, POOL_LIMIT_PER_HOST
from proxy.upstream_wire import decode_fields

# Headers aiohttp would add on its own (Accept: */*, Accept-Encoding: gzip…, User-Agent:
# Python/3.11 aiohttp/3.x, Content-Type: application/octet-stream for bodies). Each is a
# fingerprint or a lie about the patron's browser: only the header policy decides them.
SKIP_AUTO_HEADERS: Final = frozenset(
    {hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE}
)


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
        return decode_fields(self.raw_headers)

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


def _narrow_read_timeout(response: aiohttp.ClientResponse, idle_read: float) -> None:
    """At most ``idle_read`` seconds of silence while the body streams (aiohttp path).

    The new value applies from the next chunk on (a timer already running keeps its
    length). The timer is not restarted here: aiohttp stops it while *we* are not reading
    (back-pressure) or once the body is complete, and restarting it would blame the vendor.
    """
    connection = response.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.read_timeout = idle_read


class ProxiedSender:
    """aiohttp's ClientSession, for review mode only."""

    def __init__(self, session: aiohttp.ClientSession, proxy: str) -> None:  # noqa: TID251
        self._session = session
        self._proxy = proxy
        # id(Timeouts) → (it, its ClientTimeout): built once per distinct value.
        self._client_timeouts: dict[int, tuple[Timeouts, aiohttp.ClientTimeout]] = {}

    @classmethod
    def create(
        cls, resolver: GuardedResolver, context: ssl.SSLContext, proxy: str, timeouts: Timeouts
    ) -> ProxiedSender:
        """Build the session (inside the running loop)."""
        # The one ClientSession of the code base (CONVENTIONS 6: one owner per resource).
        session = aiohttp.ClientSession(  # noqa: TID251
            connector=_connector(resolver, context),
            cookie_jar=aiohttp.DummyCookieJar(),  # per-session jars live in the relay
            auto_decompress=False,
            trust_env=False,  # no HTTP(S)_PROXY / .netrc from the environment
            skip_auto_headers=SKIP_AUTO_HEADERS,
            timeout=_client_timeout(timeouts),
            requote_redirect_url=False,
        )
        return cls(session, proxy)

    async def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None,
        t: Timeouts,
    ) -> _AiohttpResponse:
        """One request through the review hop; the response once its head is in."""
        async with asyncio.timeout(t.first_byte):
            response = await self._session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                compress=None,
                proxy=self._proxy,
                timeout=self._client_timeout_for(t),
            )
        _narrow_read_timeout(response, t.idle_read)
        return _AiohttpResponse(response)

    def _client_timeout_for(self, t: Timeouts) -> aiohttp.ClientTimeout:
        cached = self._client_timeouts.get(id(t))
        if cached is None or cached[0] is not t:
            cached = self._client_timeouts[id(t)] = (t, _client_timeout(t))
        return cached[1]

    async def close(self) -> None:
        """Close the session."""
        await self._session.close()
