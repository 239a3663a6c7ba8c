"""Issue #15: a vendor cookie jar survives the trip through its compact Redis form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proxy.core.cookiejar import CookieJar
from proxy.stores.redis_jars import decode, encode

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_restored_jar_sends_the_same_cookies() -> None:
    """Host-only, domain, Secure and expiring cookies: the restored jar's Cookie header for
    each request equals the original's, and an expired cookie does not come back."""
    jar = CookieJar(max_cookies=10)
    jar.store(
        [
            "sid=abc; Path=/; HttpOnly",
            "pref=1; Domain=acme.test; Path=/docs",
            "sec=s; Secure",
            "brief=b; Max-Age=60",
        ],
        request_host="www.acme.test",
        request_path="/login",
        secure_scheme=True,
        now=NOW,
    )
    copy = CookieJar(max_cookies=10)
    copy.restore(decode(encode(jar.snapshot(NOW))), NOW)
    for host, path, secure in [
        ("www.acme.test", "/docs/x", True),
        ("cdn.acme.test", "/docs/", False),
        ("www.acme.test", "/", False),
    ]:
        args = {"host": host, "path": path, "secure_scheme": secure, "now": NOW}
        assert copy.header_for(**args) == jar.header_for(**args)
    later = NOW + timedelta(minutes=2)
    copy.restore(decode(encode(jar.snapshot(NOW))), later)
    assert "brief" not in (
        copy.header_for(host="www.acme.test", path="/", secure_scheme=True, now=later) or ""
    )


def test_restore_keeps_the_bound() -> None:
    """A stored form with more cookies than the jar's bound is cut to the bound."""
    big = CookieJar(max_cookies=50)
    big.store([f"c{i}=v" for i in range(20)], request_host="a.test", request_path="/",
              secure_scheme=False, now=NOW)  # fmt: skip
    small = CookieJar(max_cookies=5)
    small.restore(decode(encode(big.snapshot(NOW))), NOW)
    assert len(small) == 5
    assert encode([]) == b"" and decode(b"") == []
