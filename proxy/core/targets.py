"""Starting-point targets: is this URL one of our licensed databases, and where is it proxied?

Contract: ``resolve_target(raw, index, hostmap)`` takes the value of ``url=`` (raw) or
``qurl=`` (already percent-decoded by the caller) and returns a ``Target`` (the rule, the
upstream origin, and the mapped URL a patron's browser should go to) or raises
``NotOurDatabase``. Anything odd is refused, never redirected to: other schemes
(``javascript:``), scheme-relative ``//evil``, userinfo tricks, IP literals, hosts no rule
covers (``jstor.org.evil.com``), backslashes and control characters. Resolving registers no
host alias; ``Target.mapped_url`` does, for a patron who is sent there.
Not here: the login decision (core/login.py), HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from proxy.core.hostmap import HostMap, HostMapError, Origin, hostname_problem
from proxy.core.rules import VendorRule
from proxy.core.ruleset import RuleIndex

# Characters browsers strip or reinterpret in URLs (WHATWG URL: tab/newline removal,
# backslash as slash) — a target holding them is refused rather than guessed at.
UNSAFE_URL_CHARS: Final = re.compile(r"[\x00-\x20\x7f\\]")
MAX_TARGET_LENGTH: Final = 8192


class NotOurDatabase(ValueError):
    """The target is not a URL on a host a vendor rule covers."""

    status_hint = 404
    public_message = "This address is not one of our licensed databases."


@dataclass(frozen=True, slots=True)
class Target:
    """A starting point that a rule covers."""

    rule: VendorRule
    origin: Origin
    path_and_query: str

    def mapped_url(self, hostmap: HostMap, public_scheme: str) -> str:
        """The URL under the proxy, e.g. ``http://www-jstor-org.proxy.localhost:8080/x?y``."""
        return f"{public_scheme}://{hostmap.mapped_authority(self.origin)}{self.path_and_query}"


def resolve_target(raw: str, index: RuleIndex, hostmap: HostMap) -> Target:
    """Validate a starting-point URL against the rules; raise NotOurDatabase otherwise."""
    if not raw or len(raw) > MAX_TARGET_LENGTH or UNSAFE_URL_CHARS.search(raw):
        raise NotOurDatabase("empty, too long or unsafe characters")
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise NotOurDatabase("not an absolute http(s) URL")
    if "@" in parts.netloc or "[" in parts.netloc:
        raise NotOurDatabase("userinfo or IP literal")
    host = (parts.hostname or "").lower()
    if hostname_problem(host) is not None:
        raise NotOurDatabase("not a hostname")
    rule = index.rule_for(host)
    if rule is None:
        raise NotOurDatabase("no rule covers the host")
    origin = _origin(parts.scheme.lower(), host, parts.port, index)
    # Not registered here: an unauthenticated /login?url= flood filled the HostMap's bounded
    # alias table and evicted patrons' aliases (pentest R18). ``mapped_url`` registers the
    # alias when a signed-in patron is actually sent there.
    path = parts.path or "/"
    return Target(rule, origin, path + (f"?{parts.query}" if parts.query else ""))


def _origin(scheme: str, host: str, port: int | None, index: RuleIndex) -> Origin:
    """The rule's origin for the host; a link's http/https or default port is normalised to it.

    Libraries' published links often say http:// for vendors that moved to https; the rule,
    not the link, decides the upstream scheme (DESIGN: "the upstream scheme comes from the
    rule"). An explicit non-default port must match the rule's.
    """
    known = index.origin_for(host)
    try:
        asked = Origin.parse(f"{scheme}://{host}" + (f":{port}" if port else ""))
    except HostMapError:
        raise NotOurDatabase("bad port") from None
    if port is not None and not asked.default_port and asked.port != known.port:
        raise NotOurDatabase("port not in the rule")
    return known
