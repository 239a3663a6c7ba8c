"""Where a vendor's redirect may send the patron's browser (R22).

Contract: ``judge_location(value, mapped)`` is a pure verdict on a response's ``Location``:
``"stay"`` (a relative reference, or a vendor URL that maps to a proxy host: ``mapped`` is
that mapping, None otherwise), ``"leave"`` (an ordinary public http(s) URL no rule covers:
the patron is shown where they are going before their browser goes there directly, from
their own address), or ``"refuse"`` (anything else: a scheme a browser should never be
redirected to, an internal, private, loopback, link-local or metadata address, an internal
name, or junk). The URL is read as a browser would read it (tabs and newlines removed, a
backslash is a slash in http(s) URLs, WHATWG URL §4.4), so ``/\\evil.example`` is a host.
Not here: mapping the URL (urlmap.py), the pages (web/pages.py), the response (web).
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Final, Literal
from urllib.parse import urlsplit

from proxy.core.addresses import forbidden_reason

Verdict = Literal["stay", "leave", "refuse"]

# Schemes a redirect may lead a browser to; javascript:, data:, file:, blob: and the rest are
# refused (RFC 9110 §10.2.2 allows any URI reference; browsers would run or open them).
NAVIGABLE_SCHEMES: Final = frozenset({"http", "https"})
# Names that resolve inside the machine or the site (RFC 6761 §6.3 localhost, RFC 6762 .local,
# RFC 8375 home.arpa, ICANN's .internal, cloud metadata names).
INTERNAL_NAME_SUFFIXES: Final = (
    "localhost",
    ".localhost",
    ".local",
    ".internal",
    ".home.arpa",
    ".localdomain",
    ".lan",
    ".intranet",
    ".corp",
)
# Removed by browsers from a URL before parsing it (WHATWG URL basic parser, step 2-3).
URL_STRIPPED: Final = str.maketrans("", "", "\t\n\r")


def judge_location(value: str, mapped: str | None) -> Verdict:
    """The verdict on a Location value; ``mapped`` is its proxy form, if a rule covers it."""
    if mapped is not None:
        return "stay"
    url = value.translate(URL_STRIPPED).strip(" \x00\x0c").replace("\\", "/")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return "refuse"
    if not parts.scheme and not parts.netloc:
        return "stay" if not url.startswith("//") else "refuse"
    if (parts.scheme or "https") not in NAVIGABLE_SCHEMES or not host or "@" in parts.netloc:
        return "refuse"
    return "refuse" if is_internal_host(host) else "leave"


def is_internal_host(host: str) -> bool:
    """An IP literal the proxy would never connect to (DESIGN P6), or an internal name; digits
    only or hex names are refused too (resolvers read ``2852039166`` as an address)."""
    try:
        return forbidden_reason(ip_address(host.strip("[]"))) is not None
    except ValueError:
        pass
    lower = host.lower()
    if lower.replace(".", "").isdigit() or lower.startswith("0x") or "." not in lower:
        return True
    return lower.endswith(INTERNAL_NAME_SUFFIXES)
