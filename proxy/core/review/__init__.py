"""Vendor review detectors: what a vendor received, what it set, whom its pages call.

Contract: pure functions over plain values (``ObservedRequest``/``ObservedFlow`` built by the
mitmproxy addon or from a saved capture) that return findings and summaries. The review
addon and ``review --analyze`` both call exactly these, so a live review and a re-analysis
cannot disagree. Findings never carry a canary's value: they name it by its label
("[card number]"), and ``Canaries.redact`` is applied to every string shown in a report.
Short canaries (< ``MIN_SUBSTRING`` characters) are matched as whole tokens only, longer ones
anywhere, raw and in percent-encoded, base64 and hashed (md5/sha1/sha256 hex) forms.

The detectors are grouped by responsibility; import them from their module:
observed.py (the values and ``Finding``), canaries.py (canaries and matching them),
identifying.py (P1 and the header summaries), pseudonyms.py (P2), vendorcookies.py (the
cookies a vendor set) and thirdparty.py (hosts contacted, P6, and third-party references).
Not here: mitmproxy types (proxy/review/addon.py), rendering reports (proxy/review/report.py),
the tracker list itself (core/trackers.py).
"""
