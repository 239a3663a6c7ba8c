"""The error an LDAP card check raises when the directory cannot answer.

Contract: ``LdapUnavailable`` (503, patron-safe message) is raised by ldap_client.py and
caught by backends.py as an outage. It lives apart from ldap_client.py so that backends.py
can name it without importing ldap3 (~5 MiB of memory) in a proxy whose libraries use no
LDAP (issue 19); ldap_client.py is imported only when an LDAP checker is built.
Not here: the LDAP client itself (ldap_client.py).
"""

from __future__ import annotations

from proxy.errors import ClamshellError


class LdapUnavailable(ClamshellError):
    """The directory could not answer a card check."""

    status_hint = 503
    public_message = "We can't check your card right now. Please try again in a few minutes."
