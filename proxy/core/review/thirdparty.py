"""Review detectors for hosts beyond the vendor rules: whom the proxy and vendor pages call.

Contract: pure. ``hosts_contacted`` splits the upstream hosts the proxy contacted into rule
hosts and others (others fail P6); ``third_party_references`` lists the hosts a vendor page
makes the patron's browser contact directly (fetching tags, ``link`` rels that fetch, URLs in
inline scripts), each with what the tracker list knows about it.
Not here: the tracker list (core/trackers.py), blocking anything (the rules), an HTML parser
(pages are scanned with the regular expressions below, as the addon keeps only a prefix).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from proxy.core.review.observed import ObservedRequest
from proxy.core.ruleset import RuleIndex
from proxy.core.trackers import Tracker, tracker_for

# Tags whose URL attributes the browser fetches on its own (HTML §4.8, §4.12, §4.2.4).
FETCHING_TAG: Final = re.compile(
    r"<(script|img|iframe|frame|source|embed|video|audio|track|input|link|object)\b([^>]*)>",
    re.IGNORECASE,
)
URL_ATTR: Final = re.compile(
    r"\b(src|href|data|srcset|poster)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.IGNORECASE
)
REL_ATTR: Final = re.compile(r"\brel\s*=\s*[\"']?([^\"'>]*)", re.IGNORECASE)
# link rel values that make the browser fetch or connect (HTML §4.6.7).
FETCHING_RELS: Final = frozenset(
    {"stylesheet", "icon", "preload", "prefetch", "preconnect", "dns-prefetch", "modulepreload"}
)
INLINE_SCRIPT: Final = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
SCRIPT_URL: Final = re.compile(r"https?://([A-Za-z0-9.-]+)", re.IGNORECASE)
DATA_SCRIPT: Final = re.compile(r"type\s*=\s*[\"']?application/(ld\+)?json", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HostsContacted:
    """Upstream hosts by whether a vendor rule covers them (host -> request count)."""

    rule_hosts: dict[str, int] = field(default_factory=dict)
    other_hosts: dict[str, int] = field(default_factory=dict)


def hosts_contacted(requests: Iterable[ObservedRequest], index: RuleIndex) -> HostsContacted:
    """Split the hosts the proxy contacted into rule hosts and others (others fail P6)."""
    counts = Counter(r.host for r in requests)
    result = HostsContacted()
    for host, n in sorted(counts.items()):
        target = result.rule_hosts if index.rule_for(host) is not None else result.other_hosts
        target[host] = n
    return result


@dataclass(frozen=True, slots=True)
class ThirdPartyRef:
    """A host a vendor page makes the patron's browser contact directly."""

    host: str
    kind: str  # the tag ("script", "img", "iframe", "link") or "inline-script"
    tracker: Tracker | None


def _url_host(url: str) -> str | None:
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    if not url.lower().startswith(("http://", "https://")):
        return None  # relative, data:, javascript: — same origin or no request
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def _tag_urls(tag: str, attrs: str) -> list[str]:
    if tag == "link":
        rel = REL_ATTR.search(attrs)
        if rel is None or not set(rel[1].lower().split()) & FETCHING_RELS:
            return []
    urls = []
    for match in URL_ATTR.finditer(attrs):
        value = match[2] or match[3] or match[4] or ""
        if match[1].lower() == "srcset":
            urls += [item.split()[0] for item in value.split(",") if item.strip()]
        else:
            urls.append(value)
    return urls


def _page_refs(html: str) -> list[tuple[str, str]]:
    """(host, kind) for every absolute URL the browser would fetch on its own."""
    refs = []
    for tag_match in FETCHING_TAG.finditer(html):
        tag = tag_match[1].lower()
        refs += [(h, tag) for url in _tag_urls(tag, tag_match[2]) if (h := _url_host(url))]
    for script in INLINE_SCRIPT.finditer(html):
        if not DATA_SCRIPT.search(script[1]):
            refs += [(h.lower(), "inline-script") for h in SCRIPT_URL.findall(script[2])]
    return refs


def third_party_references(html: str, index: RuleIndex) -> list[ThirdPartyRef]:
    """Hosts in a vendor page that no rule covers, once per (host, kind), with tracker info."""
    seen: dict[tuple[str, str], ThirdPartyRef] = {}
    for host, kind in _page_refs(html):
        if index.rule_for(host) is None and (host, kind) not in seen:
            seen[(host, kind)] = ThirdPartyRef(host, kind, tracker_for(host))
    return list(seen.values())
