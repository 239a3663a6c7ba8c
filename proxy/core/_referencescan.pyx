# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""The rewriter's hot paths, compiled (issue 19); each mirrors Python code that stays the
reference and the fallback (core/accelerated.py chooses; tests/core/test_accelerated.py and
every rewriter test run both and compare them on random and real bodies).

Contract, function by function:
  * ``references(matcher, data, low, start, limit, lookback, unknown)`` returns exactly
    what ``HostMatcher._references`` (and the general decision alone) returns: the same
    candidates as ``tld_scan`` (``candidates`` exposes them for the tests), found by a C
    scan over ``HostMatcher.scan_table``; the plain ``https://host``/``//host``, JSON-escaped
    ``\\/\\/host``, percent-encoded ``%2F%2Fhost`` and plainly quoted bare hosts decided
    with C byte tests where ``HostMatcher.reference``'s reversed pattern can read them only
    one way; every other candidate still goes to ``reference``;
  * ``splice(data, start, edits, resume)`` is ``rewrite.splice_python`` in one allocation;
  * ``third_party_hosts(...)`` is ``HostStage._collect_third_party``'s two scans, less the
    hosts this buffer's edits rewrite (which the fold would drop);
  * ``contains_any(text, words)`` is ``any(word in text …)`` with glibc's ``memmem``;
  * ``lower(data)`` is ``data.lower()``, vectorized.
Why: on link-dense pages the interpreter's work per reference (~1.5 µs) was most of the
rewriting cost; here it is a few C comparisons (~3× the whole body, docs/benchmarks.md).
Memory safety: bytes are read through bounds-checked memoryviews (``boundscheck=True``) or
at offsets checked against the length first, objects are type-checked before C access, and
``splice`` validates every edit while it copies; a mistake raises, it never reads or writes
outside a buffer. Built by setup.py when a C compiler is present.
Not here: the general decision (``HostMatcher.reference``), lookups and caching
(``HostMatcher.lookup``), chunk boundaries (rewrite.py).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memchr, memcmp, memcpy


cdef extern from "<string.h>" nogil:
    void* memmem(const void* haystack, size_t haystacklen, const void* needle, size_t needlelen)


cdef enum:
    PLAIN_WINDOW = 64  # a host of up to 62 bytes before the dot (hostpattern._PLAIN_WINDOW)

# The forms ``references`` answers itself; GENERAL goes to ``HostMatcher.reference``.
cdef enum:
    GENERAL = 0
    PLAIN = 1  # "https://host", "http://host", "//host" (_plain_start, _scheme_start)
    ESCAPED = 2  # "\/\/host", JSON with escaped slashes
    ESCAPED_SCHEME = 3  # "https:\/\/host", "http:\/\/host"
    BARE = 4  # "'host'", '"host/…', "`host?…": a bare host right after a plain quote
    PERCENT = 5  # "%2F%2Fhost", a percent-encoded URL in a query value
    PERCENT_SCHEME = 6  # "https%3A%2F%2Fhost", "http%3A%2F%2Fhost"


# Byte classes as tables (a lookup per byte in the innermost loops, measured faster than
# range tests): membership in each is 1.
cdef bint LABEL[256]  # a lower-cased host label byte: [a-z0-9-]
cdef bint HOST[256]  # the same or a dot: [a-z0-9.-] (the walk back over a host)
cdef bint ANY_CASE[256]  # [a-zA-Z0-9-], the label bytes of ``rewrite._THIRD_PARTY``


cdef void _byte_class(bint* table, bytes members):
    cdef Py_ssize_t c
    for c in range(256):
        table[c] = False
    for c in members:
        table[c] = True


_LOWER_LABEL = b"abcdefghijklmnopqrstuvwxyz0123456789-"
_byte_class(LABEL, _LOWER_LABEL)
_byte_class(HOST, _LOWER_LABEL + b".")
_byte_class(ANY_CASE, _LOWER_LABEL + b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


ctypedef unsigned long long Lengths  # bit n: a top-level domain of n bytes (n < 64)

cdef struct Behind:  # one look-behind label of a top-level domain
    const char* label
    Py_ssize_t width  # its length

cdef struct Tld:  # one entry of ``HostMatcher.scan_table``
    const char* name
    Py_ssize_t n  # its length
    Py_ssize_t first, count  # its labels: ``behind[first:first + count]``, widths ascending


cdef class _ScanTable:
    """``HostMatcher.scan_table`` as C arrays, for ``_candidate``; it holds the table, so
    the bytes its pointers read stay alive. Why C arrays: walking the Python tuples cost
    more than the rest of the scan (perf, link-dense page). ``filter[c]``: the lengths of
    the top-level domains that start with byte ``c``; most dots in a page (file names,
    numbers, inner host labels) fail that one test."""

    cdef tuple table
    cdef Tld* tlds
    cdef Behind* behind
    cdef Py_ssize_t ntld
    cdef Lengths filter[256]

    def __cinit__(self, tuple table):
        cdef Py_ssize_t labels = 0, k = 0, t, c, previous
        cdef tuple entry, group
        cdef bytes name, label
        self.table = table
        for entry in table:
            for group in <tuple?>entry[1]:
                labels += len(<tuple?>group[1])
        self.tlds = <Tld*>PyMem_Malloc(max(len(table), 1) * sizeof(Tld))
        self.behind = <Behind*>PyMem_Malloc(max(labels, 1) * sizeof(Behind))
        if self.tlds == NULL or self.behind == NULL:
            raise MemoryError()
        for c in range(256):
            self.filter[c] = 0
        for t in range(len(table)):
            entry = <tuple?>table[t]
            name = <bytes?>entry[0]
            if not 0 < len(name) < 64:
                raise ValueError("scan_table: a top-level domain of 1 to 63 bytes expected")
            self.filter[<unsigned char>name[0]] |= (<Lengths>1) << len(name)
            self.tlds[t].name = PyBytes_AS_STRING(name)
            self.tlds[t].n = len(name)
            self.tlds[t].first = k
            previous = 0
            for group in <tuple?>entry[1]:
                for label in <tuple?>group[1]:
                    if len(label) != group[0] or len(label) < previous or len(label) < 1:
                        raise ValueError("scan_table: look-behind widths must ascend")
                    if k >= labels:
                        raise ValueError("scan_table: changed while read")
                    previous = len(label)
                    self.behind[k].label = PyBytes_AS_STRING(label)
                    self.behind[k].width = previous
                    k += 1
            self.tlds[t].count = k - self.tlds[t].first
            self.ntld = t + 1

    def __dealloc__(self):
        PyMem_Free(self.tlds)
        PyMem_Free(self.behind)


cdef Py_ssize_t _candidate(
    const unsigned char[::1] low, Py_ssize_t i, _ScanTable scan, Py_ssize_t* end
):
    """The next dot at or after ``i`` that ``hostpattern.tld_scan`` matches, -1 if none;
    ``end[0]`` is then where its top-level domain ends. The pattern's test, in C: the run
    of label bytes after the dot is a top-level domain of ``scan`` (pre-filtered by its
    first byte and length), not followed by "_" or by a dot and a label byte, and the bytes
    before the dot end with one of the labels listed for it (the look-behinds)."""
    cdef Py_ssize_t size = low.shape[0], j, dot, n, t, b
    cdef const unsigned char* found
    cdef const Tld* tld
    cdef const Behind* behind
    while i < size:
        found = <const unsigned char*>memchr(&low[i], 46, size - i)  # "."
        if found == NULL:
            return -1
        dot = i + (found - &low[i])
        i = dot + 1
        j = i
        while j < size and LABEL[low[j]]:
            j += 1
        n = j - i
        if n == 0 or n >= 64 or not (scan.filter[low[i]] >> n) & 1:
            continue  # no label, or no top-level domain of this first byte and length
        if j < size and (low[j] == 95 or (low[j] == 46 and j + 1 < size and LABEL[low[j + 1]])):
            continue  # "_" or ".label" after it: not the end of a host
        for t in range(scan.ntld):
            tld = &scan.tlds[t]
            if tld.n != n or memcmp(&low[i], tld.name, n) != 0:
                continue
            for b in range(tld.first, tld.first + tld.count):
                behind = &scan.behind[b]
                if behind.width > dot:
                    break  # widths ascend
                # the byte before the dot first: it differs for most labels, and a call to
                # memcmp costs more than that test
                if behind.label[behind.width - 1] != <char>low[dot - 1]:
                    continue
                if memcmp(&low[dot - behind.width], behind.label, behind.width) == 0:
                    end[0] = j
                    return dot
            break
    return -1


cdef inline bint _scheme_byte(unsigned char c):
    """A lower-cased scheme byte (RFC 3986 §3.1): [a-z0-9+.-]."""
    return (97 <= c <= 122) or (48 <= c <= 57) or c == 43 or c == 45 or c == 46


cdef inline bytes _piece(bytes data, Py_ssize_t first, Py_ssize_t stop):
    """``data[first:stop]`` for indices known to lie inside it (checked: raises otherwise).
    Why not the slice syntax: Cython compiles it to a slice object and a generic call,
    which cost more than the copy (perf, link-dense page)."""
    if not 0 <= first <= stop <= len(data):
        raise ValueError("a piece outside the buffer")
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + first, stop - first)


cdef inline bint _labels(const unsigned char[::1] low, Py_ssize_t first, Py_ssize_t stop):
    """``low[first:stop]`` is host labels: ``[a-z0-9-]+(?:\\.[a-z0-9-]+)*``."""
    cdef Py_ssize_t i
    if first >= stop or low[first] == 46 or low[stop - 1] == 46:
        return False
    for i in range(first + 1, stop):
        if low[i] == 46 and low[i - 1] == 46:
            return False
    return True


cdef inline bint _at(const unsigned char[::1] low, Py_ssize_t i, bytes word):
    """``low`` holds ``word`` at ``i`` (``i`` ≥ 0)."""
    cdef Py_ssize_t n = len(word), j
    if i < 0 or i + n > low.shape[0]:
        return False
    for j in range(n):
        if low[i + j] != word[j]:
            return False
    return True


cdef Py_ssize_t _plain_start(const unsigned char[::1] low, Py_ssize_t dot, Py_ssize_t end):
    """Where the "//" of a plain reference ending at ``end`` starts, or -1 when the
    candidate is not plain: the host's labels right after "//" (at most 62 bytes before the
    dot), no escaped slash or colon before it, no port, percent-encoding or userinfo after."""
    cdef Py_ssize_t size = low.shape[0], q = dot, p
    cdef unsigned char before
    if end >= size:
        return -1
    while q > 0 and dot - q < PLAIN_WINDOW - 2 and HOST[low[q - 1]]:
        q -= 1
    p = q - 2
    if p < 0 or low[p] != 47 or low[p + 1] != 47:  # "//"
        return -1
    if not _labels(low, q, dot):
        return -1
    before = low[p - 1] if p > 0 else 0
    if before == 92 or before == 59 or before == 97:  # "\" ";" "a": more slash or colon spelling
        return -1
    if low[end] == 58 or low[end] == 37 or low[end] == 64:  # ":" "%" "@"
        return -1
    return p


cdef Py_ssize_t _scheme_before(const unsigned char[::1] low, Py_ssize_t colon):
    """Where "https" or "http" ending right before ``colon`` (a colon in any spelling)
    starts, -1 when another scheme or a longer word ending in one ("xhttps") is there."""
    cdef Py_ssize_t first
    if _at(low, colon - 5, b"https"):
        first = colon - 5
    elif _at(low, colon - 4, b"http"):
        first = colon - 4
    else:
        return -1
    if first > 0 and _scheme_byte(low[first - 1]):
        return -1
    return first


cdef Py_ssize_t _scheme_start(const unsigned char[::1] low, Py_ssize_t p):
    """Where "https:" or "http:" before the "//" at ``p`` starts, -1 when another scheme
    (or a longer word ending in one, "xhttps:") is there; ``p`` when there is no colon."""
    if p == 0 or low[p - 1] != 58:  # ":"
        return p
    return _scheme_before(low, p - 1)


cdef int _other_form(
    const unsigned char[::1] low, Py_ssize_t dot, Py_ssize_t end, Py_ssize_t* host_start,
    Py_ssize_t* first,
):
    """The escaped and bare forms, exactly as ``HostMatcher.reference`` reads them, in the
    cases where its reversed pattern can read them only one way; GENERAL otherwise. Sets
    ``host_start`` and ``first`` (where the reference starts) for the others."""
    cdef Py_ssize_t size = low.shape[0], q = dot, p, s
    cdef unsigned char before, after
    if end >= size:
        return GENERAL
    after = low[end]
    if after == 58 or after == 64:  # ":" "@": ports and userinfo
        return GENERAL
    if after == 37 and (_at(low, end, b"%3a") or _at(low, end, b"%253a")):
        return GENERAL  # a percent-encoded port
    while q > 0 and dot - q < PLAIN_WINDOW - 2 and HOST[low[q - 1]]:
        q -= 1
    if q == 0:
        return GENERAL
    if low[q - 1] == 37 and _at(low, q, b"2f") and _at(low, q - 4, b"%2f"):
        return _percent_form(low, q, dot, end, host_start, first)  # "%2f%2fhost"
    if not _labels(low, q, dot):
        return GENERAL
    host_start[0] = q
    if q >= 4 and low[q - 4] == 92 and low[q - 3] == 47 and low[q - 2] == 92 and low[q - 1] == 47:
        p = q - 4  # "\/\/": two escaped slashes right before the labels
        before = low[p - 1] if p > 0 else 0
        if before == 58:  # ":": "https:" or "http:" (another scheme is never rewritten)
            s = _scheme_start(low, p)
            if s < 0:
                return GENERAL
            first[0] = s
            return ESCAPED_SCHEME
        if before == 97 or before == 59 or before == 92 or before == 47:
            return GENERAL  # "a" ";" "\" "/": may end another spelling of a colon or slash
        first[0] = p
        return ESCAPED
    if after == 37:
        return GENERAL  # "%" after a host read whole: only the percent form expects it
    before = low[q - 1]
    if before == 34 or before == 39 or before == 96:  # " ' `
        if after in b"\"'`/\\?#":  # hostpattern._BARE_END without its entities
            first[0] = q
            return BARE
    return GENERAL


cdef int _percent_form(
    const unsigned char[::1] low, Py_ssize_t q, Py_ssize_t dot, Py_ssize_t end,
    Py_ssize_t* host_start, Py_ssize_t* first,
):
    """"%2f%2fhost" and "https%3a%2f%2fhost" where ``reference`` reads them one way only:
    the label run ``low[q:dot]`` starts with the "2f" of the second "%2f" (the reversed
    pattern gives those bytes back to it), "%2f" right before (no other slash spelling
    ends in "%2f"), then "%3a" and "https"/"http" after a scheme boundary, or no colon
    spelling at all. Anything else (another colon spelling, another scheme): GENERAL."""
    cdef Py_ssize_t h = q + 2, p = q - 4, c, s
    cdef unsigned char before
    if not _labels(low, h, dot):
        return GENERAL
    host_start[0] = h
    before = low[p - 1] if p > 0 else 0
    if before != 58 and before != 97 and before != 59:  # no colon spelling ends here
        first[0] = p
        return PERCENT
    c = p - 3
    s = _scheme_before(low, c) if _at(low, c, b"%3a") else -1
    if s < 0:
        return GENERAL
    first[0] = s
    return PERCENT_SCHEME


def references(
    matcher, bytes data, bytes low, Py_ssize_t start, Py_ssize_t limit, Py_ssize_t lookback,
    unknown,
):
    """``HostMatcher._references`` compiled: the references starting in ``[start, limit)``,
    in order, never overlapping. ``unknown`` is the cache-miss marker, ``lookback`` is
    ``hostpattern.LOOKBACK``."""
    cdef const unsigned char[::1] view = low
    cdef Py_ssize_t dot, end = start, p, first, stop, host_start, pos = start
    cdef Py_ssize_t give_up = limit + lookback
    cdef int form
    cdef bytes scheme = matcher.scheme
    cdef tuple table = matcher.scan_table
    cdef dict cache = matcher.cache
    cdef list found = []
    cdef tuple fields
    cdef _ScanTable scan = _ScanTable(table)
    reference = matcher.reference
    lookup = matcher.lookup
    while True:
        dot = _candidate(view, end, scan, &end)
        if dot < 0:
            break
        p = _plain_start(view, dot, end)
        first = _scheme_start(view, p) if p >= 0 else -1
        if first >= 0:
            form, host_start = PLAIN, p + 2
        else:
            form = _other_form(view, dot, end, &host_start, &first)
        if form == GENERAL:  # any other spelling: the general decision
            ref = reference(data, dot, end)
            if ref is None:
                if dot >= give_up:
                    break
                continue
            first, stop = ref[0], ref[1]
        else:
            raw = _piece(data, host_start, end)
            target = cache.get(raw, unknown)
            if target is unknown:
                target = lookup(raw)
            if target is None:
                if dot >= give_up:
                    break
                continue
            if not isinstance(target, tuple):  # a Target (a NamedTuple: a tuple subclass)
                raise TypeError("HostMatcher.cache holds a non-Target")
            fields = <tuple>target  # (host, port, plain, percent, percent2, url, slashed)
            ref = None
            stop = end
        if first >= limit:
            break
        if first >= pos:
            if ref is None:
                if form == PLAIN:
                    replacement = fields[5] if first < p else fields[6]
                elif form == ESCAPED:  # "\/\/host": the slashes kept as they are
                    replacement = _piece(data, first, host_start) + fields[2]
                elif form == ESCAPED_SCHEME:  # "https:\/\/host": the scheme becomes ours
                    replacement = scheme + _piece(data, host_start - 5, host_start) + fields[2]
                elif form == PERCENT:  # "%2F%2Fhost": the authority percent-encoded too
                    replacement = _piece(data, first, host_start) + fields[3]
                elif form == PERCENT_SCHEME:  # "https%3A%2F%2Fhost"
                    replacement = scheme + _piece(data, host_start - 9, host_start) + fields[3]
                else:  # BARE
                    replacement = fields[2]
                ref = (first, end, replacement, fields[0])
            found.append(ref)
            pos = stop
    return found

def splice(bytes data, Py_ssize_t start, list edits, Py_ssize_t resume):
    """``data[start:resume]`` with every edit ``(first, end, replacement, host)`` applied;
    edits in order, not overlapping, within ``[start, resume]`` (else ``ValueError``)."""
    cdef Py_ssize_t size = 0, pos = start, first, end, n
    cdef bytes replacement
    cdef tuple edit
    if not 0 <= start <= resume <= len(data):
        raise ValueError("splice: bad range")
    for edit in edits:
        first = edit[0]
        end = edit[1]
        replacement = edit[2]
        if not pos <= first <= end <= resume:
            raise ValueError("splice: edits out of order")
        size += (first - pos) + len(replacement)
        pos = end
    size += resume - pos
    out = PyBytes_FromStringAndSize(NULL, size)
    cdef char* write = PyBytes_AS_STRING(out)
    cdef const char* read = PyBytes_AS_STRING(data)
    pos = start
    for edit in edits:  # the same edits again (tuples: nothing can have changed them)
        first = edit[0]
        end = edit[1]
        replacement = edit[2]
        n = len(replacement)
        if not pos <= first <= end <= resume or (first - pos) + n > size:
            raise ValueError("splice: edits changed")
        size -= (first - pos) + n
        memcpy(write, read + pos, first - pos)
        write += first - pos
        memcpy(write, PyBytes_AS_STRING(replacement), n)
        write += n
        pos = end
    if resume - pos != size:
        raise ValueError("splice: edits changed")
    memcpy(write, read + pos, resume - pos)
    return out


cdef inline bint _opens_url(unsigned char c):
    """A byte after which "//host" is URL-shaped: one of : " ' = ( ,"""
    return c == 58 or c == 34 or c == 39 or c == 61 or c == 40 or c == 44


def third_party_hosts(
    bytes data, Py_ssize_t start, Py_ssize_t limit, Py_ssize_t stop, Py_ssize_t near,
    list seen, list edits,
):
    """``rewrite.HostStage._collect_third_party`` compiled: appends to ``seen`` the hosts of
    the URL-shaped ``//host`` references (``rewrite._THIRD_PARTY``) that its two scans count:
    those ending before ``limit`` and followed by a byte that cannot continue a host, and
    those starting from ``near`` (= ``limit - MAX_HOST - 3``) that start at or reach
    ``limit``, up to ``max(limit, stop)``. Skipped: a host that one of ``edits`` (this
    buffer's, in order) rewrites whole, i.e. a covered host, which ``HostStage._fold``
    would drop anyway; on link-dense pages that is most of them."""
    cdef const unsigned char[::1] view = data
    cdef Py_ssize_t size = view.shape[0], k = start, e, dots, last = max(limit, stop)
    cdef Py_ssize_t at = 0, count = len(edits), edit_end = -1, edit_first = 0
    cdef tuple edit
    cdef const unsigned char* found
    while k + 1 < size:
        found = <const unsigned char*>memchr(&view[k], 47, size - k)  # "/"
        if found == NULL:
            return
        k += found - &view[k]
        if k >= last:
            return
        if k + 1 >= size or view[k + 1] != 47:
            k += 2  # not "//": the next "/" that could start one is past the byte after
            continue
        if k == 0 or not _opens_url(view[k - 1]):
            k += 1
            continue
        e = k + 2  # the host: a label, then one or more "." + label (possessive)
        while e < size and ANY_CASE[view[e]]:
            e += 1
        dots = 0
        if e > k + 2:
            while e + 1 < size and view[e] == 46 and ANY_CASE[view[e + 1]]:
                e += 2
                while e < size and ANY_CASE[view[e]]:
                    e += 1
                dots += 1
        if dots == 0:
            k += 1
            continue
        while edit_end < e and at < count:  # the next edit ending at or after e
            edit = <tuple?>edits[at]
            at += 1
            if edit[3]:  # a tag fixup ("") rewrites a whole tag, not a host
                edit_first, edit_end = edit[0], edit[1]
        if edit_end == e and edit_first <= k + 2:
            k = e  # a rewritten, so covered, host
            continue
        if e < limit and e < size:
            if not (ANY_CASE[view[e]] or view[e] == 46):
                seen.append(_piece(data, k + 2, e))
        elif k >= near:
            seen.append(_piece(data, k + 2, e))
        k = e


def lower(bytes data):
    """``data.lower()`` (ASCII letters only, like ``bytes.lower``) in a loop the C compiler
    vectorizes: several times faster than CPython's byte-at-a-time table on a page, and the
    rewriter lower-cases every buffer it scans."""
    cdef Py_ssize_t n = len(data), i
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* write = <unsigned char*>PyBytes_AS_STRING(out)
    cdef const unsigned char* read = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef unsigned char c
    for i in range(n):
        c = read[i]
        write[i] = c + 32 * (<unsigned char>(c - 65) < 26)  # "A"…"Z" → "a"…"z"
    return out


def contains_any(bytes text, tuple words):
    """True when ``text`` contains one of ``words`` (glibc's ``memmem``: several times
    faster than ``bytes.__contains__`` on long texts without a match, the common case of
    ``htmlfixups.TRIGGERS``)."""
    cdef bytes word
    for word in words:
        if memmem(PyBytes_AS_STRING(text), len(text), PyBytes_AS_STRING(word), len(word)) != NULL:
            return True
    return False


def candidates(matcher, bytes low, Py_ssize_t start):
    """The spans of the candidates ``references`` examines: exactly those of
    ``matcher.tld_scan_lower.finditer(low, start)`` (a test compares them)."""
    cdef const unsigned char[::1] view = low
    cdef tuple table = matcher.scan_table
    cdef Py_ssize_t dot, end = start
    cdef list spans = []
    cdef _ScanTable scan = _ScanTable(table)
    while True:
        dot = _candidate(view, end, scan, &end)
        if dot < 0:
            return spans
        spans.append((dot, end))
