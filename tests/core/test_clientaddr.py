"""Which address is the patron's."""

from __future__ import annotations

import ipaddress

import pytest

from proxy.core.clientaddr import client_address

TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "client"),
    [
        ("203.0.113.5", ["198.51.100.1"], [], "203.0.113.5"),
        ("203.0.113.5", ["198.51.100.1"], TRUSTED, "203.0.113.5"),
        ("10.0.0.2", ["198.51.100.1"], TRUSTED, "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.3"], TRUSTED, "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], TRUSTED, "198.51.100.1"),
        ("10.0.0.2", [], TRUSTED, "10.0.0.2"),
        ("10.0.0.2", ["junk"], TRUSTED, "10.0.0.2"),
        ("::ffff:203.0.113.5", [], [], "203.0.113.5"),
    ],
)
def test_client_address(
    peer: str, xff: list[str], trusted: list[ipaddress.IPv4Network], client: str
) -> None:
    """X-Forwarded-For counts only from trusted proxies, right-most untrusted entry wins."""
    assert str(client_address(peer, xff, trusted)) == client
