"""Prometheus metrics (issue #20): aggregates only, served at ``/metrics`` on the admin listener.

Contract: ``METRICS`` is the process's one set of prometheus-client collectors; the shell
counts into it through the small ``count_*``/``observe_*`` functions below, whose label values
come only from closed sets or configuration: a vendor rule id, a member library code, an HTTP
status *class* (``2xx``), a login outcome reason, an abuse limit name, a reload result. No
label can carry a path, a query, a host a patron typed, a session, a card or an address
(DESIGN P3; tests/test_metrics.py plants canaries). ``render(...)`` sets the scrape-time
gauges and returns the exposition text and its content type.
Workers > 1 (issue 15): the supervisor (proxy/workers.py) gives the workers a fresh private
``PROMETHEUS_MULTIPROC_DIR`` unless the operator set one (an empty directory writable by
every worker before the processes start: prometheus-client's multiprocess mode); ``render``
then aggregates every worker's files. Gauges are ``mostrecent`` there: they are read from the
shared state (sessions, rules), so the newest value from any worker is the right one.
Not here: who may scrape (web/admin/app.py), statistics kept in SQLite (stores/stats.py).
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# Upstream latency buckets (seconds): vendor pages answer in 50 ms to a few seconds.
LATENCY_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATUS_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")


class Metrics:
    """The collectors, registered in ``registry`` (the default one in production)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry = reg
        self.requests = Counter(
            "clamshell_relayed_requests",
            "Responses relayed to patrons, by vendor rule and status class.",
            ("vendor", "status_class"),
            registry=reg,
        )
        self.bytes = Counter(
            "clamshell_relayed_bytes",
            "Body bytes relayed to patrons, by vendor rule.",
            ("vendor",),
            registry=reg,
        )
        self.rewritten = Counter(
            "clamshell_rewritten_bytes",
            "Vendor body bytes that went through host rewriting, by vendor rule.",
            ("vendor",),
            registry=reg,
        )
        self.upstream = Histogram(
            "clamshell_upstream_seconds",
            "Time to the vendor's response headers, by vendor rule.",
            ("vendor",),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.logins = Counter(
            "clamshell_logins",
            "Patron logins by member library and outcome (ok, or the reason refused).",
            ("library", "outcome"),
            registry=reg,
        )
        self.abuse = Counter(
            "clamshell_abuse_trips",
            "Usage limits crossed (a session suspended or logged), by limit.",
            ("limit",),
            registry=reg,
        )
        self.reloads = Counter(
            "clamshell_rules_reloads",
            "Vendor rule reloads by result.",
            ("result",),
            registry=reg,
        )
        self.config_reloads = Counter(
            "clamshell_config_reloads",
            "proxy.yaml reloads (SIGHUP) by result.",
            ("result",),
            registry=reg,
        )
        gauge_mode: Final = "mostrecent"
        self.sessions = Gauge(
            "clamshell_active_sessions",
            "Patron sessions alive now.",
            registry=reg,
            multiprocess_mode=gauge_mode,
        )
        self.rules = Gauge(
            "clamshell_vendor_rules",
            "Vendor rules in use.",
            registry=reg,
            multiprocess_mode=gauge_mode,
        )
        self.alarms = Gauge(
            "clamshell_login_alarms",
            "Consortium-wide failed-login alarms raised since start (throttle trips).",
            registry=reg,
            multiprocess_mode=gauge_mode,
        )


METRICS: Final = Metrics()  # one per process (in multiprocess mode its values go to files)


def status_class(status: int) -> str:
    """``404`` → ``4xx`` (a closed set: nothing else reaches a label)."""
    return STATUS_CLASSES[min(max(status // 100, 1), 5) - 1]


# The labelled children the relay counts into on every request, by label values. Looking a
# child up through ``.labels(...)`` validates and joins the labels each time (profiled:
# ~7 µs per call, two or three calls per relayed request); prometheus-client's docs suggest
# keeping the child. Keys are vendor rule ids and status classes: closed sets from the
# configuration, so these stay as small as the collectors' own child maps.
_REQUESTS: dict[tuple[str, str], Counter] = {}
_BYTES: dict[str, Counter] = {}
_UPSTREAM: dict[str, Histogram] = {}


def count_response(vendor: str, status: int, size: int) -> None:
    """One relayed response."""
    key = (vendor, status_class(status))
    requests = _REQUESTS.get(key)
    if requests is None:
        requests = _REQUESTS[key] = METRICS.requests.labels(vendor=vendor, status_class=key[1])
    requests.inc()
    sizes = _BYTES.get(vendor)
    if sizes is None:
        sizes = _BYTES[vendor] = METRICS.bytes.labels(vendor=vendor)
    sizes.inc(size)


def count_rewrite(vendor: str, size: int) -> None:
    """A body rewritten on its way to the patron (bytes as read from the vendor)."""
    METRICS.rewritten.labels(vendor=vendor).inc(size)


def observe_upstream(vendor: str, seconds: float) -> None:
    """Time to the vendor's headers."""
    histogram = _UPSTREAM.get(vendor)
    if histogram is None:
        histogram = _UPSTREAM[vendor] = METRICS.upstream.labels(vendor=vendor)
    histogram.observe(seconds)


def count_login(library: str, outcome: str) -> None:
    """One login attempt (library code or ``unknown``; outcome ``ok`` or a refusal reason)."""
    METRICS.logins.labels(library=library, outcome=outcome).inc()


def count_abuse_trip(limit: str) -> None:
    """A usage limit crossed."""
    METRICS.abuse.labels(limit=limit).inc()


def count_reload(ok: bool, *, config: bool = False) -> None:
    """A rules (or proxy.yaml) reload and whether it was taken."""
    counter = METRICS.config_reloads if config else METRICS.reloads
    counter.labels(result="ok" if ok else "refused").inc()


def render(*, active_sessions: int, rules: int, alarms: int) -> tuple[bytes, str]:
    """Set the scrape-time gauges; the exposition text and its content type."""
    METRICS.sessions.set(active_sessions)
    METRICS.rules.set(rules)
    METRICS.alarms.set(alarms)
    registry = METRICS.registry
    if MULTIPROC_ENV in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
