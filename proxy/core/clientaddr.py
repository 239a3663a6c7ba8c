"""Which address is the patron's: the socket peer, or X-Forwarded-For behind trusted proxies.

Contract: ``client_address(peer, forwarded_for, trusted)`` returns the client's IP address.
Without trusted proxies it is the socket peer, whatever the headers say. When the peer is a
trusted proxy, it is the right-most ``X-Forwarded-For`` entry that is not itself trusted
(entries to the left can be forged by the client).
Not here: what the address is used for (auto-login, throttling), logging (truncated there).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)  # ipaddress parsing is slow and peers repeat
def parse_ip(value: str) -> IPAddress | None:
    """An address, or None for junk; IPv4-mapped IPv6 is unwrapped."""
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_networks(addr: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """True when the address lies in any of the networks."""
    return any(addr.version == net.version and addr in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The patron's address, trusting X-Forwarded-For only from trusted proxies."""
    addr = parse_ip(peer) if peer else None
    if addr is None or not trusted or not in_networks(addr, trusted):
        return addr
    entries = [e for value in forwarded_for for e in value.split(",")]
    for entry in reversed(entries):
        hop = parse_ip(entry)
        if hop is None:
            return addr  # a malformed chain: fall back to the proxy's own address
        if not in_networks(hop, trusted):
            return hop
    return addr
