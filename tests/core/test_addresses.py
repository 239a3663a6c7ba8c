"""Forbidden upstream addresses: internal, special-purpose and metadata, in every IPv6 disguise."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.addresses import forbidden_reason

HOSTILE = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT shared"),
    ("100.127.255.254", "CGNAT shared"),
    ("169.254.0.1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.99", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
    ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
    ("64:ff9b:1:ffff::1", "local-use NAT64"),
    ("4000::1", "reserved"),
    ("::ffff:127.0.0.1", "IPv4-mapped of 127.0.0.1: loopback"),
    ("::ffff:a9fe:a9fe", "IPv4-mapped of 169.254.169.254: cloud metadata"),
    ("::ffff:10.0.0.1", "IPv4-mapped of 10.0.0.1: private"),
    ("::127.0.0.1", "IPv4-compatible of 127.0.0.1: loopback"),
    ("::a9fe:a9fe", "IPv4-compatible of 169.254.169.254: cloud metadata"),
    ("::ffff:0:7f00:1", "SIIT IPv4-translated of 127.0.0.1: loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254: cloud metadata"),
    ("64:ff9b::127.0.0.1", "NAT64 of 127.0.0.1: loopback"),
    ("64:ff9b::c0a8:101", "NAT64 of 192.168.1.1: private"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254: cloud metadata"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1: loopback"),
    ("2002:a00:1:ffff::1", "6to4 of 10.0.0.1: private"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 obfuscated (XOR 0xffffffff) as 80ff:fffe.
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo of 127.0.0.1: loopback"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "Teredo of 169.254.169.254: cloud metadata"),
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "Teredo server of 10.0.0.1: private"),
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "151.101.1.69",
    "104.18.32.7",
    "192.0.1.1",  # just below 192.0.2.0/24
    "198.17.255.255",  # just below 198.18/15
    "100.63.255.255",  # just below 100.64/10
    "100.128.0.0",  # just above 100.64/10
    "172.32.0.1",  # just above 172.16/12
    "223.255.255.254",  # just below multicast
    "2606:4700:4700::1111",
    "2a00:1450:4001:82a::200e",
    "2620:fe::fe",
    "::ffff:8.8.8.8",  # IPv4-mapped public address
    "64:ff9b::808:808",  # what DNS64 returns for 8.8.8.8 on an IPv6-only network
    "2002:808:808::1",  # 6to4 of a public address
]

# Spellings that ipaddress refuses but the C resolver (inet_aton) accepts. An attacker can
# put them in a URL or a DNS answer; what matters is the address they resolve to.
NUMERIC_SPELLINGS = [
    "2852039166",  # 169.254.169.254 as one decimal number
    "0xA9FEA9FE",  # 169.254.169.254 in hex
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",  # octal
    "127.1",  # 127.0.0.1, short form
    "0x7f.1",
    "017700000001",
    "2130706433",
    "0",
    "10.1",
]


@pytest.mark.parametrize(("text", "reason"), HOSTILE)
def test_hostile_address_is_forbidden_with_its_reason(text: str, reason: str) -> None:
    """Each internal, special-purpose or metadata address is refused with a precise reason."""
    assert forbidden_reason(ip_address(text)) == reason


@pytest.mark.parametrize("text", ALLOWED)
def test_ordinary_public_address_is_allowed(text: str) -> None:
    """Ordinary public addresses, including their DNS64/mapped forms, are allowed."""
    assert forbidden_reason(ip_address(text)) is None


@pytest.mark.parametrize("spelling", NUMERIC_SPELLINGS)
def test_numeric_spellings_resolve_to_forbidden_addresses(spelling: str) -> None:
    """Decimal, hex, octal and short forms resolve (with the real resolver) to refused addresses."""
    infos = socket.getaddrinfo(spelling, 80, type=socket.SOCK_STREAM)
    resolved = {info[4][0] for info in infos}
    assert resolved
    for address in resolved:
        assert forbidden_reason(ip_address(address)) is not None, address


def test_localhost_resolves_only_to_forbidden_addresses() -> None:
    """Every address the real resolver gives for 'localhost' is refused."""
    infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    for address in {info[4][0] for info in infos}:
        assert forbidden_reason(ip_address(address)) is not None, address


def test_is_global_is_not_enough() -> None:
    """ipaddress.is_global accepts disguised metadata addresses that the tables refuse."""
    disguised = [ip_address("64:ff9b::a9fe:a9fe"), ip_address("2002:a9fe:a9fe::1")]
    assert all(addr.is_global for addr in disguised)
    assert all(forbidden_reason(addr) for addr in disguised)


ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)


@given(ipv4s, st.integers(min_value=0, max_value=2**80 - 1))
def test_embedded_forms_get_the_ipv4_verdict(v4: IPv4Address, low_bits: int) -> None:
    """Mapped, NAT64 and 6to4 forms of an IPv4 address are refused exactly when it is."""
    refused = forbidden_reason(v4) is not None
    forms = [
        IPv6Address(0xFFFF << 32 | int(v4)),  # ::ffff:a.b.c.d
        IPv6Address(0x0064_FF9B << 96 | int(v4)),  # 64:ff9b::a.b.c.d
        IPv6Address(0x2002 << 112 | int(v4) << 80 | low_bits),  # 2002:AABB:CCDD:…
    ]
    for form in forms:
        assert (forbidden_reason(form) is not None) == refused, form
