"""The client's address: the socket peer, or what trusted proxies say in X-Forwarded-For.

Only a peer inside `gateway.trusted_proxies` may speak for the client. The header is read right
to left (each proxy appends the address it saw), skipping hops that are themselves
trusted; the first untrusted hop is the client. Entries left of it were written by the
client and are never read, so a client cannot choose its own recorded address or break
attribution with garbage there. A hop that must be read but is not an address means a
misconfigured proxy: the header is ignored and the socket address is used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["IPNetwork", "client_address", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAX_HOPS = 32  # a longer trusted chain is not a deployment, it is a loop or an attack


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) -> networks; ValueError names the bad entry."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"'{cidr}' is not an IP network such as 10.0.0.0/8") from None
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    """One X-Forwarded-For entry; proxies may add a port (`1.2.3.4:80`, `[::1]:80`)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has at least two colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: bytes | None, trusted: Sequence[IPNetwork]
) -> str | None:
    """The address to record for a request from `peer` carrying `forwarded_for`."""
    if not trusted or not forwarded_for or peer is None:
        return peer
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer  # an untrusted peer's header is the client's own claim: ignore it
    try:
        hops = forwarded_for.decode("ascii").split(",")
    except UnicodeDecodeError:
        return peer
    if len(hops) > _MAX_HOPS:
        hops = hops[-_MAX_HOPS:]
    origin = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return peer
        origin = str(address)
        if not _trusted(address, trusted):
            return origin
    return origin  # every hop is a trusted proxy: the leftmost is the origin
