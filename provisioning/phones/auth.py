"""The authorisation step of the fetch pipeline: may this request have this device's files?

Kept small and replaceable: stronger proofs (digest, factory certificates, bans) plug in here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from provisioning.settings import Settings


@dataclass(frozen=True)
class Evidence:
    """What the request proved about the device it asks for."""

    device_mac: str
    by_token: bool  # the device was found by its URL token
    path_mac: str | None  # MAC in the requested file name
    ua_mac: str | None  # MAC in the User-Agent


Authorizer = Callable[[Evidence], bool]


def default_authorizer(settings: Settings) -> Authorizer:
    def authorize(evidence: Evidence) -> bool:
        # Every MAC the request states must be this device's: a valid token never unlocks
        # another phone's file, and a phone claiming another MAC is not trusted.
        for stated in (evidence.path_mac, evidence.ua_mac):
            if stated is not None and stated != evidence.device_mac:
                return False
        return evidence.by_token or settings.allow_mac_only

    return authorize
