"""Finding references to covered hosts in body bytes: the compiled matcher behind rewrite.py.

Contract: ``HostMatcher.build(index, hostmap, public_scheme)`` compiles, once per rule set,
everything needed to recognise a reference to any host a rule covers (exact hosts and
domains, minus ``never_proxy``) in every spelling real pages use, and to produce its mapped
replacement. ``HostMatcher.reference(data, low, dot, end)`` examines one candidate (a top-level
domain hit found by ``tld_hits``) and returns a ``Reference`` (span and replacement bytes) or
None. Every decision depends only on at most ``LOOKBACK`` bytes before the hit and
``LOOKAHEAD`` bytes after it, which is what lets the streaming rewriter keep a short tail.
Not here: streaming, chunk boundaries and statistics (rewrite.py), HTML attribute fixups
(htmlfixups.py), which hosts a rule covers (core/ruleset.py).

How a reference is found (why it is fast): Python's ``re`` is fast only when a pattern begins
with a literal it can scan for (DESIGN.md: 206 MB/s vs 31 MB/s). The one literal that every
spelling of a covered host contains is the host itself, and every host ends in a top-level
domain. So the scan pattern is ``\\.(?:com|org|…)`` followed by an end-of-host test (literal
prefix ``.``; >1 GB/s on the real pages), run over a lower-cased copy of the bytes. At each
hit the bytes before it are reversed (a window of ``LOOKBACK`` bytes) and one compiled
"reversed reference" pattern reads, right to left and entirely in C: the host's labels, then
an optional pair of slashes in any encoding, then an optional colon and ``http``/``https``.
The host is then looked up in a bounded cache of mapped authorities.

Spellings recognised (each also in upper case), forward form:
  scheme  ``http`` / ``https``, followed by a colon: ``:`` ``%3A`` ``%253A`` ``&#x3a;``
          ``&#58;`` ``&colon;`` ``\\u003a`` ``\\x3a``
  slashes two of ``/`` ``\\/`` ``%2F`` ``%252F`` ``&#x2f;`` ``&#47;`` ``&sol;`` ``\\u002f``
          ``\\x2f`` (numeric entities may carry leading zeros; the ``;`` is required)
  port    ``:N`` ``%3AN`` ``%253AN``: kept only when it is the rule's port, 80 or 443 (the
          same rule as ``UrlMapper``); any other port leaves the reference untouched.
Policy for what is rewritten (``Reference`` kinds):
  url       scheme + slashes + host: the scheme becomes the public scheme, the colon and
            slashes are kept byte for byte (so ``https:\\/\\/`` -> ``http:\\/\\/``), the host
            and port become the mapped authority.
  relative  slashes + host (``//host``), anywhere: the host becomes the mapped authority.
  bare      a host with no slashes is rewritten only when it is a quoted value: right after
            a quote (``"`` ``'`` backtick, or ``&quot;`` ``&#34;`` ``&#39;`` ``&apos;``…) and
            followed by a closing quote, ``/``, ``\\``, ``?``, ``#`` or a port. This is how
            JavaScript and JSON name hosts (``"www.jstor.org"``); a host in running text,
            in a query value (``evil.com/?u=jstor.org``), after ``@`` (an e-mail address or
            userinfo) or after a single slash is not a URL of that host and stays as it is.
Never rewritten: another scheme (``ftp://host``), a host followed by ``@`` (it is userinfo),
names that only contain a covered name (``notjstor.org``, ``jstor.org.evil.com``,
``www.jstor.organic.com``), hosts under the proxy host itself, invalid host names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

from proxy.core.hostmap import ALIAS_PREFIX, HostMap, HostMapError, hostname_problem
from proxy.core.ruleset import RuleIndex

MAX_HOST: Final = 253  # RFC 1035 §2.3.4
# The longest scheme + colon + two slashes spelled below ("https" "&colon;" 2x "&#x0002f;").
MAX_PREFIX: Final = 40
LOOKBACK: Final = MAX_HOST + MAX_PREFIX + 8  # + the quote before a bare host ("&quot;")
LOOKAHEAD: Final = 32  # end-of-host test, a port ("%253A65535") and a closing quote ("&#x27;")
SHORT_WINDOW: Final = 128  # tried first; most host references are much shorter
_READ_PAST: Final = 24  # how far the pattern may read past its match ("&#x0002f;" + "&colon;")
CACHE_SIZE: Final = 4096  # distinct hosts remembered per rule set; cleared when full

_LABELS_R: Final = rb"[a-z0-9-]+(?:\.[a-z0-9-]+)*"  # host labels (reversed labels are labels)
# One slash, reversed, longest first where one is a prefix of another: "\/", "/", "%2f",
# "%252f", "&#x2f;", "&#47;", "&sol;", "\u002f", "\x2f".
_SLASH_R: Final = rb"(?:/\\|/|f2%|f252%|;f20*x#&|;740*#&|;los&|f200u\\|f2x\\)"
# One colon, reversed: ":", "%3a", "%253a", "&#x3a;", "&#58;", "&colon;", "\u003a", "\x3a".
_COLON_R: Final = rb"(?::|a3%|a352%|;a30*x#&|;850*#&|;noloc&|a300u\\|a3x\\)"
_REVERSED_REFERENCE: Final = re.compile(
    rb"(?P<url>" + _LABELS_R + rb")(?P<sep>" + _SLASH_R + rb"{2})"
    rb"(?:(?P<colon>" + _COLON_R + rb")(?P<scheme>sptth|ptth)(?![a-z0-9+.\-])"
    rb"|(?P<other>" + _COLON_R + rb"))?"
    rb"|(?P<bare>" + _LABELS_R + rb")"
)
# The opening quote of a bare host, reversed: " ' ` &quot; &#34; &#x22; &#39; &#x27; &apos;
_OPENING_QUOTE_R: Final = re.compile(rb"[\"'`]|;(?:touq|sopa|430*#|930*#|220*x#|720*x#)&")
_PORT: Final = re.compile(rb"(?i)(?::|%3a|%253a)([0-9]{1,5})(?![0-9])")
# What may follow a bare host: a closing quote, a path, a query, a fragment.
_BARE_END: Final = re.compile(rb"(?i)[\"'`/\\?#]|&(?:quot|apos|sol|#0*3[49]|#0*47|#x0*2[27f]);")


class Target(NamedTuple):
    """Where a covered host goes: the rule's port and the mapped authority in three spellings."""

    port: int
    plain: bytes  # www-jstor-org.proxy.localhost:8080
    percent: bytes  # www-jstor-org.proxy.localhost%3A8080 (inside a percent-encoded URL)
    percent2: bytes  # …%253A8080 (inside a twice percent-encoded URL)


# One reference to rewrite: (start, end, replacement, host): ``data[start:end]`` becomes
# ``replacement``. A plain tuple: this is built for every rewritten reference.
Reference = tuple[int, int, bytes, bytes]
_UNKNOWN: Final = Target(0, b"", b"", b"")  # cache-miss marker


@dataclass(slots=True)
class HostMatcher:
    """Recognises and maps references to covered hosts; built once per rule set."""

    index: RuleIndex
    hostmap: HostMap
    scheme: bytes
    tld_scan: re.Pattern[bytes]
    longest_tld: int
    cache: dict[bytes, Target | None]

    @classmethod
    def build(cls, index: RuleIndex, hostmap: HostMap, public_scheme: str) -> HostMatcher:
        """Compile the scan for the top-level domains of every covered name."""
        names = covered_names(index)
        scheme = public_scheme.encode("ascii")
        longest = max((len(n.rsplit(".", 1)[-1]) for n in names), default=0)
        return cls(index, hostmap, scheme, tld_scan(names), longest, {})

    def tld_hits(self, data: bytes, start: int) -> Iterator[re.Match[bytes]]:
        """Candidate host ends in ``data`` (any case), from ``start`` on."""
        return self.tld_scan.finditer(data, start)

    def reference(self, data: bytes, dot: int, end: int) -> Reference | None:
        """The reference whose host ends with ``data[dot:end]`` (".org"), or None."""
        found = _reversed_match(data, dot)
        if found is None:
            return None
        match, rev = found
        kind = match.lastgroup  # "scheme", "sep" or "bare"; "other" is another scheme
        host_start = dot - (match.end() if kind == "bare" else match.end("url"))
        host = data[host_start:end].lower()
        target = self.cache.get(host, _UNKNOWN)
        if target is _UNKNOWN:
            target = self.lookup(host)
        if target is None or kind == "other":
            return None
        stop, mapped = _authority_end(data, end, target, match["sep"])
        if stop < 0:
            return None
        if kind == "scheme":
            kept = data[dot - match.end("colon") : host_start]  # colon and slashes, verbatim
            return dot - match.end("scheme"), stop, self.scheme + kept + mapped, host
        if kind == "sep":
            start = dot - match.end("sep")
            return start, stop, data[start:host_start] + mapped, host
        if _OPENING_QUOTE_R.match(rev, match.end()) and _BARE_END.match(data, stop):
            return host_start, stop, mapped, host
        return None

    def lookup(self, host: bytes) -> Target | None:
        """The target of a covered host (lower-case bytes), else None; cached."""
        try:
            return self.cache[host]
        except KeyError:
            pass
        target = self._resolve(host.decode("ascii"))
        if len(self.cache) >= CACHE_SIZE:
            self.cache.clear()
        if target is None or not target.plain.startswith(ALIAS_PREFIX.encode()):
            self.cache[host] = target  # aliases are re-registered on every use (HostMap LRU)
        return target

    def covers(self, host: str) -> bool:
        """True when references to ``host`` are rewritten."""
        return self.lookup(host.lower().encode("ascii", "replace")) is not None

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
        return Target(origin.port, authority, percent, authority.replace(b":", b"%253A"))


def _reversed_match(data: bytes, dot: int) -> tuple[re.Match[bytes], bytes] | None:
    """The reversed-reference match before ``dot``, and the reversed lower-cased window.

    A short window is tried first (reversing costs per byte); when the match, or what the
    pattern may have read past it, comes near the window's edge, the full window decides.
    """
    for size in (SHORT_WINDOW, LOOKBACK):
        lo = dot - size if dot > size else 0
        rev = data[lo:dot].lower()[::-1]
        match = _REVERSED_REFERENCE.match(rev)
        if match is None:
            return None  # no label right before the dot
        if lo == 0 or match.end() + _READ_PAST < len(rev):
            return match, rev
    return None  # labels run to the edge of the full window: longer than any host name


def _authority_end(data: bytes, end: int, target: Target, sep: bytes | None) -> tuple[int, bytes]:
    """Where the host (and any port) ends, and the mapped authority to write; -1 refuses."""
    mapped = target.plain
    if sep is not None and b"%" in sep:
        mapped = target.percent2 if b"252%" in sep else target.percent  # sep is reversed
    stop = end
    if data[end : end + 1] in b":%":
        port = _PORT.match(data, end)
        if port is not None:
            if int(port[1]) not in (target.port, 80, 443):
                return -1, mapped  # a port the rule does not name: not this origin
            stop = port.end()
    if data[stop : stop + 1] == b"@":
        return -1, mapped  # "host@other": the host is userinfo
    return stop, mapped


def covered_names(index: RuleIndex) -> set[str]:
    """Every exact host and domain that some rule covers."""
    names = {origin.host for rule in index.rules for origin in rule.origins}
    return names | {domain for rule in index.rules for domain in rule.domains}


def tld_scan(names: set[str]) -> re.Pattern[bytes]:
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
    return re.compile(rb"\.(?i:(?:" + b"|".join(branches) + rb")(?![a-z0-9_-]|\.[a-z0-9-]))")


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
