"""Where a request comes from, as the keys scanner defence and first-contact binding use: the
address itself, and its network (/24 for IPv4, /64 for IPv6 — what one site or one customer line
usually holds)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

NETWORK_PREFIX = {4: 24, 6: 64}


@dataclass(frozen=True)
class Source:
    address: str  # canonical text of the address
    network: str  # the address's network in CIDR notation

    def key(self, kind: str) -> str:
        return self.network if kind == "network" else self.address


@lru_cache(maxsize=65_536)
def source_of(address: str) -> Source | None:
    """The source keys of an address; None for something that is not an IP address (a unix
    socket peer), which is then never counted nor banned."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    network = ipaddress.ip_network(f"{ip}/{NETWORK_PREFIX[ip.version]}", strict=False)
    return Source(address=str(ip), network=str(network))


def parse_source(text: str) -> str | None:
    """An operator's spelling of a banned source (address or CIDR network), canonical, or None."""
    candidate = text.strip()
    if not 1 <= len(candidate) <= 64:
        return None
    try:
        if "/" in candidate:
            return str(ipaddress.ip_network(candidate, strict=False))
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
