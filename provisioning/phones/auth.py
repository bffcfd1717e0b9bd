"""The authorisation step of the fetch pipeline: may this request have this device's files?

Kept small and replaceable: the fetch path gathers facts (`Evidence`: which proofs the request
gave, which MACs it states, where it comes from) and an `Authorizer` turns them into a
`Decision`. Verifying a proof (a digest answer, a certificate chain) happens before, in
`provisioning.phones.guard`; this module only weighs what was proven against the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

from provisioning.proofs import TOKEN_ONLY as TOKEN_ONLY
from provisioning.proofs import Policy as Policy

# The proofs grammar lives below settings (which checks PROVISIONING_AUTH_PROOFS with it); it is
# re-exported here, with the policy it serves.
from provisioning.proofs import PolicyError as PolicyError
from provisioning.proofs import Proof as Proof
from provisioning.proofs import Proofs as Proofs
from provisioning.proofs import parse_proofs as parse_proofs

if TYPE_CHECKING:
    from provisioning.settings import Settings


class Decision(Enum):
    ALLOW = "allow"
    # A digest answer would complete the proofs: 401 with a challenge.
    CHALLENGE = "challenge"
    # Missing or contradicting proofs: the one empty 404 unknown devices get.
    REFUSE = "refuse"
    # Proofs fine, but the device is bound to another address or network: 404, reported.
    ELSEWHERE = "elsewhere"
    # Proofs fine, but the device was never seen within its first-contact window: 404, reported.
    EXPIRED = "expired"


class Evidence(NamedTuple):
    """What the request proved about the device it asks for (a named tuple: made for every
    fetch, several times cheaper than a frozen dataclass)."""

    device_mac: str
    by_token: bool  # the device was found by its URL token
    path_mac: str | None  # MAC in the requested file name
    ua_mac: str | None  # MAC in the User-Agent
    by_digest: bool = False  # a verified, unreplayed digest answer for this device
    # MAC carried by a verified client certificate, and whether that certificate's CA vouches
    # for this device's family (a Yealink CA says nothing about a Polycom phone).
    cert_mac: str | None = None
    cert_vendor_ok: bool = True
    policy: Policy = Policy()  # frozen: one instance shared is fine
    bound_elsewhere: bool = False
    window_closed: bool = False
    # The request came through a listener that takes a MAC as the proof (TFTP, whose clients
    # carry no token and answer no challenge): guard.Claim.mac_only, never set over HTTP.
    mac_only: bool = False

    @property
    def proofs(self) -> frozenset[Proof]:
        given = set()
        if self.by_token:
            given.add(Proof.TOKEN)
        if self.by_digest:
            given.add(Proof.DIGEST)
        if self.cert_mac is not None and self.cert_vendor_ok:
            given.add(Proof.CERTIFICATE)
        return frozenset(given)


Authorizer = Callable[[Evidence], Decision]


def default_authorizer(settings: Settings) -> Authorizer:
    def authorize(evidence: Evidence) -> Decision:
        # Every MAC the request states must be this device's: a valid token never unlocks
        # another phone's file, a certificate for MAC A never opens MAC B's, and a phone
        # claiming another MAC is not trusted.
        for stated in (evidence.path_mac, evidence.ua_mac, evidence.cert_mac):
            if stated is not None and stated != evidence.device_mac:
                return Decision.REFUSE
        if not evidence.cert_vendor_ok:
            return Decision.REFUSE
        given = evidence.proofs
        required = evidence.policy.proofs
        # A MAC is enough: in a lab (ALLOW_MAC_ONLY, every request), or on a listener that
        # allows it (`mac_only`, that request only). Read last: the hot path rarely needs it.
        if not (settings.allow_mac_only or required.satisfied_by(given) or evidence.mac_only):
            if Proof.DIGEST not in given and required.satisfied_by(given | {Proof.DIGEST}):
                return Decision.CHALLENGE
            return Decision.REFUSE
        if evidence.window_closed:
            return Decision.EXPIRED
        if evidence.bound_elsewhere:
            return Decision.ELSEWHERE
        return Decision.ALLOW

    return authorize
