"""Finding references to covered hosts in body bytes: the compiled matcher behind rewrite.py.

Contract: ``HostMatcher.build(index, hostmap, public_scheme)`` compiles, once per rule set,
everything needed to recognise a reference to any host a rule covers (exact hosts and
domains, minus ``never_proxy``) in every spelling real pages use, and to produce its mapped
replacement. ``HostMatcher.reference(data, dot, end)`` examines one candidate (a top-level
domain found by ``tld_hits``) and returns a ``Reference`` (span, replacement bytes, host) or
None. A decision reads at most ``LOOKBACK`` bytes before the candidate and ``LOOKAHEAD``
after it: that is what lets the streaming rewriter keep only a short tail.
Not here: streaming, chunk boundaries and statistics (rewrite.py), HTML attribute fixups
(htmlfixups.py), which hosts a rule covers (core/ruleset.py).

Why it is fast: Python's ``re`` is fast only when a pattern begins with a literal it can scan
for (DESIGN.md: 206 MB/s vs 31 MB/s). The one literal every spelling of a host reference
contains is the host, and every host ends in a top-level domain. So the scan is
``\\.(?i:org(?<=jstor\\.org)|com…)`` plus an end-of-host test: the literal ``.`` keeps the scan
in C's fast path (about 1 GB/s on the real pages, whatever the number of rules), and the
look-behinds (grouped by label length, as ``re`` needs fixed widths) reject in C the hosts
that share only a top-level domain with a covered name (``doi.org``). At each remaining hit
the bytes before it are reversed (128 bytes first, ``LOOKBACK`` if needed) and one
"reversed reference" pattern reads, right to left and in C: the host's labels, then an
optional pair of slashes in any spelling, then an optional colon and ``http``/``https``.
The host then goes through a bounded cache of mapped authorities. ``references`` first
tries the plain forms (``https://host``, ``//host``) with an ``rfind`` and a dict lookup and
gives the rest to that decision; both give the same answer (tests/core/test_rewrite.py).
Where setup.py could compile it, ``references`` runs that loop compiled instead
(proxy/core/_referencescan.pyx, chosen through core/accelerated.py): the same candidates
found by a C scan over ``scan_table``, the plain, JSON-escaped and quoted bare forms decided
with C byte tests, everything else still by ``reference`` (issue 19: ~3× on link-dense pages;
tests/core/test_accelerated.py compares it with the Python loop and with ``tld_scan``).

Spellings recognised, in any letter case (forward form):
  scheme  ``http`` / ``https``, followed by a colon: ``:`` ``%3A`` ``%253A`` ``&#x3a;``
          ``&#58;`` ``&colon;`` ``\\u003a`` ``\\x3a``
  slashes two of ``/`` ``\\/`` ``%2F`` ``%252F`` ``&#x2f;`` ``&#47;`` ``&sol;`` ``\\u002f``
          ``\\x2f`` (numeric entities with up to four leading zeros; the ``;`` is required)
  port    ``:N`` ``%3AN`` ``%253AN``: accepted only when it is the rule's port, 80 or 443 (as
          ``UrlMapper`` decides); any other port leaves the reference untouched.
What is rewritten (``_REVERSED_REFERENCE`` group names):
  scheme  scheme + slashes + host: the scheme becomes the public scheme, the colon and the
          slashes are kept byte for byte (``https:\\/\\/`` -> ``http:\\/\\/``), the host and port
          become the mapped authority (its port colon percent-encoded like the slashes).
  sep     slashes + host (``//host``), anywhere: the host becomes the mapped authority.
  bare    a host without slashes only when it is a quoted value: right after a quote (``"``
          ``'`` backtick ``&quot;`` ``&#34;`` ``&#39;`` ``&apos;``…) and followed by a closing
          quote, ``/``, ``\\``, ``?``, ``#`` or a port. That is how JavaScript and JSON name
          hosts (``"www.jstor.org"``); a host in running text, in a query value
          (``evil.com/?u=jstor.org``: a parameter of another site, not a URL of jstor), after
          ``@`` (an e-mail address) or after a single slash is not a reference and stays.
Never rewritten: another scheme (``ftp://host``), a host followed by ``@`` (userinfo), names
that only contain a covered name (``notjstor.org``, ``jstor.org.evil.com``,
``www.jstor.organic.com``), hosts under the proxy host itself, invalid host names.
Not recognised (none of the real pages does it): a host whose dots are escaped
(``&period;``, ``%2E``, ``\\u002e``), or a URL with userinfo (``https://user@host``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

from proxy.core import accelerated
from proxy.core.hostmap import ALIAS_PREFIX, HostMap, HostMapError, hostname_problem
from proxy.core.ruleset import RuleIndex

MAX_HOST: Final = 253  # RFC 1035 §2.3.4
# The longest scheme + colon + two slashes spelled below: "https" "&#x0003a;" 2x "&#x0002f;".
MAX_PREFIX: Final = 35
# How far the reversed pattern may read past its match: two slashes of up to 10 bytes after
# a label, or a colon (10) + "https" + 1; also covers the quote before a bare host (8).
_READ_PAST: Final = 24
# Bytes before a top-level domain that a decision may read: any valid reference fits.
LOOKBACK: Final = MAX_HOST + MAX_PREFIX + _READ_PAST
LOOKAHEAD: Final = 32  # end-of-host test, a port ("%253A65535") and a closing quote ("&#x27;")
SHORT_WINDOW: Final = 128  # tried first; most host references are much shorter
CACHE_SIZE: Final = 4096  # distinct hosts remembered per rule set; cleared when full

_LABELS_R: Final = rb"[a-z0-9-]+(?:\.[a-z0-9-]+)*"  # host labels (reversed labels are labels)
# One slash, reversed, longest first where one is a prefix of another: "\/", "/", "%2f",
# "%252f", "&#x2f;", "&#47;", "&sol;", "\u002f", "\x2f".
_SLASH_R: Final = rb"(?:/\\|/|f2%|f252%|;f2(?:0{0,4})x#&|;74(?:0{0,4})#&|;los&|f200u\\|f2x\\)"
# One colon, reversed: ":", "%3a", "%253a", "&#x3a;", "&#58;", "&colon;", "\u003a", "\x3a".
_COLON_R: Final = rb"(?::|a3%|a352%|;a3(?:0{0,4})x#&|;85(?:0{0,4})#&|;noloc&|a300u\\|a3x\\)"
_REVERSED_REFERENCE: Final = re.compile(
    rb"(?P<url>" + _LABELS_R + rb")(?P<sep>" + _SLASH_R + rb"{2})"
    rb"(?:(?P<colon>" + _COLON_R + rb")(?P<scheme>sptth|ptth)(?![a-z0-9+.\-])"
    rb"|(?P<other>" + _COLON_R + rb"))?"
    rb"|(?P<bare>" + _LABELS_R + rb")",
    re.IGNORECASE,
)
# Its groups by number (faster than by name on the hot path); ``lastindex`` tells the kind.
URL, SEP, COLON, SCHEME, OTHER, BARE = 1, 2, 3, 4, 5, 6
assert _REVERSED_REFERENCE.groupindex == {
    "url": URL, "sep": SEP, "colon": COLON, "scheme": SCHEME, "other": OTHER, "bare": BARE
}  # fmt: skip
# The opening quote of a bare host, reversed: " ' ` &quot; &#34; &#x22; &#39; &#x27; &apos;
_OPENING_QUOTE_R: Final = re.compile(
    rb"(?i)[\"'`]|;(?:touq|sopa|43(?:0{0,4})#|93(?:0{0,4})#|22(?:0{0,4})x#|72(?:0{0,4})x#)&"
)
# The plain-reference fast path (HostMatcher.references): "//" then labels up to the dot.
_LABELS: Final = re.compile(rb"[a-z0-9-]+(?:\.[a-z0-9-]+)*")
# Its window: a host of up to 62 bytes before the dot, so ``reference``'s first (short)
# window would have held the whole match too, and both paths read the same bytes.
_PLAIN_WINDOW: Final = 64
# A byte before "//" that the general pattern may read as more slash or colon spelling:
# "\//" ("\/" is a slash), and the last byte of "&#x3a;", "%3a", "\u003a"… (";", "a").
_NOT_PLAIN_BEFORE: Final = frozenset(b"\\;a")
COLON_BYTE: Final = ord(":")
# After the host: a port, percent-encoded port or userinfo (or the buffer's end, tested apart).
_NOT_PLAIN_AFTER: Final = frozenset(b":%@")
_SCHEME_CHARS: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789+.-")  # RFC 3986 §3.1
_PORT: Final = re.compile(rb"(?i)(?::|%3a|%253a)([0-9]{1,5})(?![0-9])")
# What may follow a bare host: a closing quote, a path, a query, a fragment.
_BARE_END: Final = re.compile(
    rb"(?i)[\"'`/\\?#]|&(?:quot|apos|sol|#0{0,4}3[49]|#0{0,4}47|#x0{0,4}2[27f]);"
)


class Target(NamedTuple):
    """Where a covered host goes: the rule's port and the mapped authority in three spellings."""

    host: str  # the covered host, lower case
    port: int
    plain: bytes  # www-jstor-org.proxy.localhost:8080
    percent: bytes  # www-jstor-org.proxy.localhost%3A8080 (inside a percent-encoded URL)
    percent2: bytes  # …%253A8080 (inside a twice percent-encoded URL)
    url: bytes  # http://www-jstor-org.proxy.localhost:8080, the most common replacement
    slashed: bytes  # //www-jstor-org.proxy.localhost:8080, the protocol-relative one


# One reference to rewrite: (start, end, replacement, host): ``data[start:end]`` becomes
# ``replacement``; ``host`` is the covered host in lower case. A plain tuple: one is built
# for every rewritten reference.
Reference = tuple[int, int, bytes, str]
_UNKNOWN: Final = Target("", 0, b"", b"", b"", b"", b"")  # cache-miss marker
# ((top-level domain, ((label length, (labels…)), …)), …): tld_scan's look-behinds as data.
ScanTable = tuple[tuple[bytes, tuple[tuple[int, tuple[bytes, ...]], ...]], ...]


@dataclass(slots=True)
class HostMatcher:
    """Recognises and maps references to covered hosts; built once per rule set."""

    index: RuleIndex
    hostmap: HostMap
    scheme: bytes
    tld_scan: re.Pattern[bytes]  # for bytes in any case
    tld_scan_lower: re.Pattern[bytes]  # the same for lower-cased bytes (~30% faster)
    longest_tld: int
    scan_table: ScanTable  # tld_scan as a table, for the compiled loop
    cache: dict[bytes, Target | None]

    @classmethod
    def build(cls, index: RuleIndex, hostmap: HostMap, public_scheme: str) -> HostMatcher:
        """Compile the scan for the top-level domains of every covered name."""
        names = covered_names(index)
        scheme = public_scheme.encode("ascii")
        longest = max((len(n.rsplit(".", 1)[-1]) for n in names), default=0)
        scans = tld_scan(names, ignore_case=True), tld_scan(names, ignore_case=False)
        return cls(index, hostmap, scheme, *scans, longest, scan_table(names), {})

    def tld_hits(
        self, data: bytes, start: int, low: bytes | None = None
    ) -> Iterator[re.Match[bytes]]:
        """Candidate host ends in ``data`` from ``start`` on; scans ``low`` (``data``
        lower-cased, same positions) instead when the caller already has it."""
        if low is not None:
            return self.tld_scan_lower.finditer(low, start)
        return self.tld_scan.finditer(data, start)

    def references(
        self, data: bytes, start: int, limit: int, low: bytes | None = None
    ) -> list[Reference]:
        """The references starting in ``[start, limit)``, in order, never overlapping.

        ``low`` is ``data`` lower-cased (same positions); computed here when not given.
        Runs the compiled loop when it was built (core/accelerated.py), else
        ``_references``; both give the same answer (tests/core/test_rewrite.py).
        """
        if low is None:
            low = data.lower()
        compiled = accelerated.compiled
        if compiled is not None:
            return compiled.references(self, data, low, start, limit, LOOKBACK, _UNKNOWN)
        return self._references(data, start, limit, low)

    def _references(self, data: bytes, start: int, limit: int, low: bytes) -> list[Reference]:
        """``references`` in Python: the reference for proxy/core/_referencescan.pyx, which
        is this loop compiled (keep both in step), and the fallback without a C compiler.

        The hot loop of the rewriter, shaped by the profile (issue 19): on link-dense pages
        nearly every candidate is a plain ``https://host`` or ``//host``, and the general
        decision (``reference``: slice, reverse, one reversed match, group arithmetic) cost
        ~2.5 µs of Python per candidate. So the loop first reads the plain form itself: the
        "//" before the dot (``rfind``), the byte before it and the byte after the host, the
        host's labels (``fullmatch``, skipped when the host is already a cached covered one:
        a cached target is a valid host name) and, after a colon, a whole ``https``/``http``
        scheme. Exactly then ``reference`` would answer a plain scheme or ``//`` reference
        (tests/core/test_rewrite.py compares both, with any limit); everything else
        (escaped slashes, percent-encoding, ports, bare hosts, other schemes) takes the
        general path. Kept flat on purpose: a method call per candidate is measurable here.
        """
        found: list[Reference] = []
        pos = start
        cache = self.cache
        reference = self.reference
        rfind, labels = low.rfind, _LABELS.fullmatch
        size = len(low)
        give_up = limit + LOOKBACK
        for hit in self.tld_scan_lower.finditer(low, start):
            dot, end = hit.span()
            ref: Reference | None = None
            p = rfind(b"//", dot - _PLAIN_WINDOW if dot > _PLAIN_WINDOW else 0, dot)
            before = low[p - 1] if p > 0 else 0
            plain = p >= 0 and end < size
            plain = plain and before not in _NOT_PLAIN_BEFORE and low[end] not in _NOT_PLAIN_AFTER
            target: Target | None = _UNKNOWN
            if plain:
                raw = data[p + 2 : end]
                target = cache.get(raw, _UNKNOWN)
                if target is _UNKNOWN or target is None:  # a known Target is a valid host
                    plain = labels(low, p + 2, dot) is not None
            first = p
            if plain and before == COLON_BYTE:  # "https:" or "http:", and not "xhttps:"
                if p >= 6 and low.startswith(b"https:", p - 6):
                    first = p - 6
                elif p >= 5 and low.startswith(b"http:", p - 5):
                    first = p - 5
                plain = first < p and (first == 0 or low[first - 1] not in _SCHEME_CHARS)
            if not plain:
                ref = reference(data, dot, end)
            else:
                if target is _UNKNOWN:
                    target = self.lookup(raw)
                if target is not None:
                    mapped = target.url if first < p else target.slashed
                    ref = (first, end, mapped, target.host)
            if ref is None:
                if dot >= give_up:
                    break
                continue
            if ref[0] >= limit:
                break
            if ref[0] >= pos:  # else it overlaps the previous one, or reaches before start
                found.append(ref)
                pos = ref[1]
        return found

    def reference(self, data: bytes, dot: int, end: int) -> Reference | None:
        """The reference whose host ends with ``data[dot:end]`` (".org"), or None.

        The hot path of the rewriter (one call per candidate): kept flat on purpose.
        """
        lo = dot - SHORT_WINDOW if dot > SHORT_WINDOW else 0
        rev = data[lo:dot][::-1]
        match = _REVERSED_REFERENCE.match(rev)
        if match is None:
            return None  # no label right before the dot
        if lo and match.end() + _READ_PAST >= len(rev):
            rev = data[max(0, dot - LOOKBACK) : dot][::-1]  # near the edge: the full window
            match = _REVERSED_REFERENCE.match(rev)
            if match is None or (dot > LOOKBACK and match.end() + _READ_PAST >= len(rev)):
                return None  # labels longer than any host name
        kind = match.lastindex  # SCHEME, SEP or BARE; OTHER is another scheme
        host_start = dot - (match.end() if kind == BARE else match.end(URL))
        raw = data[host_start:end]
        target = self.cache.get(raw, _UNKNOWN)
        if target is _UNKNOWN:
            target = self.lookup(raw)
        if target is None or kind == OTHER:
            return None
        stop, mapped = end, target.plain
        if kind != BARE and rev[dot - host_start] in b"fF" and b"%" in match[SEP]:
            # the last slash is "%2F" (or "\u002F"): the authority goes in percent-encoded
            mapped = target.percent2 if b"252%" in match[SEP] else target.percent
        if data[end : end + 1] in b":%@":
            stop = _authority_end(data, end, target.port)
            if stop < 0:
                return None
        if kind == SCHEME:
            kept = data[dot - match.end(COLON) : host_start]  # colon and slashes, verbatim
            replacement = target.url if kept == b"://" else self.scheme + kept + mapped
            return dot - match.end(SCHEME), stop, replacement, target.host
        if kind == SEP:
            start = dot - match.end(SEP)
            return start, stop, data[start:host_start] + mapped, target.host
        if _OPENING_QUOTE_R.match(rev, match.end()) and _BARE_END.match(data, stop):
            return host_start, stop, mapped, target.host
        return None

    def lookup(self, host: bytes) -> Target | None:
        """The target of a covered host (bytes, any case), else None; cached."""
        try:
            return self.cache[host]
        except KeyError:
            pass
        target = self._resolve(host.decode("ascii").lower())
        if len(self.cache) >= CACHE_SIZE:
            self.cache.clear()
        if target is None or not target.plain.startswith(ALIAS_PREFIX.encode()):
            self.cache[host] = target  # aliases are re-registered on every use (HostMap LRU)
        return target

    def covers(self, host: str) -> bool:
        """True when references to ``host`` are rewritten."""
        return self.lookup(host.encode("ascii", "replace")) is not None

    def _resolve(self, host: str) -> Target | None:
        proxy_host = self.hostmap.proxy_host
        if hostname_problem(host) or host == proxy_host or host.endswith("." + proxy_host):
            return None
        if self.index.rule_for(host) is None:
            return None
        origin = self.index.origin_for(host)
        try:
            authority = self.hostmap.mapped_authority(origin).encode("ascii")
        except HostMapError:
            return None
        percent = authority.replace(b":", b"%3A")
        twice = authority.replace(b":", b"%253A")
        url = self.scheme + b"://" + authority
        return Target(host, origin.port, authority, percent, twice, url, b"//" + authority)


def _authority_end(data: bytes, end: int, port: int) -> int:
    """Where a host followed by ``:``, ``%`` or ``@`` ends; -1 when it is not a reference.

    A port is kept only when it is the rule's port, 80 or 443 (as ``UrlMapper`` decides);
    ``host@other`` makes the host userinfo.
    """
    stop = end
    match = _PORT.match(data, end)
    if match is not None:
        if int(match[1]) not in (port, 80, 443):
            return -1
        stop = match.end()
    return -1 if data[stop : stop + 1] == b"@" else stop


def covered_names(index: RuleIndex) -> set[str]:
    """Every exact host and domain that some rule covers."""
    names = {origin.host for rule in index.rules for origin in rule.origins}
    return names | {domain for rule in index.rules for domain in rule.domains}


def scan_table(names: set[str]) -> ScanTable:
    """``tld_scan`` as a table: each top-level domain with the last labels before it of the
    covered names ending in it, grouped by ascending length (the look-behinds)."""
    by_tld: dict[bytes, dict[int, set[bytes]]] = {}
    for name in names:
        label, tld = name.encode("ascii").split(b".")[-2:]
        by_tld.setdefault(tld, {}).setdefault(len(label), set()).add(label)
    return tuple(
        (tld, tuple((width, tuple(sorted(groups[width]))) for width in sorted(groups)))
        for tld, groups in sorted(by_tld.items())
    )


def tld_scan(names: set[str], *, ignore_case: bool) -> re.Pattern[bytes]:
    """The scan: ``.tld`` ending a host, preceded by the last label of some covered name.

    ``\\.(?:org(?:(?<=jstor\\.org)|…)|com…)(?!label character)``: the literal prefix ``.``
    keeps ``re`` fast, and the look-behinds (one per label length, as ``re`` needs a fixed
    width) drop in C the many hosts that share only a top-level domain with a covered name
    (``doi.org``); the Python side then checks the whole host.
    """
    by_tld: dict[str, dict[int, set[str]]] = {}
    for name in names:
        label, tld = name.split(".")[-2:]
        by_tld.setdefault(tld, {}).setdefault(len(label), set()).add(label)
    if not by_tld:
        return re.compile(rb"(?!)")  # no rules: nothing is ever covered
    branches = [_tld_branch(tld, by_tld[tld]) for tld in sorted(by_tld, reverse=True)]
    # Case-insensitive after the dot only: a leading literal keeps the scan fast.
    flag = rb"(?i:" if ignore_case else rb"(?:"
    tail = rb")(?![a-z0-9_-]|\.[a-z0-9-]))"
    return re.compile(rb"\." + flag + rb"(?:" + b"|".join(branches) + tail)


def _tld_branch(tld: str, labels_by_length: dict[int, set[str]]) -> bytes:
    suffix = re.escape(("." + tld).encode("ascii"))
    behinds = [
        rb"(?<=(?:"
        + b"|".join(re.escape(x.encode("ascii")) for x in sorted(group))
        + rb")"
        + suffix
        + rb")"
        for _, group in sorted(labels_by_length.items())
    ]
    return re.escape(tld.encode("ascii")) + rb"(?:" + b"|".join(behinds) + rb")"
