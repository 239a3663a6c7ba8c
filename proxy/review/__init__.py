"""Vendor review mode: an in-process mitmproxy hop that records what vendors receive.

Contract: ``runner`` starts the hop and the proxy; ``addon`` is the mitmproxy addon; ``report``
writes JSON/HTML/.mitm.
Not here: the command line (``proxy.cli.review``); the detectors, which live in the pure core
(``proxy.core.review``) so that the proxy and the review cannot drift apart.
"""
