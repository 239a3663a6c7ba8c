"""Live checks of library cards against a library's own systems (its ILS or directory).

Contract: each back-end offers an async ``check(card, pin)`` returning a frozen value that
holds only the decision (nothing personal), and raises errors carrying ``status_hint``:
SIP2 (``sip2_client.Sip2Client``) and LDAP (``ldap_client.LdapChecker``). ``backends``
builds them per library and turns their answers into core/ilsauth.py ``Answer``s, recording
``health``; ``chain`` asks a library's back-ends in order; ``credentials`` reads their
password files; ``ldap_errors`` holds ``LdapUnavailable`` apart, so ldap3 is loaded only when
a library uses LDAP. Not here: the login flow (proxy/web/card_check.py), the wire format
(proxy/core/sip2.py), the decisions (proxy/core/ilsauth.py), the settings
(proxy/core/authconfig.py).
"""
