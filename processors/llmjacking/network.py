"""Client networks: the /24 of an IPv4 address, the /48 of an IPv6 address. Pure.

A network, not the address, is what a key "knows": the same office or cloud region
changes addresses within its block, while a reselling proxy or a new attacker host
shows up as a block the key never used.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = ["network_of"]


@lru_cache(maxsize=65_536)  # client addresses repeat; parsing one costs ~40 us
def network_of(client_ip: str | None) -> str | None:
    """`203.0.113.0/24` for 203.0.113.7, `2001:db8:1::/48` for IPv6; None if unparseable."""
    if not client_ip:
        return None
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:a.b.c.d is an IPv4 client
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
