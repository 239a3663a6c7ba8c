"""What can go wrong between the proxy and a vendor, as errors a patron can be shown.

Contract: every ``UpstreamError`` carries the HTTP status it becomes and a patron-safe
message: unreachable (refused, DNS, TLS, a bad response) → 502, too slow → 504, a forbidden
address → 502 with the same page as "unreachable" (DESIGN P6: nothing tells a prober which
internal addresses exist), no free connection slot in time → 503, a request body that does
not match its declared length → 400.
Not here: raising them (upstream/client.py, upstream/guard.py), rendering them (web/errors.py).
"""

from __future__ import annotations

from typing import Final

from proxy.errors import ClamshellError

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


class UpstreamBusy(UpstreamError):
    """No connection slot to the vendor came free within ``upstream.queue_timeout``."""

    status_hint = 503
    public_message = "The database is very busy right now. Please try again in a moment."


class UpstreamBadRequestBody(UpstreamError):
    """The request body did not match its declared length; nothing more was sent (R1)."""

    status_hint = 400
    public_message = "The request could not be forwarded to the database. Please try again."
