"""Locating external programs and free loopback ports for the real-peer tests."""

from __future__ import annotations

import os
import random
import shutil
import socket
from typing import Literal

import pytest

# Which Debian package ships each binary, so a skip message says what to install.
DEBIAN_PACKAGES: dict[str, str] = {
    "kamailio": "kamailio",
    "linphone-daemon": "linphone-cli",
    "linphonec": "linphone-cli",
    "sipp": "sip-tester",
    "baresip": "baresip-core",
    "nginx": "nginx",
    "kea-dhcp4": "kea-dhcp4-server",
    "dnsmasq": "dnsmasq-base",
    "systemd-analyze": "systemd",
    "chromium": "chromium",
}

# kamailio lives in /usr/sbin, which is not on PATH for every user or CI environment.
_EXTRA_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

# Ports handed out by this process: two instances started back to back must not get the
# same port while the first has not bound it yet.
_handed_out: set[int] = set()


def find_binary(name: str) -> str | None:
    """Return the path of executable ``name`` or None, looking also in the sbin folders."""
    found = shutil.which(name)
    if found is not None:
        return found
    return shutil.which(name, path=os.pathsep.join(_EXTRA_DIRS))


def require_binary(name: str) -> str:
    """Return the path of ``name``; skip the test locally, fail it in CI, when it is missing."""
    found = find_binary(name)
    if found is not None:
        return found
    package = DEBIAN_PACKAGES.get(name, name)
    hint = f"apt-get install -y --no-install-recommends {package}"
    if os.environ.get("CI") == "true":
        # A silent skip in CI would let the lab tests stop running without anyone noticing.
        pytest.fail(
            f"{name!r} is required in CI but was not found on PATH; "
            f"install Debian package {package!r} ({hint})",
            pytrace=False,
        )
    pytest.skip(f"{name!r} not found; install Debian package {package!r} ({hint})")


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int, sock_type: int) -> bool:
    with socket.socket(socket.AF_INET, sock_type) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kind: Literal["udp", "tcp"] = "udp") -> int:
    """Return a port on 127.0.0.1 that is free for both UDP and TCP.

    ``kind`` names the transport the caller mainly needs; it is checked first. Both are
    always checked because SIP listeners bind the same number for UDP and TCP.

    Ports come from below the kernel's ephemeral range: a port picked inside it could be
    taken by some outgoing socket (linphone, a test client) before the server binds it.
    """
    order = (
        (socket.SOCK_DGRAM, socket.SOCK_STREAM)
        if kind == "udp"
        else (socket.SOCK_STREAM, socket.SOCK_DGRAM)
    )
    high = min(_ephemeral_low(), 32768)
    low = max(1024, high - 12000)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port in _handed_out:
            continue
        if all(_bindable(port, t) for t in order):
            _handed_out.add(port)
            return port
    # Crowded range: fall back to a kernel-chosen port, still checked for the other protocol.
    for _ in range(50):
        with socket.socket(socket.AF_INET, order[0]) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out and _bindable(port, order[1]):
            _handed_out.add(port)
            return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")
