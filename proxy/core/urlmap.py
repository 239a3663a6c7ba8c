"""URLs between the vendor's form and the proxy's form, for headers and request parameters.

Contract: ``UrlMapper.to_proxy(url)`` maps an absolute (or scheme-relative) URL whose host a
rule covers to its mapped URL, and returns None for anything else (relative URLs, other
hosts, other schemes), so callers keep the original. ``to_vendor`` is the inverse for URLs on
mapped hosts. The upstream origin is always the rule's for that host (DESIGN: "the upstream
scheme comes from the rule"), so an ``http://`` vendor link maps to the same mapped host.
Not here: rewriting inside bodies (the rewriting issue's streaming rewriter).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlsplit

from proxy.core.hostmap import HostMap, HostMapError, Origin
from proxy.core.ruleset import RuleIndex


@dataclass(frozen=True, slots=True)
class UrlMapper:
    """Maps URLs for one rule set, one proxy host and one public scheme."""

    hostmap: HostMap
    index: RuleIndex
    public_scheme: str

    def mapped_origin(self, origin: Origin) -> str:
        """``http://www-jstor-org.proxy.localhost:8080`` for a vendor origin."""
        return f"{self.public_scheme}://{self.hostmap.mapped_authority(origin)}"

    def vendor_origin(self, host: str, port: int | None = None) -> Origin | None:
        """The rule's origin for a vendor host (None when no rule covers it)."""
        if self.index.rule_for(host) is None:
            return None
        origin = self.index.origin_for(host)
        if port is not None and port not in (origin.port, 80, 443):
            return None  # an explicit port the rule does not name is not ours
        return origin

    def to_proxy(self, url: str) -> str | None:
        """The mapped form of a vendor URL, or None to keep ``url`` as it is."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            return None
        if parts.scheme not in ("http", "https", "") or not parts.netloc or "@" in parts.netloc:
            return None
        origin = self.vendor_origin((parts.hostname or "").lower(), port)
        if origin is None:
            return None
        tail = url.strip()[
            len(f"{parts.scheme}:" if parts.scheme else "") + 2 + len(parts.netloc) :
        ]
        return self.mapped_origin(origin) + tail

    def to_vendor(self, url: str) -> str | None:
        """The vendor form of a URL on a mapped host, or None when it is not one."""
        try:
            parts = urlsplit(url.strip())
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            return None
        try:
            origin = self.hostmap.origin_for(parts.netloc)
        except HostMapError:
            return None
        if self.index.rule_for(origin.host) is None:
            return None
        return origin.url_prefix() + url.strip()[len(parts.scheme) + 3 + len(parts.netloc) :]


def translate_params(query: str, names: frozenset[str], mapper: UrlMapper) -> str:
    """In a query string or urlencoded form, turn proxy URLs in the named parameters back
    into vendor URLs (``rewrite.request_params``: return URLs, OpenURL ``rft_id``…).

    Other parameters, and values that are not mapped URLs, stay byte for byte as they were.
    """
    if not names or not query:
        return query
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, sep, value = part.partition("=")
        if not sep or unquote_plus(name) not in names:
            continue
        vendor = mapper.to_vendor(unquote_plus(value))
        if vendor is not None:
            parts[i] = f"{name}={quote(vendor, safe='')}"
    return "&".join(parts)
