"""Set-Cookie rescoping for ``cookies: pass``: a vendor's cookie, rewritten for the browser.

Contract: pure, synchronous, stdlib only. ``rescope_set_cookie`` turns one vendor Set-Cookie
value into a host-only one for the mapped host that served the response (or None to drop it),
with the same acceptance checks a browser at the vendor would make (setcookie.py). The value is
always rebuilt from the parse, never copied.

Not here: parsing and the checks themselves (setcookie.py), the server-side jar used by
``cookies: server_side`` (cookiejar.py, which re-exports ``rescope_set_cookie``), reading and
writing the headers of aiohttp messages (the relay).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from email.utils import format_datetime

from proxy.core.setcookie import (
    SetCookie,
    canonical_host,
    cookie_domain,
    never_public,
    parse_set_cookie,
    prefix_allows,
)


def rescope_set_cookie(
    value: str,
    *,
    upstream_host: str,
    secure_ok: bool,
    reserved_names: Collection[str],
    is_public_suffix: Callable[[str], bool] = never_public,
) -> str | None:
    """Rewrite a vendor Set-Cookie for the browser (``cookies: pass``), or None to drop it.

    The result is always host-only, so the browser scopes it to the mapped host that served the
    response. A ``Domain`` attribute is checked (it must cover ``upstream_host`` and not be a
    public suffix, as a browser at the vendor would check) and then dropped: every vendor host has
    its own one-label mapped host, so a vendor domain cookie (``Domain=.vendor.com``) has no proxy
    equivalent short of ``Domain=<proxy host>``, which would leak it to every other vendor's
    mapped host. The price: a cookie set on ``www.vendor.com`` is not seen on the mapped
    ``search.vendor.com`` (``cookies: server_side`` has no such gap). Path, Expires, Max-Age,
    HttpOnly and SameSite are kept; Secure only when ``secure_ok`` (the proxy is served over
    https); other attributes are dropped. The value is rebuilt from the parse, never copied.

    Args:
        upstream_host: the vendor host whose response carried the Set-Cookie.
        secure_ok: whether the browser talks to the proxy over https.
        reserved_names: cookie names the proxy uses itself (its session cookie, sent to every
            mapped host): a vendor cookie with such a name (any case) is dropped.
    """
    cookie = parse_set_cookie(value)
    if cookie is None or cookie.name.lower() in {n.lower() for n in reserved_names}:
        return None
    if not prefix_allows(cookie, secure=cookie.secure and secure_ok):
        return None
    if cookie.domain is not None:
        host = canonical_host(upstream_host)
        if cookie_domain(cookie.domain, host, is_public_suffix) is None:
            return None
    return _render(cookie, secure=cookie.secure and secure_ok)


def _render(cookie: SetCookie, *, secure: bool) -> str:
    """Serialise a parsed cookie as a host-only Set-Cookie value (RFC 6265 §4.1.1 syntax)."""
    parts = [f"{cookie.name}={cookie.value}"]
    if cookie.path is not None:
        parts.append(f"Path={cookie.path}")
    if cookie.expires is not None:
        parts.append(f"Expires={format_datetime(cookie.expires, usegmt=True)}")
    if cookie.max_age is not None:
        parts.append(f"Max-Age={max(cookie.max_age, 0)}")
    parts += [flag for flag, on in (("Secure", secure), ("HttpOnly", cookie.http_only)) if on]
    if cookie.same_site is not None:
        parts.append(f"SameSite={cookie.same_site}")
    return "; ".join(parts)
