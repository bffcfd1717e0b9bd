"""Where SIP goes: a registrar's or a proxy's host, port and transport, read from the forms
operators write, for a setting (`DEFAULT_REGISTRAR`, `PUSH_PROXY`) and for a line alike.

Below both the settings and the domain: it imports nothing of the project's, so the settings
layer (the bottom of the house) and `accounts.create_line` share one reading of `tcp:pbx:5070`,
`sip:pbx;transport=tls` or `[2001:db8::1]:5060`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

TRANSPORTS = ("udp", "tcp", "tls")
FORMS = (
    "HOST, HOST:PORT, [IPv6] or [IPv6]:PORT, each optionally after udp:, tcp: or tls:, "
    "or sip:HOST[:PORT][;transport=udp|tcp|tls]"
)
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class SipAddressError(ValueError):
    """What is wrong with the text, the forms understood, and the text (cut to 100 characters);
    the caller puts the key or the field in front."""


def is_hostname(text: str) -> bool:
    labels = text.split(".")
    # An all-digit last label is a mistyped IPv4 address (`10.0.0.256`), not a name.
    return (
        len(text) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not (labels[-1].isascii() and labels[-1].isdigit())
    )


def is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return "%" not in text  # a zone index means nothing to a remote registrar


def is_ip(text: str) -> bool:
    return is_ipv4(text) or is_ipv6(text)


@dataclass(frozen=True)
class SipAddress:
    """A host name or IP address (IPv6 without brackets, in its one compressed spelling, so
    that one registrar is one value in the lines' unique key), a port, and the transport the
    text named (`tcp:pbx`, `sip:pbx;transport=tcp`), or None when it named none.

    `str()` is `host:port` (`[v6]:port`), what lines and logs show."""

    host: str
    port: int = 5060
    transport: str | None = None
    # False when the text named no port: a transport chosen later (a line's `--transport tls`)
    # still picks its own default port (5061 for tls).
    port_named: bool = field(default=True, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.uri_host}:{self.port}"

    @property
    def uri_host(self) -> str:
        """The host as a URI or `host:port` writes it: an IPv6 address in brackets."""
        return f"[{self.host}]" if ":" in self.host else self.host


def default_port(transport: str | None) -> int:
    """SIP's own (RFC 3261): 5061 over TLS, 5060 otherwise."""
    return 5061 if transport == "tls" else 5060


def parse_sip_address(raw: str, transports: tuple[str, ...] = TRANSPORTS) -> SipAddress:
    """The forms operators write (FORMS), or SipAddressError: a scheme or transport prefix is
    never mistaken for a host (`udp:10.0.0.1` is udp to 10.0.0.1, not host `udp` with a bad
    port). `transports`: the ones the caller can use; another one named is refused. Without a
    port, 5061 for tls and 5060 otherwise."""
    text = raw.strip()

    def refuse(why: str) -> SipAddressError:
        return SipAddressError(f"{why}; expected {FORMS}, got {raw[:100]!r}")

    if not text:
        raise refuse("empty")
    if any(c.isspace() for c in text):
        raise refuse("no spaces")
    transport: str | None = None
    prefix, sep, rest = text.partition(":")
    if sep and prefix.lower() == "sip":
        text, _, params = rest.partition(";")
        if params:
            name, equals, value = params.partition("=")
            if name.lower() != "transport" or not equals:
                raise refuse(f"unknown URI parameter {params[:40]!r}")
            transport = value.lower()
            if transport not in TRANSPORTS:
                raise refuse(f"unknown transport {value[:20]!r}")
    elif sep and prefix.lower() in TRANSPORTS:
        transport, text = prefix.lower(), rest
    if transport is not None and transport not in transports:
        raise refuse(f"transport {transport} is not supported here ({', '.join(transports)})")
    host, port = _split(text, refuse)
    if port is None:
        return SipAddress(host, default_port(transport), transport, port_named=False)
    if port and not (port.isascii() and port.isdigit()):
        # `sips:pbx`, `udp:sip:pbx`: a word before the colon that is no prefix understood.
        raise refuse(f"{port[:20]!r} is not a port, nor {host[:20]!r} a known prefix")
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise refuse(f"the port must be a number from 1 to 65535, not {port[:20]!r}")
    return SipAddress(host, int(port), transport)


def _split(text: str, refuse: Callable[[str], SipAddressError]) -> tuple[str, str | None]:
    """HOST[:PORT] or [IPv6][:PORT] -> (host, port text or None)."""
    if text.startswith("["):
        inside, bracket, after = text[1:].partition("]")
        if not bracket or not is_ipv6(inside):
            raise refuse("an IPv6 address in brackets, such as [2001:db8::1]")
        if after and not after.startswith(":"):
            raise refuse("expected :PORT after the ]")
        return str(ipaddress.IPv6Address(inside)), after[1:] if after else None
    if text.count(":") > 1:
        if is_ipv6(text):
            raise refuse("an IPv6 address goes in brackets, such as [2001:db8::1]:5060")
        scheme = text.partition(":")[0]
        if _SCHEME.fullmatch(scheme):
            raise refuse(f"unknown scheme or transport {scheme[:20]!r}")
        raise refuse("one colon at most, before the port")
    host, sep, port = text.partition(":")
    if not host:
        raise refuse("the host is empty")
    if not (is_hostname(host) or is_ipv4(host)):
        raise refuse(f"{host[:60]!r} is neither a host name nor an IPv4 address")
    return host, port if sep else None
