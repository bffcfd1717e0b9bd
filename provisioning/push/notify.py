"""The check-sync NOTIFY: to whom, by which route, and what came back."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from provisioning.sip.message import Message, new_branch, new_call_id, new_tag
from provisioning.sip.transport import SipEndpoint, request_with_auth, tcp_request

USER_AGENT = "plug-and-phone-provisioning"


@dataclass(frozen=True)
class Target:
    """Where one device's NOTIFY goes and the line credentials that answer a challenge."""

    request_uri: str
    to_uri: str
    host: str
    port: int
    transport: str
    event: str
    username: str
    password: str


def build_notify(target: Target, local: tuple[str, int], transport: str) -> Message:
    host, port = local
    via_transport = "TCP" if transport == "tcp" else "UDP"
    return Message(
        f"NOTIFY {target.request_uri} SIP/2.0",
        [
            ("Via", f"SIP/2.0/{via_transport} {host}:{port};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:provisioning@{host}>;tag={new_tag()}"),
            ("To", f"<{target.to_uri}>"),
            ("Call-ID", new_call_id(host)),
            ("CSeq", "1 NOTIFY"),
            ("Contact", f"<sip:provisioning@{host}:{port}>"),
            ("Event", target.event),
            # An out-of-dialog NOTIFY: there is no subscription to keep alive.
            ("Subscription-State", "terminated"),
            ("User-Agent", USER_AGENT),
        ],
    )


def outcome(response: Message | None) -> str:
    """`200`, `481`, ... or `timeout`: stored as the push's last result."""
    return "timeout" if response is None else str(response.status)


async def send_notify(endpoint: SipEndpoint, target: Target) -> str:
    # Resolve without blocking the loop (a UDP sendto with a host name would).
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            target.host, target.port, family=socket.AF_INET, type=socket.SOCK_DGRAM
        )
    except OSError:
        return "unresolved"
    address = (str(infos[0][4][0]), int(infos[0][4][1]))
    if target.transport == "tcp":
        # A TCP connection has its own address: the Via names the endpoint's host only.
        message = build_notify(target, endpoint.address, "tcp")
        limit = endpoint.timers.timer_f

        async def send(m: Message) -> Message | None:
            return await tcp_request(m, address, limit)

    else:
        message = build_notify(target, endpoint.address, "udp")

        async def send(m: Message) -> Message | None:
            return await endpoint.request(m, address)

    response = await request_with_auth(send, message, target.username, target.password)
    return outcome(response)
