"""Streaming body rewriting: every reference to a covered host becomes its mapped host.

Contract: ``HostRewriter.build(index, hostmap, public_scheme)`` is built once per rule set.
``HostRewriter.rewriter(content_type=…, find_replace=…, url_path=…, third_party=…)`` returns
a fresh ``BodyRewriter`` for one response body; ``feed(chunk)`` returns the rewritten bytes
that are final so far and ``flush()`` the rest. The output never depends on how the body was
cut into chunks, and at most ``BodyRewriter.holdback`` bytes (about 2.4 KB for HTML, 0.7 KB
otherwise) are held between calls, so memory is bounded whatever the body size.
Bytes in, bytes out: this works on any ASCII-compatible charset (UTF-8, ISO-8859-*,
Windows-125x…). A body that is UTF-16 or UTF-32 (declared in the content type, or starting
with a UTF-16 byte-order mark; see ``sniff_utf16``) is passed through untouched, deliberately:
its host names are not ASCII byte strings, and such vendor pages are very rare.
Not here: which responses to rewrite and content codings (the relay, proxy/contentcoding.py),
recognising a reference (hostpattern.py), the ``integrity``/CSP tag fixups (htmlfixups.py),
header rewriting (core/headers.py).

The pipeline for one body, each stage streaming with its own short tail:
  1. the rule's EZproxy Find/Replace pairs, in order, filtered by content type and by
     ``url_pattern`` (``re.search`` on the request path); literal and case-sensitive, as in
     EZproxy; each holds back ``len(find) - 1`` bytes;
  2. ``HostStage``, one pass over one buffer: host rewriting (``HostMatcher``); for HTML,
     the tag fixups (``integrity`` removed from scripts and stylesheets fetched through the
     proxy, ``<meta>`` CSP mapped like the header; a fixed tag is then host-rewritten on its
     own, so the CSP mapping sees the vendor's host names); and, when the rule asks for
     ``report`` or ``block``, the third-party hosts of URL-shaped references (``//host``
     right after ``:``, a quote, ``=``, ``(`` or ``,``), counted in bulk.

Why this shape (measured on the 11 real pages in shared/realworld, 2.25 MB, this machine):
an alternation of the covered domains as one regex ran at 52 MB/s, one ``bytes.find`` pass
per covered domain at 210 MB/s for 12 domains (slower with every rule); the literal-led
top-level-domain scan of hostpattern.py runs at ~1 GB/s whatever the number of rules (~400
MB/s on the link-dense page of bench/linkdense.py, where it stops at ~6.5 candidates per KB).
What remains is Python work per candidate, so ``HostMatcher.references`` answers the plain
``https://host`` and ``//host`` candidates (95% on link-dense pages) with one ``rfind`` and a
dict lookup, and sends only the other spellings through the general reversed-window decision
(issue 19: ~1.4× on the link-dense page, ~1.2× on the real pages, interleaved against the
previous loop). Tried and dropped (issue 19, measured): one combined scan for whole plain
references plus candidates (80–100 MB/s: an alternation loses ``re``'s literal-prefix search),
a ``//``-led scan for plain references beside the candidate scan (1.3× on link-dense pages,
slower on the real ones), pyahocorasick (the scan is not the cost; the work per hit is). For
HTML, one ``lower()`` per buffer serves both the tag-fixup triggers and the scan (~30% faster
than a case-insensitive one). Third-party counting is one C ``findall`` of ``//host`` per
buffer and a C ``Counter`` per fold, done only when the rule reports or blocks. Earlier: a
first pass for plain ``https?://host`` with ``re.sub`` (its callbacks for every third-party
URL cost more than it saved) and ``bytes.find`` per top-level domain (slower on
``doi.org``-heavy pages). ``bench/rewrite_speed.py`` prints the figures against pywb and
parse-and-rewrite approaches; docs/benchmarks.md has the runs and the profile. Python work
per reference was still the cost (~1.5 µs each), so the hot loop, the output splice, the
third-party scans and the trigger pre-check are also compiled (core/accelerated.py,
proxy/core/_referencescan.pyx) where a C compiler is present: ~3× on the link-dense page.

Chunk independence (the argument the hypothesis test checks): a stage processes the bytes
it has in one left-to-right pass, exactly as it would process the whole body, but only acts
on matches that *start* before ``limit = len(buffer) - tail``; ``tail`` is at least the most
any decision can read past a match's start, so every such decision sees the same bytes it
would see in the whole body. The first match starting at or after ``limit`` (or the end of
the last replacement, if later) becomes the start of the next buffer. Look-behind context
(the bytes before that point) is kept read-only, and a match may never reach back before it.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Final, Literal

from proxy.core import accelerated
from proxy.core.headers import map_csp
from proxy.core.hostmap import HostMap
from proxy.core.hostpattern import LOOKAHEAD, LOOKBACK, MAX_HOST, HostMatcher, Reference
from proxy.core.htmlfixups import MAX_TAG, TagPolicy, merged, tag_fixes
from proxy.core.rules import FindReplace
from proxy.core.ruleset import RuleIndex
from proxy.core.urlmap import UrlMapper

ThirdParty = Literal["allow", "report", "block"]

HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})  # get the tag fixups
# Charsets in which ASCII text is not ASCII bytes (WHATWG Encoding §4.2 lists UTF-16BE/LE as
# the only such web encodings; the rest are legacy labels that still turn up in headers).
ASCII_INCOMPATIBLE: Final = frozenset(
    {"utf-16", "utf-16le", "utf-16be", "utf-32", "utf-32le", "utf-32be", "ucs-2", "ucs-4",
     "unicode", "csunicode", "iso-10646-ucs-2", "unicodefffe", "cp037", "ibm037", "cp500"}
)  # fmt: skip
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")  # little/big endian; UTF-32LE starts the same
MAX_COUNTED_HOSTS: Final = 256  # distinct hosts per counter; the rest are added up under…
FOLD_AFTER: Final = 4096  # host names kept in a list before they are counted
OTHER_HOSTS: Final = "(other)"
# A URL-shaped reference for third-party statistics: "//host" after ":", a quote, "=", "(" or
# ",". A JavaScript comment ("// see x.com") has a space and does not count.
# Possessive quantifiers: giving back a label character can never make the lookahead of
# _THIRD_PARTY_ENDED succeed (a shorter host is followed by a label character or a dot), so
# forbidding the backtracking changes no result and saves it on every non-match.
_THIRD_PARTY: Final = re.compile(rb"//(?<=[:\"'=(,]//)([a-zA-Z0-9-]++(?:\.[a-zA-Z0-9-]++)++)")
_THIRD_PARTY_ENDED: Final = re.compile(_THIRD_PARTY.pattern + rb"(?=[^a-zA-Z0-9.-])")
_CHARSET: Final = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def media_type(content_type: str | None) -> str:
    """``'Text/HTML; charset=utf-8'`` → ``'text/html'``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset_of(content_type: str | None) -> str | None:
    """The declared charset, lower-cased, or None."""
    match = _CHARSET.search(content_type or "")
    return match[1].lower() if match else None


@functools.lru_cache(maxsize=1024)  # per response; a vendor sends a handful of types
def is_rewritable(content_type: str | None, types: tuple[str, ...]) -> bool:
    """True when a body of this type is rewritten under a rule listing ``types``.

    A type may be ``major/*``. A declared ASCII-incompatible charset makes it False, so the
    relay streams such bodies through untouched, without decoding them.
    """
    kind = media_type(content_type)
    if not kind or charset_of(content_type) in ASCII_INCOMPATIBLE:
        return False
    major = kind.split("/", 1)[0] + "/*"
    return any(t.lower() in (kind, major) for t in types)


def sniff_utf16(first_bytes: bytes) -> bool:
    """True when a body starts with a UTF-16 (or UTF-32) byte-order mark."""
    return first_bytes.startswith(UTF16_BOMS)


def count_bounded(counter: Counter[str], key: str, n: int = 1) -> None:
    """Add to ``counter`` without letting it hold more than ``MAX_COUNTED_HOSTS`` keys."""
    if key in counter or len(counter) < MAX_COUNTED_HOSTS:
        counter[key] += n
    else:
        counter[OTHER_HOSTS] += n


@dataclass(slots=True)
class HostRewriter:
    """Everything about rewriting that depends only on the rule set; shared by all bodies."""

    matcher: HostMatcher
    tags: TagPolicy

    @classmethod
    def build(cls, index: RuleIndex, hostmap: HostMap, public_scheme: str) -> HostRewriter:
        """Compile the matcher for ``index`` under ``hostmap``'s proxy host."""
        matcher = HostMatcher.build(index, hostmap, public_scheme)
        mapper = UrlMapper(hostmap, index, public_scheme)
        tags = TagPolicy(
            covers=lambda host: matcher.lookup(host) is not None,
            map_csp=lambda value: map_csp(value, mapper),
        )
        return cls(matcher, tags)

    def covers(self, host: str) -> bool:
        """True when references to ``host`` are rewritten (a rule covers it, not never_proxy)."""
        return self.matcher.covers(host)

    def rewriter(
        self,
        *,
        content_type: str,
        find_replace: Sequence[FindReplace] = (),
        url_path: str = "/",
        third_party: ThirdParty = "allow",
        count_rewritten: bool = False,
    ) -> BodyRewriter:
        """A rewriter for one body of ``content_type`` served at ``url_path``; it counts
        third-party hosts when the rule reports or blocks them, and the covered hosts it
        rewrites only when asked (``count_rewritten``: the rewrite report, not the relay)."""
        kind = media_type(content_type)
        stages: list[Stage] = [
            FindReplaceStage(pair.find.encode(), pair.replace.encode())
            for pair in find_replace
            if _applies(pair, kind, url_path)
        ]
        tags = self.tags if kind in HTML_TYPES else None
        hosts = HostStage(
            self.matcher,
            tags=tags,
            count_third_party=third_party != "allow",
            count_rewritten=count_rewritten,
        )
        stages.append(hosts)
        passthrough = charset_of(content_type) in ASCII_INCOMPATIBLE
        return BodyRewriter(stages, hosts, passthrough=passthrough)

    def rewrite(
        self,
        body: bytes,
        *,
        content_type: str,
        find_replace: Sequence[FindReplace] = (),
        url_path: str = "/",
    ) -> bytes:
        """Rewrite a whole body at once (tests, small bodies)."""
        whole = self.rewriter(
            content_type=content_type, find_replace=find_replace, url_path=url_path
        )
        return whole.feed(body) + whole.flush()


def splice_python(data: bytes, start: int, edits: list[Reference], resume: int) -> bytes:
    """``data[start:resume]`` with every edit ``(first, end, replacement, host)`` applied
    (in order, not overlapping). The compiled ``_referencescan.splice`` does the same in one
    allocation; this is its reference and the fallback without a C compiler. Kept slices and
    replacements are interleaved by slice assignment, not a loop of appends: ~650 edits per
    100 KB on link-dense pages, where a Python statement per edit shows in the profile."""
    if not edits:
        return data[start:resume]
    firsts, ends, replacements, _ = zip(*edits, strict=True)
    out = [b""] * (2 * len(edits))
    out[0::2] = map(data.__getitem__, map(slice, (start, *ends), firsts))
    out[1::2] = replacements
    out.append(data[ends[-1] : resume])
    return b"".join(out)


def _applies(pair: FindReplace, kind: str, url_path: str) -> bool:
    """EZproxy scoping: the pair's content types (all when empty) and its URL pattern."""
    if pair.content_types and not is_rewritable(kind, pair.content_types):
        return False
    return pair.url_pattern is None or re.search(pair.url_pattern, url_path) is not None


class BodyRewriter:
    """Rewrites one body incrementally; see the module docstring for the contract."""

    def __init__(self, stages: Sequence[Stage], hosts: HostStage, *, passthrough: bool) -> None:
        self._stages = tuple(stages)
        self._hosts = hosts
        self._head = b""  # the first bytes, until the byte-order mark can be checked
        self.passthrough: bool | None = True if passthrough else None

    @property
    def holdback(self) -> int:
        """The most bytes this rewriter holds between calls (sum of the stages' tails)."""
        return sum(s.tail + s.context for s in self._stages) + len(UTF16_BOMS[0])

    @property
    def referenced_hosts(self) -> Counter[str]:
        """Third-party hosts in URL-shaped references (only when the rule reports or blocks)."""
        return self._hosts.referenced

    @property
    def rewritten_hosts(self) -> Counter[str]:
        """Covered hosts whose references were rewritten, with counts (only when asked:
        ``HostRewriter.rewriter(count_rewritten=True)``; empty otherwise)."""
        return self._hosts.rewritten

    def feed(self, chunk: bytes) -> bytes:
        """The rewritten bytes that no later input can change."""
        if self.passthrough is None:
            self._head += chunk
            if len(self._head) < len(UTF16_BOMS[0]):
                return b""
            self.passthrough = sniff_utf16(self._head)
            chunk, self._head = self._head, b""
        if self.passthrough:
            return chunk
        for stage in self._stages:
            chunk = stage.feed(chunk)
        return chunk

    def flush(self) -> bytes:
        """Everything still held back; the body is complete."""
        if self.passthrough is None:
            self.passthrough = True  # shorter than a byte-order mark: nothing to rewrite
        if self.passthrough:
            head, self._head = self._head, b""
            return head
        out = b""
        for stage in self._stages:
            out = stage.feed(out) + stage.flush()
        return out


class Stage:
    """One streaming transformation with a bounded tail (see "Chunk independence")."""

    tail: int = 0  # bytes held back at the end of each buffer
    context: int = 0  # bytes kept before the resume point for look-behind

    def __init__(self) -> None:
        self._context = b""
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """Transform what can be decided now; keep the rest."""
        if len(self._pending) + len(chunk) <= self.tail:
            self._pending += chunk  # nothing can be decided yet
            return b""
        data = self._context + self._pending + chunk
        start = len(self._context)
        return self._step(data, start, len(data) - self.tail)

    def flush(self) -> bytes:
        """Transform everything that is left."""
        data = self._context + self._pending
        out = self._step(data, len(self._context), len(data))
        self._context = self._pending = b""
        return out

    def _step(self, data: bytes, start: int, limit: int) -> bytes:
        out, resume = self.transform(data, start, limit)
        self._context = data[max(0, resume - self.context) : resume] if self.context else b""
        self._pending = data[resume:]
        return out

    def transform(self, data: bytes, start: int, limit: int) -> tuple[bytes, int]:
        """Output for ``data[start:resume]`` and ``resume`` (≥ ``limit``)."""
        raise NotImplementedError


class FindReplaceStage(Stage):
    """One EZproxy Find/Replace pair: a literal, case-sensitive substitution."""

    def __init__(self, find: bytes, replace: bytes) -> None:
        super().__init__()
        self.find, self.replace = find, replace
        self.tail = len(find) - 1

    def transform(self, data: bytes, start: int, limit: int) -> tuple[bytes, int]:
        """Replace every occurrence that starts before ``limit``."""
        out: list[bytes] = []
        pos, size = start, len(self.find)
        hit = data.find(self.find, pos)
        while hit != -1 and hit < limit:
            out += (data[pos:hit], self.replace)
            pos = hit + size
            hit = data.find(self.find, pos)
        resume = max(limit, pos)
        out.append(data[pos:resume])
        return b"".join(out), resume


class HostStage(Stage):
    """Host rewriting (hostpattern.py), the HTML tag fixups (htmlfixups.py, when ``tags`` is
    given) and third-party host statistics, in one pass over one buffer."""

    # One byte more than a decision reads: then a window reaching the buffer's start means
    # the body's start, exactly as when the whole body is one buffer.
    context = LOOKBACK + 1

    def __init__(
        self,
        matcher: HostMatcher,
        *,
        tags: TagPolicy | None,
        count_third_party: bool,
        count_rewritten: bool = False,
    ) -> None:
        super().__init__()
        self.matcher = matcher
        self.tags = tags
        self.count_third_party = count_third_party
        # Nothing in the relay reads the rewritten counts; building them cost ~5% of a
        # link-dense page's rewriting (profiled), so only the rewrite report asks for them.
        self.count_rewritten = count_rewritten
        self._referenced: Counter[str] = Counter()
        self._rewritten: Counter[str] = Counter()
        self._seen_raw: list[bytes] = []  # hosts found since the last fold (cheap to extend)
        self._rewritten_raw: list[str] = []
        # A decision reads LOOKBACK bytes before the top-level domain and LOOKAHEAD after it;
        # a tag fixup reads the whole tag.
        self.tail = LOOKBACK + matcher.longest_tld + 3 + LOOKAHEAD
        if tags is not None:
            self.tail = max(self.tail, MAX_TAG + 16)  # "<script" + the longest tag + ">"

    @property
    def referenced(self) -> Counter[str]:
        """Third-party hosts of URL-shaped references, with counts (bounded)."""
        self._fold()
        return self._referenced

    @property
    def rewritten(self) -> Counter[str]:
        """Covered hosts whose references were rewritten, with counts (bounded)."""
        self._fold()
        return self._rewritten

    def transform(self, data: bytes, start: int, limit: int) -> tuple[bytes, int]:
        """Apply every edit that starts at or after ``start`` and before ``limit``."""
        compiled = accelerated.compiled
        # the scans run on it (faster than case-insensitive ones)
        low = data.lower() if compiled is None else compiled.lower(data)
        edits = self.matcher.references(data, start, limit, low)
        if self.tags is not None:
            edits = self._with_tag_fixes(edits, data, low, start, limit)
        if not edits:
            pos = stop = start
        else:
            if self.count_rewritten:
                self._rewritten_raw += filter(None, map(itemgetter(3), edits))  # a fixup: ""
            pos = edits[-1][1]  # counted its own
            stop = limit if edits[-1][3] else pos
        resume = max(limit, pos)
        if self.count_third_party:
            self._collect_third_party(data, start, limit, stop, edits)
        if len(self._seen_raw) + len(self._rewritten_raw) > FOLD_AFTER:
            self._fold()
        splice = splice_python if compiled is None else compiled.splice
        return splice(data, start, edits, resume), resume

    def _with_tag_fixes(
        self, edits: list[Reference], data: bytes, low: bytes, start: int, limit: int
    ) -> list[Reference]:
        """``edits`` with the tag fixups starting before ``limit`` in place of the host
        references inside those tags (a fixed tag is host-rewritten on its own)."""
        assert self.tags is not None
        fixes = tag_fixes(data, low, start, limit, self.tags, self._fragment)
        return merged(edits, fixes) if fixes else edits

    def _fragment(self, fragment: bytes) -> bytes:
        """One fixed tag with its host references rewritten (and counted)."""
        out: list[bytes] = []
        pos = 0
        for first, end, replacement, host in self.matcher.references(fragment, 0, len(fragment)):
            out += (fragment[pos:first], replacement)
            if self.count_rewritten:
                self._rewritten_raw.append(host)
            pos = end
        out.append(fragment[pos:])
        return b"".join(out)

    def _collect_third_party(
        self, data: bytes, start: int, limit: int, stop: int, edits: list[Reference]
    ) -> None:
        """Note the ``//host`` references starting in ``[start, limit)``, and up to ``stop``
        when a fixed tag runs past ``limit``.

        Other matches starting in ``[limit, resume)`` lie inside a rewritten reference, so
        they name a covered host and would not be counted anyway; the next step starts at
        resume. Matches cannot cross a tag's end, so the whole fixed tag can be read.
        """
        seen = self._seen_raw
        compiled = accelerated.compiled
        if compiled is not None:  # the same two scans, compiled
            near = limit - MAX_HOST - 3  # (it also skips the hosts ``edits`` rewrite)
            compiled.third_party_hosts(data, start, limit, stop, near, seen, edits)
            return
        seen += _THIRD_PARTY_ENDED.findall(data, start, limit)  # those that end before limit
        for match in _THIRD_PARTY.finditer(data, max(start, limit - MAX_HOST - 3)):
            if match.start() >= max(limit, stop):
                break
            if match.start() >= limit or match.end() >= limit:  # not counted by findall
                seen.append(match[1])

    def _fold(self) -> None:
        """Move the raw lists into the bounded counters."""
        for name, n in Counter(self._rewritten_raw).items():
            count_bounded(self._rewritten, name, n)
        for host, n in Counter(self._seen_raw).items():
            if len(host) <= MAX_HOST and self.matcher.lookup(host) is None:
                count_bounded(self._referenced, host.decode("ascii").lower(), n)
        self._rewritten_raw.clear()
        self._seen_raw.clear()
