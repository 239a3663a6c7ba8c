"""HTML tag fixups the host rewriter cannot do by itself: ``integrity`` and CSP in ``<meta>``.

Contract: ``fix_tag(tag, low, policy)`` takes one ``<script …>``, ``<link …>`` or ``<meta …>``
start tag (original bytes and their lower-cased copy) and returns it with
  * the ``integrity`` attribute removed when the tag's resource comes through the proxy: a
    relative URL, or an absolute one on a covered host. The proxy may rewrite those bytes, and
    a browser refuses a script or stylesheet whose bytes do not match (Subresource Integrity).
    A resource on a host no rule covers is fetched by the browser as the vendor published it,
    so its ``integrity`` stays: removing it would only weaken the page;
  * the ``content`` of ``<meta http-equiv="Content-Security-Policy">`` mapped by the caller's
    function (``proxy.core.headers.map_csp``, so header and ``<meta>`` policies agree).
Any other tag comes back unchanged (the same object). Tags longer than ``MAX_TAG`` bytes are
never matched by ``TAG`` and stay as they are. ``tag_fixes`` finds the tags of a buffer that
change, and ``merged`` puts them among the host references; the tag is fixed *before* its
host references are rewritten, so the CSP mapping sees the vendor's own host names.
Not here: buffers and chunk boundaries (rewrite.py), host rewriting (hostpattern.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from proxy.core import accelerated
from proxy.core.hostpattern import Reference

MAX_TAG: Final = 2048  # bytes; covers real script/link tags and long CSP policies
TAG: Final = re.compile(rb"<(script|link|meta)(?=[\s/>])[^<>]{0,%d}>" % MAX_TAG)
# Words whose presence (lower-cased) means a tag may need a fixup; a cheap pre-check.
TRIGGERS: Final = (b"integrity", b"content-security-policy")
# An attribute (HTML §13.1.2.3): name, then an optional double-, single- or unquoted value.
_ATTRIBUTE: Final = re.compile(
    rb"""[\s/]*([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"""
)
_SCHEME: Final = re.compile(rb"[a-z][a-z0-9+.\-]*:")
# Which attribute names the URL a tag's integrity protects.
URL_ATTRIBUTE: Final = {b"script": b"src", b"link": b"href"}  # HTML §4.12.1, §4.2.4


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute: lower-cased name, the span of the whole attribute and of its value."""

    name: bytes
    start: int
    end: int
    value_start: int
    value_end: int


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """The caller's two decisions: is a URL's host covered, and how to map a CSP."""

    covers: Callable[[bytes], bool]
    map_csp: Callable[[str], str]


def fix_tag(tag: bytes, low: bytes, policy: TagPolicy) -> bytes:
    """The tag with its integrity dropped or its CSP mapped, when that applies."""
    name = TAG.match(low)
    if name is None:
        return tag
    attributes = {a.name: a for a in parse_attributes(low, len(name[1]) + 1)}
    if name[1] == b"meta":
        return _mapped_csp_meta(tag, low, attributes, policy.map_csp)
    integrity = attributes.get(b"integrity")
    url = attributes.get(URL_ATTRIBUTE[name[1]])
    if integrity is None or url is None:
        return tag
    if not is_proxied(tag[url.value_start : url.value_end].strip(), policy.covers):
        return tag
    return tag[: integrity.start] + tag[integrity.end :]


def parse_attributes(low: bytes, start: int) -> list[Attribute]:
    """The attributes of a lower-cased start tag, after its name."""
    found = []
    for match in _ATTRIBUTE.finditer(low, start, len(low) - 1):
        group = next((g for g in (2, 3, 4) if match.group(g) is not None), 1)
        value_start, value_end = match.span(group) if group != 1 else (match.end(), match.end())
        found.append(Attribute(match[1], match.start(), match.end(), value_start, value_end))
    return found


def is_proxied(url: bytes, covers: Callable[[bytes], bool]) -> bool:
    """True when the browser fetches ``url`` through the proxy (relative, or a covered host)."""
    low = url.lower()
    scheme = _SCHEME.match(low)
    if scheme is not None and scheme[0] not in (b"http:", b"https:"):
        return False  # data:, blob:, …: nothing the proxy serves
    rest = low[scheme.end() :] if scheme is not None else low
    if not rest.startswith(b"//"):
        return scheme is None  # a relative URL is on the page's (mapped) host
    authority = re.split(rb"[/?#\\]", rest[2:], maxsplit=1)[0]
    host = authority.rpartition(b"@")[2].split(b":", 1)[0]
    return covers(host)


def _mapped_csp_meta(
    tag: bytes, low: bytes, attributes: dict[bytes, Attribute], map_csp: Callable[[str], str]
) -> bytes:
    equiv = attributes.get(b"http-equiv")
    content = attributes.get(b"content")
    if equiv is None or content is None:
        return tag
    if low[equiv.value_start : equiv.value_end].strip() != b"content-security-policy":
        return tag
    value = tag[content.value_start : content.value_end].decode("latin-1")
    mapped = map_csp(value).encode("latin-1")
    return tag[: content.value_start] + mapped + tag[content.value_end :]


def tag_fixes(
    data: bytes,
    low: bytes,
    start: int,
    limit: int,
    policy: TagPolicy,
    rewrite: Callable[[bytes], bytes],
) -> list[Reference]:
    """The tags starting in ``[start, limit)`` that change, each as an edit whose replacement
    is the fixed tag passed through ``rewrite`` (host rewriting); host ``""`` marks them.

    ``low`` is ``data`` lower-cased. A buffer without any trigger word has nothing to fix.
    """
    compiled = accelerated.compiled
    if compiled is not None:
        if not compiled.contains_any(low, TRIGGERS):
            return []
    elif not any(word in low for word in TRIGGERS):
        return []
    fixes: list[Reference] = []
    for first in tags_naming_a_trigger(low, start, limit):
        match = TAG.match(low, first)
        assert match is not None
        end = match.end()
        tag = data[first:end]
        fixed = fix_tag(tag, low[first:end], policy)
        if fixed is not tag:
            fixes.append((first, end, rewrite(fixed), ""))
    return fixes


def tags_naming_a_trigger(low: bytes, start: int, limit: int) -> list[int]:
    """Where the ``TAG`` matches that start in ``[start, limit)`` and contain a trigger
    word start, in order: exactly the matches of ``TAG.finditer(low, start)`` that
    ``fix_tag`` can change, since it changes only a tag naming ``integrity`` or a CSP.

    Found from the trigger words rather than by scanning every tag (a regex pass over the
    whole page, where most pages hold a handful of such tags): a match holds no "<" after
    its first byte, so the tag around a trigger starts at the nearest "<" before it, at
    most a tag's length back; matches never overlap, so no other match hides it.
    """
    stop = min(len(low), limit + MAX_TAG + 16)
    starts: set[int] = set()
    for word in TRIGGERS:
        at = low.find(word, start, stop)
        while at != -1:
            first = low.rfind(b"<", max(start, at - MAX_TAG - 16), at)
            if first != -1 and first < limit and first not in starts:
                match = TAG.match(low, first)
                if match is not None and match.end() >= at + len(word):
                    starts.add(first)
            at = low.find(word, at + 1, stop)
    return sorted(starts)


def merged(edits: list[Reference], fixes: list[Reference]) -> list[Reference]:
    """Tag fixups and the host references outside them, in order (a reference never spans a
    tag boundary: none of its characters is ``<`` or ``>``)."""
    kept = [e for e in edits if not any(f[0] <= e[0] < f[1] for f in fixes)]
    return sorted(kept + fixes)
