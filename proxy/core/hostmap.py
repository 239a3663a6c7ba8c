"""Host mapping between upstream origins and proxy hosts (EZproxy "HttpsHyphens" form).

Contract: pure string functions, values in and values out. For every valid origin ``o``,
``decode_label(encode_label(o)) == o`` whenever ``o`` has a plain label, and always
``HostMap.origin_for(HostMap.mapped_authority(o)) == o``. Decoding accepts only the exact form
that encoding produces, so distinct origins never share a label and a label has one meaning.
Not here: which hosts are allowed (the rules index, core/ruleset.py), URL rewriting inside
bodies (the rewriter).

The form: ``https://www.jstor.org`` <-> ``www-jstor-org.<proxy host>``. Each ``-`` in the
vendor host becomes ``--``, then each ``.`` becomes ``-``. A scheme other than https or a
non-default port goes in a suffix: ``---``, then ``h`` for http, then the port
(``http://www.foo.com:8080`` -> ``www-foo-com---h8080``; ``http://a.b`` -> ``a-b---h``).
A label that would not work in a browser (over 63 characters, or starting with ``xn--``) is
replaced by an alias ``z---<16 base32 chars>`` that only a ``HostMap`` can resolve.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

Scheme = Literal["http", "https"]

DEFAULT_PORTS: Final[Mapping[Scheme, int]] = {"https": 443, "http": 80}
_SCHEMES: Final[Mapping[str, Scheme]] = {"https": "https", "http": "http"}
MAX_LABEL: Final = 63  # RFC 1035 §2.3.4
MAX_HOST: Final = 253  # RFC 1035 §2.3.4: 255 octets on the wire, 253 characters written out
ALIAS_PREFIX: Final = "z---"  # then a non-dash: see _ALIAS_START
SEPARATOR: Final = "---"

# Why "---" is a safe separator: in a valid hostname a dot is never next to a dash or another
# dot (labels are non-empty and neither start nor end with "-"). So in the encoded host every
# run of dashes is either 1 long (a dot) or even (escaped dashes); a run of exactly three
# can never come from the host.
_DASH_RUN: Final = re.compile(r"-+")
_EXACT_SEPARATOR: Final = re.compile(r"(?<!-)---(?!-)")
_SUFFIX: Final = re.compile(r"(h?)([1-9][0-9]{0,4})?")
_PORT: Final = re.compile(r"[1-9][0-9]{0,4}")  # no leading zeros: one spelling per port
# An alias is "z" + a run of exactly three dashes. A plain label cannot start that way: it
# would be host "z" (a single label) plus a suffix. Plain labels can start "z----" (z--x.org).
_ALIAS_START: Final = re.compile(r"z---(?!-)")
_ALIAS: Final = re.compile(r"z---[a-z2-7]{16}")
_NOT_LABEL_CHAR: Final = re.compile(r"[^a-z0-9-]")
_REQUEST_HOST: Final = re.compile(r"[a-z0-9.-]+(?::[^:]*)?")  # no userinfo, brackets, spaces
# WHATWG URL "ends in a number": browsers read such a host as an IPv4 address (127.1, 0x7f.1).
_NUMERIC_LAST_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
_URL_AUTHORITY_END: Final = re.compile(r"[/?#\\]")  # "\" ends it too, as in browsers


DECODED_CACHE: Final = 4096  # distinct Host values remembered by HostMap.origin_for


class HostMapError(ValueError):
    """A host, label or origin is malformed or not served here."""

    status_hint: int = 400
    public_message: str = "This is not a valid proxied address."


class UnknownMappedHost(HostMapError):
    """A well-formed alias label that this HostMap has not issued (or has forgotten)."""

    status_hint = 404
    public_message = "This proxied address is unknown or has expired; follow the link again."


class AliasRequired(HostMapError):
    """The origin's plain label would not work in a browser; only a HostMap can map it."""


@dataclass(frozen=True, slots=True)
class Origin:
    """An upstream origin; always valid, with a lowercase host and an explicit port."""

    scheme: Scheme
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.scheme not in DEFAULT_PORTS:
            raise HostMapError(f"scheme must be http or https, not {_show(self.scheme)}")
        problem = hostname_problem(self.host)
        if problem:
            raise HostMapError(problem)
        if self.host != self.host.lower():
            raise HostMapError(f"host must be lowercase: {_show(self.host)} (Origin.parse does it)")
        if not 1 <= self.port <= 65535:
            raise HostMapError(f"port must be 1..65535, not {self.port}")

    @property
    def default_port(self) -> bool:
        return self.port == DEFAULT_PORTS[self.scheme]

    @property
    def authority(self) -> str:
        """``host`` or ``host:port``, as in the Host header sent upstream."""
        return self.host if self.default_port else f"{self.host}:{self.port}"

    def url_prefix(self) -> str:
        return f"{self.scheme}://{self.authority}"

    def canonical(self) -> str:
        """``scheme://host:port`` with the port always written; the alias hash input."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @classmethod
    def parse(cls, authority_or_url: str, *, default_scheme: Scheme = "https") -> Origin:
        """Parse ``host[:port]`` or ``scheme://host[:port][/…]`` (any path is ignored).

        Userinfo, IP literals, empty or zero-padded ports and non-ASCII hosts are refused.
        """
        text = authority_or_url
        if not text.isascii():
            raise HostMapError(f"not ASCII: {_show(text)} (use the IDNA 'xn--' form)")
        scheme, authority = _split_scheme(text, default_scheme)
        if "@" in authority:
            raise HostMapError(f"userinfo ('user@') is not allowed: {_show(text)}")
        host, port = _split_port(authority)
        return cls(scheme, host.lower(), DEFAULT_PORTS[scheme] if port is None else port)


def _split_scheme(text: str, default_scheme: Scheme) -> tuple[Scheme, str]:
    if "://" not in text:
        if _URL_AUTHORITY_END.search(text):
            raise HostMapError(f"expected 'host[:port]' or an http(s) URL: {_show(text)}")
        return default_scheme, text
    scheme_text, _, rest = text.partition("://")
    scheme = _SCHEMES.get(scheme_text.lower())
    if scheme is None:
        raise HostMapError(f"scheme must be http or https: {_show(text)}")
    return scheme, _URL_AUTHORITY_END.split(rest, maxsplit=1)[0]


def _split_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("[") or authority.count(":") > 1:
        return authority, None  # an IPv6 literal: hostname_problem names it
    host, colon, port_text = authority.partition(":")
    return host, (_parse_port(port_text) if colon else None)


def _parse_port(text: str) -> int:
    if not _PORT.fullmatch(text) or int(text) > 65535:
        raise HostMapError(f"bad port {_show(text)}: expected 1..65535 without leading zeros")
    return int(text)


def _show(value: str) -> str:
    """repr() of untrusted text, cut short so a huge Host header cannot bloat a message."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def is_valid_hostname(host: str) -> bool:
    return hostname_problem(host) is None


def hostname_problem(host: str) -> str | None:
    """Why ``host`` is not a vendor hostname, or None if it is one (case-insensitive).

    A trailing dot is refused, not stripped: ``a.com.`` and ``a.com`` differ for cookies
    and certificates, and rules should name one spelling.
    """
    reason = _hostname_reason(host)
    return None if reason is None else f"not a hostname: {_show(host)} ({reason})"


def _hostname_reason(host: str) -> str | None:
    # ASCII first: str.lower() maps some non-ASCII letters to ASCII (KELVIN SIGN -> "k").
    if not host:
        return "empty"
    if not host.isascii():
        return "non-ASCII; use the IDNA 'xn--' form"
    if host.startswith("[") or ":" in host:
        return "IP literal"
    if host.endswith("."):
        return "trailing dot; write the name without it"
    if len(host) > MAX_HOST:
        return f"longer than {MAX_HOST} characters"
    labels = host.lower().split(".")
    if len(labels) < 2:
        return "a single label; need at least two, e.g. 'example.org'"
    reason = next(filter(None, map(_label_reason, labels)), None)
    if reason is None and _NUMERIC_LAST_LABEL.fullmatch(labels[-1]):
        return "IP literal: browsers read a numeric last label as an IPv4 address"
    return reason


def _label_reason(label: str) -> str | None:
    if not label:
        return "empty label"
    if len(label) > MAX_LABEL:
        return f"label {_show(label)} is longer than {MAX_LABEL} characters"
    bad = _NOT_LABEL_CHAR.search(label)
    if bad:
        return f"character {bad.group()!r} is not allowed; use a-z, 0-9 and '-'"
    if label.startswith("-") or label.endswith("-"):
        return f"label {_show(label)} starts or ends with '-'"
    return None


def encode_label(origin: Origin) -> str:
    """The plain mapped label of ``origin``.

    Raises:
        AliasRequired: the label would not work in a browser; ``HostMap`` aliases it.
    """
    label = _plain_label(origin)
    reason = _alias_reason(label)
    if reason:
        raise AliasRequired(f"the label for {origin.url_prefix()} {reason}; a HostMap aliases it")
    return label


def alias_label(origin: Origin) -> str:
    """The deterministic alias label: ``z---`` + base32 of 80 bits of SHA-256."""
    digest = hashlib.sha256(origin.canonical().encode("ascii")).digest()[:10]
    return ALIAS_PREFIX + base64.b32encode(digest).decode("ascii").lower()


def _plain_label(origin: Origin) -> str:
    body = origin.host.replace("-", "--").replace(".", "-")
    flag = "h" if origin.scheme == "http" else ""
    suffix = flag + ("" if origin.default_port else str(origin.port))
    return f"{body}{SEPARATOR}{suffix}" if suffix else body


def _alias_reason(label: str) -> str | None:
    if len(label) > MAX_LABEL:
        return f"is longer than {MAX_LABEL} characters"
    # Browsers following the WHATWG URL standard refuse a host whose "xn--" label is not
    # valid punycode, and "xn----bcher--kva-example" is not (Chromium lets it through).
    if label.startswith("xn--"):
        return "starts with 'xn--', which browsers decode as punycode"
    return None


def decode_label(label: str) -> Origin:
    """The origin a plain label stands for; case-insensitive.

    Raises:
        HostMapError: malformed, not in the exact form encode_label writes, or an alias.
    """
    return _decode_checked(_checked_label(label))


# Cached because it runs on every proxied request and validating costs ~10 µs. Exceptions are
# not cached, and the size is bounded, so invented Host headers cannot grow it.
@functools.lru_cache(maxsize=4096)
def _decode_checked(label: str) -> Origin:
    match = _EXACT_SEPARATOR.search(label)
    body, suffix = (label[: match.start()], label[match.end() :]) if match else (label, None)
    scheme, port = _parse_suffix(suffix, label)
    host = _decode_body(body, label)
    try:
        origin = Origin(scheme, host, port)
    except HostMapError as exc:
        raise _bad_label(label, str(exc)) from None
    if _plain_label(origin) != label:
        raise _bad_label(label, f"not in canonical form, which is {_plain_label(origin)!r}")
    return origin


def _checked_label(label: str) -> str:
    if not label:
        raise _bad_label(label, "empty")
    if not label.isascii():
        raise _bad_label(label, "non-ASCII")
    text = label.lower()
    if _ALIAS_START.match(text):
        raise _bad_label(label, "an alias; only the HostMap that issued it can resolve it")
    reason = _alias_reason(text)
    if reason:
        raise _bad_label(label, f"{reason}; such origins are served under an alias")
    return text


def _parse_suffix(suffix: str | None, label: str) -> tuple[Scheme, int]:
    if suffix is None:
        return "https", 443
    match = _SUFFIX.fullmatch(suffix)
    if not suffix or match is None:
        expected = "'h' and/or a port without leading zeros"
        raise _bad_label(label, f"bad suffix {suffix!r}: expected {expected}")
    scheme: Scheme = "http" if match.group(1) else "https"
    port = int(match.group(2)) if match.group(2) else DEFAULT_PORTS[scheme]
    if port > 65535:
        raise _bad_label(label, f"port {port} is above 65535")
    return scheme, port


def _decode_body(body: str, label: str) -> str:
    for run in _DASH_RUN.findall(body):
        if len(run) > 1 and len(run) % 2:
            raise _bad_label(label, f"a run of {len(run)} dashes (only 1, even, or '---' + suffix)")
    return _DASH_RUN.sub(_decode_run, body)


def _decode_run(match: re.Match[str]) -> str:
    length = len(match.group())
    return "." if length == 1 else "-" * (length // 2)


def _bad_label(label: str, reason: str) -> HostMapError:
    return HostMapError(f"not a mapped host label: {_show(label)} ({reason})")


class HostMap:
    """Maps origins to hosts under one proxy host, and remembers the aliases it issues.

    Aliases live in a bounded LRU table (``alias_capacity`` entries); an alias this instance
    does not know is refused with ``UnknownMappedHost`` (404), never guessed. Nothing is
    shared between instances: ``alias_label`` is deterministic, so each instance re-learns an
    alias whenever it encodes that origin, and a browser only meets an alias in a page or
    redirect that was rewritten by ``mapped_host``. Registering every host the rules name at
    startup makes those aliases known everywhere; a host reached only through a wildcard rule
    is known to the instances that have rewritten a link to it (others answer 404 until then).
    Only work done for a signed-in patron registers aliases (``resolve_target`` does not):
    an unauthenticated ``/login?url=`` flood once evicted patrons' aliases (pentest R18).
    """

    __slots__ = ("_aliases", "_capacity", "_decoded", "_portal", "proxy_host", "proxy_port")

    def __init__(self, proxy_host: str, proxy_port: int | None, *, alias_capacity: int = 10_000):
        """Check the proxy's own address.

        Args:
            proxy_host: the portal's hostname, e.g. ``proxy.lib.org``; mapped hosts sit one
                label under it.
            proxy_port: the port in public URLs, or None when it is the scheme's default.
        """
        self.proxy_host = _checked_proxy_host(proxy_host)
        if proxy_port is not None and not 1 <= proxy_port <= 65535:
            raise HostMapError(f"proxy port must be 1..65535, not {proxy_port}")
        if alias_capacity < 1:
            raise ValueError(f"alias_capacity must be at least 1, not {alias_capacity}")
        self.proxy_port = proxy_port
        self._capacity = alias_capacity
        self._aliases: OrderedDict[str, Origin] = OrderedDict()
        # Decoded Host values (not aliases, whose table can evict): the relay decodes the
        # same few hosts on every request. Bounded; cleared when full.
        self._decoded: dict[str, Origin] = {}
        port = "" if proxy_port is None else f":{proxy_port}"
        self._portal = frozenset({self.proxy_host, self.proxy_host + port})

    def register(self, origin: Origin) -> str:
        """The label for ``origin``; an alias is remembered so ``origin_for`` resolves it."""
        label = _plain_label(origin)
        if _alias_reason(label) is None:
            return label
        alias = alias_label(origin)
        known = self._aliases.get(alias)
        if known is not None and known != origin:  # 80-bit hash: not expected, but never guess
            pair = f"{known.url_prefix()} and {origin.url_prefix()}"
            raise HostMapError(f"alias collision between {pair}")
        self._aliases[alias] = origin
        self._aliases.move_to_end(alias)
        if len(self._aliases) > self._capacity:
            self._aliases.popitem(last=False)
        return alias

    def mapped_host(self, origin: Origin) -> str:
        return f"{self.register(origin)}.{self.proxy_host}"

    def mapped_authority(self, origin: Origin) -> str:
        host = self.mapped_host(origin)
        return host if self.proxy_port is None else f"{host}:{self.proxy_port}"

    def origin_for(self, request_host: str) -> Origin:
        """The origin behind a request's Host header value (port optional, but if present
        it must be the proxy's).
        """
        known = self._decoded.get(request_host)
        if known is not None:
            return known
        host = self._host_without_port(request_host)
        if host == self.proxy_host:
            raise HostMapError(f"{_show(request_host)} is the portal host, not a mapped host")
        label, _, parent = host.partition(".")
        if parent != self.proxy_host:
            raise HostMapError(f"{_show(request_host)} is not one label under {self.proxy_host!r}")
        if _ALIAS_START.match(label):
            return self._resolve_alias(label)
        origin = decode_label(label)
        if len(self._decoded) >= DECODED_CACHE:
            self._decoded.clear()
        self._decoded[request_host] = origin
        return origin

    def is_portal(self, request_host: str) -> bool:
        if request_host in self._portal:
            return True
        if request_host in self._decoded:
            return False  # a mapped host seen before
        try:
            return self._host_without_port(request_host) == self.proxy_host
        except HostMapError:
            return False

    def _resolve_alias(self, label: str) -> Origin:
        if not _ALIAS.fullmatch(label):
            raise _bad_label(label, "malformed alias")
        origin = self._aliases.get(label)
        if origin is None:
            raise UnknownMappedHost(f"unknown alias {label!r}: not issued here, or evicted")
        self._aliases.move_to_end(label)
        return origin

    def _host_without_port(self, request_host: str) -> str:
        text = request_host.lower() if request_host.isascii() else ""
        if not _REQUEST_HOST.fullmatch(text):
            raise HostMapError(f"malformed Host header value {_show(request_host)}")
        host, port = _split_port(text)
        if port is not None and port != self.proxy_port:
            raise HostMapError(f"port {port} in {_show(request_host)} is not the proxy's port")
        return host


def _checked_proxy_host(proxy_host: str) -> str:
    problem = hostname_problem(proxy_host)
    if problem:
        raise HostMapError(f"proxy host: {problem}")
    if len(proxy_host) > MAX_HOST - MAX_LABEL - 1:
        raise HostMapError(f"proxy host {proxy_host!r} leaves no room for a 63-character label")
    return proxy_host.lower()
