"""Which IP addresses the proxy must never connect to on a patron's behalf (DESIGN P6).

Contract: ``forbidden_reason(addr)`` is a pure function of one already-resolved address: a
short reason string (``"loopback"``, ``"cloud metadata"``, ``"NAT64 of 169.254.169.254:
cloud metadata"``…) when connecting there could reach something inside the machine, the
local network or the cloud provider, and None for an ordinary public address. IPv6 forms
that carry an IPv4 address (IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4, Teredo) are
judged by the IPv4 address they carry, with the same tables: ``ipaddress.is_global`` is
true for the NAT64 and 6to4 forms of 169.254.169.254, so it is only a last backstop here.
Not here: resolving names, admin-mapped exceptions (``upstream_overrides``) and refusing the
connection (proxy/upstream/client.py); which hosts a vendor rule covers (core/rules.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

V4 = IPv4Network
V6 = IPv6Network

# Addresses of cloud instance-metadata and host-agent services: named first, so the log
# says what an SSRF attempt was after. Some lie in public ranges, so no range table holds them.
METADATA: Final[frozenset[IPv4Address | IPv6Address]] = frozenset(
    {
        IPv4Address("169.254.169.254"),  # AWS/GCP/Azure/OpenStack/DigitalOcean IMDS
        IPv4Address("169.254.170.2"),  # AWS ECS task metadata and credentials endpoint
        IPv4Address("100.100.100.200"),  # Alibaba Cloud ECS metadata
        IPv4Address("168.63.129.16"),  # Azure WireServer / host agent (a public-range address)
        IPv4Address("192.0.0.192"),  # Oracle Cloud (OCI) metadata
        IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6 (Nitro)
    }
)

FORBIDDEN_V4: Final[tuple[tuple[IPv4Network, str], ...]] = (
    (V4("0.0.0.0/8"), "unspecified"),  # RFC 1122 §3.2.1.3 "this network"; 0.0.0.0 = localhost
    (V4("10.0.0.0/8"), "private"),  # RFC 1918
    (V4("100.64.0.0/10"), "CGNAT shared"),  # RFC 6598
    (V4("127.0.0.0/8"), "loopback"),  # RFC 1122 §3.2.1.3
    (V4("169.254.0.0/16"), "link-local"),  # RFC 3927
    (V4("172.16.0.0/12"), "private"),  # RFC 1918
    (V4("192.0.0.0/24"), "IETF protocol assignments"),  # RFC 6890 §2.2.2 (DS-Lite, NAT64 discovery)
    (V4("192.0.2.0/24"), "documentation"),  # RFC 5737 TEST-NET-1
    (V4("192.88.99.0/24"), "6to4 relay anycast"),  # RFC 7526 (deprecated)
    (V4("192.168.0.0/16"), "private"),  # RFC 1918
    (V4("198.18.0.0/15"), "benchmarking"),  # RFC 2544
    (V4("198.51.100.0/24"), "documentation"),  # RFC 5737 TEST-NET-2
    (V4("203.0.113.0/24"), "documentation"),  # RFC 5737 TEST-NET-3
    (V4("224.0.0.0/4"), "multicast"),  # RFC 5771
    (V4("255.255.255.255/32"), "broadcast"),  # RFC 919 limited broadcast (before 240/4)
    (V4("240.0.0.0/4"), "reserved"),  # RFC 1112 §4 "class E"
)

FORBIDDEN_V6: Final[tuple[tuple[IPv6Network, str], ...]] = (
    (V6("::/128"), "unspecified"),  # RFC 4291 §2.5.2
    (V6("::1/128"), "loopback"),  # RFC 4291 §2.5.3
    (V6("64:ff9b:1::/48"), "local-use NAT64"),  # RFC 8215: site-local translation, never global
    (V6("100::/64"), "discard-only"),  # RFC 6666
    (V6("2001:2::/48"), "benchmarking"),  # RFC 5180
    (V6("2001:10::/28"), "ORCHID"),  # RFC 4843 (deprecated)
    (V6("2001:20::/28"), "ORCHIDv2"),  # RFC 7343: identifiers, not routable
    (V6("2001:db8::/32"), "documentation"),  # RFC 3849
    (V6("3fff::/20"), "documentation"),  # RFC 9637
    (V6("5f00::/16"), "SRv6 SIDs"),  # RFC 9602
    (V6("fc00::/7"), "unique-local"),  # RFC 4193
    (V6("fe80::/10"), "link-local"),  # RFC 4291 §2.5.6
    (V6("fec0::/10"), "site-local"),  # RFC 3879 (deprecated, still routed by some stacks)
    (V6("ff00::/8"), "multicast"),  # RFC 4291 §2.7
)

GLOBAL_UNICAST_V6: Final = V6("2000::/3")  # RFC 4291 §2.4 / IANA: all global unicast is here


def _last32(addr: IPv6Address) -> IPv4Address:
    return IPv4Address(int(addr) & 0xFFFFFFFF)


def _teredo_client(addr: IPv6Address) -> IPv4Address | None:
    return addr.teredo[1] if addr.teredo else None


def _teredo_server(addr: IPv6Address) -> IPv4Address | None:
    return addr.teredo[0] if addr.teredo else None


def _in(net: IPv6Network) -> Callable[[IPv6Address], IPv4Address | None]:
    return lambda addr: _last32(addr) if addr in net else None


# IPv6 forms that carry an IPv4 address: connecting to them reaches (or is translated to)
# that IPv4 address, so it gets the IPv4 rules. Checked after FORBIDDEN_V6 (:: and ::1).
EMBEDDED_V4: Final[Sequence[tuple[str, Callable[[IPv6Address], IPv4Address | None]]]] = (
    ("IPv4-mapped", lambda a: a.ipv4_mapped),  # RFC 4291 §2.5.5.2 ::ffff:a.b.c.d
    ("SIIT IPv4-translated", _in(V6("::ffff:0:0:0/96"))),  # RFC 2765 §2.1 ::ffff:0:a.b.c.d
    ("IPv4-compatible", _in(V6("::/96"))),  # RFC 4291 §2.5.5.1 ::a.b.c.d (deprecated)
    ("NAT64", _in(V6("64:ff9b::/96"))),  # RFC 6052 §2.1 well-known prefix
    ("6to4", lambda a: a.sixtofour),  # RFC 3056 §2: 2002:AABB:CCDD::/48
    ("Teredo", _teredo_client),  # RFC 4380 §4: client address, XOR-obfuscated
    ("Teredo server", _teredo_server),  # RFC 4380 §4: bits 32-63
)


def forbidden_reason(addr: IPv4Address | IPv6Address) -> str | None:
    """Why the proxy must not connect to ``addr``, or None if it is an ordinary public address."""
    if isinstance(addr, IPv4Address):
        return _v4_reason(addr)
    return _v6_reason(IPv6Address(int(addr)))  # drop any %scope: fe80::1%eth0 != fe80::1


def _v4_reason(addr: IPv4Address) -> str | None:
    if addr in METADATA:
        return "cloud metadata"
    reason = next((why for net, why in FORBIDDEN_V4 if addr in net), None)
    if reason is None and not addr.is_global:
        reason = "special-purpose (IANA registry)"  # backstop for ranges the table omits
    return reason


def _v6_reason(addr: IPv6Address) -> str | None:
    if addr in METADATA:
        return "cloud metadata"
    reason = next((why for net, why in FORBIDDEN_V6 if addr in net), None)
    if reason is not None:
        return reason
    found = [(form, v4) for form, extract in EMBEDDED_V4 if (v4 := extract(addr)) is not None]
    if found:
        return _embedded_reason(found)
    if addr not in GLOBAL_UNICAST_V6:
        return "reserved"  # RFC 4291 §2.4: unassigned outside 2000::/3
    return None if addr.is_global else "special-purpose (IANA registry)"


def _embedded_reason(found: list[tuple[str, IPv4Address]]) -> str | None:
    for form, v4 in found:
        inner = _v4_reason(v4)
        if inner is not None:
            return f"{form} of {v4}: {inner}"
    return None
