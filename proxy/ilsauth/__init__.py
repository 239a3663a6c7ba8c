"""Live checks of library cards against a library's own systems (its ILS).

Contract: each back-end offers an async ``check(card, pin)`` returning a frozen verdict that
holds only the decision (nothing personal), and raises errors carrying ``status_hint``.
Today: SIP2 (``sip2_client.Sip2Client``). Not here: choosing the back-end per library and the
login flow (proxy/web), the wire format (proxy/core/sip2.py).
"""
