"""Vendor review detectors: what a vendor received, what it set, whom its pages call.

Contract: pure functions over plain values (``ObservedRequest``/``ObservedFlow`` built by the
mitmproxy addon or from a saved capture) that return findings and summaries. The review
addon and ``review --analyze`` both call exactly these, so a live review and a re-analysis
cannot disagree. Findings never carry a canary's value: they name it by its label
("[card number]"), and ``Canaries.redact`` is applied to every string shown in a report.
Short canaries (< ``MIN_SUBSTRING`` characters) are matched as whole tokens only, longer ones
anywhere, raw and in percent-encoded, base64 and hashed (md5/sha1/sha256 hex) forms.

This package is the entry point: it re-exports the detectors, grouped by responsibility in
observed.py (the values and ``Finding``), canaries.py (canaries and matching them),
identifying.py (P1 and the header summaries), pseudonyms.py (P2), vendorcookies.py (the
cookies a vendor set) and thirdparty.py (hosts contacted, P6, and third-party references).
Not here: mitmproxy types (proxy/review/addon.py), rendering reports (proxy/review/report.py),
the tracker list itself (core/trackers.py).
"""

from __future__ import annotations

from proxy.core.review.canaries import B64_TOKEN, MIN_SUBSTRING, Canaries, Canary, canary_places
from proxy.core.review.identifying import (
    FINGERPRINT_HEADERS,
    IDENTIFYING_NAMES,
    fingerprint_surface,
    header_names,
    identifying_data,
    varying_headers,
)
from proxy.core.review.observed import Finding, Header, Invariant, ObservedFlow, ObservedRequest
from proxy.core.review.pseudonyms import PseudonymUse, pseudonym_check, pseudonym_values
from proxy.core.review.thirdparty import (
    DATA_SCRIPT,
    FETCHING_RELS,
    FETCHING_TAG,
    INLINE_SCRIPT,
    REL_ATTR,
    SCRIPT_URL,
    URL_ATTR,
    HostsContacted,
    ThirdPartyRef,
    hosts_contacted,
    third_party_references,
)
from proxy.core.review.vendorcookies import CookieSet, cookies_set

__all__ = [
    "B64_TOKEN",
    "DATA_SCRIPT",
    "FETCHING_RELS",
    "FETCHING_TAG",
    "FINGERPRINT_HEADERS",
    "IDENTIFYING_NAMES",
    "INLINE_SCRIPT",
    "MIN_SUBSTRING",
    "REL_ATTR",
    "SCRIPT_URL",
    "URL_ATTR",
    "Canaries",
    "Canary",
    "CookieSet",
    "Finding",
    "Header",
    "HostsContacted",
    "Invariant",
    "ObservedFlow",
    "ObservedRequest",
    "PseudonymUse",
    "ThirdPartyRef",
    "canary_places",
    "cookies_set",
    "fingerprint_surface",
    "header_names",
    "hosts_contacted",
    "identifying_data",
    "pseudonym_check",
    "pseudonym_values",
    "third_party_references",
    "varying_headers",
]
