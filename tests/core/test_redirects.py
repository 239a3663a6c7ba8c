"""Where a vendor's redirect may send the browser (R22): table-driven."""

from __future__ import annotations

import pytest

from proxy.core.redirects import judge_location


@pytest.mark.parametrize(
    ("location", "verdict"),
    [
        ("/stable/2", "stay"),
        ("?page=2", "stay"),
        ("https://www.example.org/x", "leave"),
        ("//www.example.org/x", "leave"),
        ("http://127.0.0.1:8080/secret", "refuse"),
        ("http://169.254.169.254/latest/meta-data/", "refuse"),
        ("http://[::1]/", "refuse"),
        ("http://10.1.2.3/", "refuse"),
        ("http://2852039166/", "refuse"),
        ("http://0xA9FEA9FE/", "refuse"),
        ("http://127.1/", "refuse"),
        ("http://localhost:9000/", "refuse"),
        ("http://metadata.google.internal/", "refuse"),
        ("http://intranet/", "refuse"),
        ("javascript:alert(document.cookie)", "refuse"),
        ("java\tscript:alert(1)", "refuse"),
        (" JavaScript:alert(1)", "refuse"),
        ("data:text/html,<script>x</script>", "refuse"),
        ("file:///etc/passwd", "refuse"),
        ("/\\127.0.0.1/", "refuse"),
        ("https://user@www.example.org/", "refuse"),
        ("http://[::1", "refuse"),
    ],
)
def test_location_verdicts(location: str, verdict: str) -> None:
    """R22: relative stays, public unlisted http(s) leaves, internal and odd schemes refused."""
    assert judge_location(location, None) == verdict


def test_a_mapped_location_stays() -> None:
    """A Location a rule covers stays on the proxy, whatever it looks like."""
    assert judge_location("https://www.jstor.org/x", "http://www-jstor-org.p/x") == "stay"
