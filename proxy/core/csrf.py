"""CSRF tokens for the portal's forms, and the cross-site test for state-changing requests.

Contract: a token is ``nonce.mac`` where ``mac = HMAC(key, nonce)``; the nonce also travels in
a SameSite=Strict cookie, so a valid form needs both the cookie and the matching signed
token. A signed token alone is not enough because vendor pages run on sibling hosts
(``*.proxy.host``) and could plant a cookie; ``is_cross_site`` adds the Origin /
Sec-Fetch-Site test that those pages cannot pass.
Not here: cookies and forms (web/login.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

# Sec-Fetch-Site values a form post from our own page may carry (Fetch Metadata, W3C).
SAME_ORIGIN_FETCH: Final = frozenset({"same-origin", "none"})


def issue(key: bytes, nonce: str) -> str:
    """The token for a nonce (a URL-safe random string without dots)."""
    mac = hmac.new(key, b"csrf\x00" + nonce.encode("ascii"), hashlib.sha256).digest()
    return f"{nonce}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def verify(key: bytes, cookie_nonce: str | None, token: str | None) -> bool:
    """True when the token is ours and belongs to the cookie's nonce."""
    if not cookie_nonce or not token or token.count(".") != 1 or not cookie_nonce.isascii():
        return False
    if not hmac.compare_digest(token.split(".", 1)[0], cookie_nonce):
        return False
    return hmac.compare_digest(issue(key, cookie_nonce), token)


def is_cross_site(origin: str | None, fetch_site: str | None, portal_origin: str) -> bool:
    """True when a state-changing request did not come from the portal's own pages."""
    if fetch_site is not None and fetch_site not in SAME_ORIGIN_FETCH:
        return True
    return origin is not None and origin != portal_origin  # "null" (sandboxed) is cross-site too
