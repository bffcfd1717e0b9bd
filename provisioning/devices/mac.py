"""MAC addresses in any notation, normalised to 12 lowercase hex digits (how they are stored)."""

from __future__ import annotations

import re
from functools import lru_cache

# Phones and operators write MACs with two-digit groups (or Cisco's dotted form); anything looser,
# such as "1:2:3:4:5:6", is more likely a typo than a MAC.
_SHAPES = re.compile(
    r"[0-9a-f]{12}"
    r"|[0-9a-f]{2}([:_-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}"
    r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}",
    re.IGNORECASE,
)


_SEPARATORS = str.maketrans("", "", ":-._")


class InvalidMac(ValueError):
    """Not a MAC address in any notation we accept."""


def normalize_mac(text: str) -> str:
    """`00:15:65:4A:A9:37`, `00-15-65-4a-a9-37`, `0015.654a.a937`, `00_15_65_4a_a9_37`
    (Zenitel's file names) -> `0015654aa937`."""
    candidate = text.strip()
    if not _SHAPES.fullmatch(candidate):
        raise InvalidMac(f"not a MAC address: {candidate[:40]!r}")
    # The shapes admit exactly 12 hex digits and their separators: dropping the separators is
    # the whole conversion (this runs on every phone fetch; netaddr took ten times as long).
    mac = candidate.translate(_SEPARATORS).lower()
    if mac in {"000000000000", "ffffffffffff"}:
        raise InvalidMac(f"not a device MAC address: {candidate[:40]!r}")
    return mac


@lru_cache(maxsize=65_536)
def try_mac(text: str | None) -> str | None:
    # Cached: a fetch reads the same MAC from its file name for several families and from its
    # User-Agent.
    if not text:
        return None
    try:
        return normalize_mac(text)
    except InvalidMac:
        return None


def colon_mac(mac: str) -> str:
    """`0015654aa937` -> `00:15:65:4a:a9:37`."""
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))
