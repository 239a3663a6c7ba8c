"""The one way to vendors: the client, its HTTP/1.1 pool, the wire protocol, the SSRF guard.

Contract: ``client.UpstreamClient`` is the only thing the relay and review mode use to send a
request upstream; it owns one ``pool.ConnectionPool`` (connections parsed by ``wire``) whose
new connections go only to addresses ``guard`` checked; ``errors`` are what callers catch.
Not here: which headers leave (core/headers.py), deciding whether to relay (web/relay.py).
"""
