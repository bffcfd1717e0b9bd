"""Who is asking: the client's public IP (through trusted proxies only) and a clean User-Agent."""

from __future__ import annotations

import netaddr

from provisioning.devices.identify import clean_user_agent
from provisioning.phones.request import PhoneRequest


def client_ip(peer: str, forwarded_for: str | None, trusted: netaddr.IPSet) -> str:
    """The address of the first hop that is not a trusted proxy, reading X-Forwarded-For from the
    right. The header is believed only as far as trusted proxies vouch for it: anyone can send
    one."""
    current = peer
    if not forwarded_for or not _in(current, trusted):
        return current
    for hop in reversed(forwarded_for.split(",")):
        try:
            address = netaddr.IPAddress(hop.strip())
        except (netaddr.AddrFormatError, ValueError, TypeError):
            break
        current = str(address.ipv4() if address.is_ipv4_mapped() else address)
        if address not in trusted:
            break
    return current


def _in(address: str, networks: netaddr.IPSet) -> bool:
    try:
        return netaddr.IPAddress(address) in networks
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return False


def peer_address(request: PhoneRequest) -> str:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport else None
    if isinstance(peer, tuple) and peer:
        host = str(peer[0])
        return host.removeprefix("::ffff:")
    return "0.0.0.0"  # noqa: S104 -- a unix socket: no network peer


def user_agent(request: PhoneRequest) -> str:
    return clean_user_agent(request.headers.get("User-Agent", ""))
