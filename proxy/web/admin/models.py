"""The admin API's JSON shapes: frozen pydantic models, one per body in or out.

Contract: every response body is an ``Out`` (immutable, no unknown keys, dumped by alias so
``StatsOut.from_`` is ``"from"``); request bodies (``SuspendIn``, ``BlockIn``) carry their own
patterns, so a parsed body is already checked. Privacy: no model has a field that could name
a patron, a card, a session token or what anyone read (DESIGN P3).
Not here: filling them from the main app's resources (views.py), the handlers
(api.py), the OpenAPI document built from them (openapi.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

FILTER_MAX: Final = 64  # the longest ``vendor`` / ``library`` filter of ``/api/stats``
CASE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # a block's case number (#18)


class Out(BaseModel):
    """Base of every JSON body: immutable, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ErrorOut(Out):
    """Why a request was refused."""

    error: str
    problems: list[str] = []


class ReloadOut(Out):
    """One rules load attempt; when ``ok`` is false the previous rules stay in use."""

    at: datetime
    ok: bool
    rule_count: int
    problems: list[str]


class VendorOut(Out):
    """One vendor rule in use and the state of its file."""

    id: str
    title: str
    hosts: int
    domains: int
    source: str
    libraries: Literal["all"] | list[str]
    status: Literal["ok", "file_has_errors"]


class VendorsOut(Out):
    """The rules in use and the last reload."""

    vendors: list[VendorOut]
    last_reload: ReloadOut


class HealthOut(Out):
    """Liveness and the numbers a monitor wants."""

    status: Literal["ok"]
    now: datetime
    rule_count: int
    last_reload_ok: bool
    active_sessions: int
    login_alarms_raised: int = 0  # R4: global failed-login alarms since start


class UsageRowOut(Out):
    """Aggregate usage for one (day, vendor, member library)."""

    day: date
    vendor: str
    library: str
    sessions: int
    uniques: int
    requests: int
    bytes: int
    downloads: int


class LoginCountOut(Out):
    """Logins for one (day, member library, outcome)."""

    day: date
    library: str
    outcome: str
    count: int


class ThirdPartyOut(Out):
    """A third-party host referenced by a vendor's pages, summed over the period."""

    vendor: str
    host: str
    referenced: int
    blocked: int


class StatsOut(Out):
    """Aggregate statistics for a period (inclusive, UTC days)."""

    from_: date = Field(alias="from")
    to: date
    usage: list[UsageRowOut]
    logins: list[LoginCountOut]
    third_parties: list[ThirdPartyOut]


class SuspensionOut(Out):
    """A suspended session, by its pseudonymous hash only."""

    session_hash: str
    vendor: str
    limit: str
    since: datetime
    until: datetime | None = None  # when the suspension ends by itself (#18 item 2)


class SuspensionsOut(Out):
    """Sessions suspended now."""

    suspensions: list[SuspensionOut]


class BlockIn(Out):
    """A vendor's abuse report: its service, the pseudonym it saw, the day."""

    vendor: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    pseudonym: str = Field(pattern=r"^[a-zA-Z2-7]{26}$")
    day: date
    # #18: what the local block list records (never a name or card number in ``reason``)
    case: str | None = Field(default=None, pattern=CASE_PATTERN)
    reason: str = Field(default="", max_length=200)
    by: str = Field(default="admin API", min_length=1, max_length=64)
    expires: date | None = None  # the block ends after this day (UTC); None: until lifted


class BlockOut(Out):
    """What staff may know: the member library and a case number, never the card."""

    library: str
    case: str
    sessions_ended: int


class SuspendIn(Out):
    """Suspend the live session whose pseudonymous hash is given."""

    session_hash: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    vendor: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


class BackendHealthOut(Out):
    """#16: one live card-check back-end of one library (nothing about any card)."""

    library: str
    backend: str
    checks: int
    failures: int
    last_success: datetime | None
    last_failure: datetime | None
    last_error: str | None  # an exception type name, e.g. Sip2Timeout
    last_latency_ms: float | None
    mean_latency_ms: float | None


class BackendsOut(Out):
    """#16: every library's live back-ends (SIP2, LDAP) as this process has seen them."""

    backends: list[BackendHealthOut]
