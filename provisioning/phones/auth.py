"""The authorisation step of the fetch pipeline: may this request have this device's files?

Kept small and replaceable: the fetch path gathers facts (`Evidence`: which proofs the request
gave, which MACs it states, where it comes from) and an `Authorizer` turns them into a
`Decision`. Verifying a proof (a digest answer, a certificate chain) happens before, in
`provisioning.security.guard`; this module only weighs what was proven against the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from provisioning.settings import Settings


class Proof(StrEnum):
    TOKEN = "token"  # noqa: S105 -- the device's URL token (current, or the previous one during an overlap)
    DIGEST = "digest"  # an HTTP digest answer with the device's password, nonce fresh and unused
    CERTIFICATE = "certificate"  # a factory (or lab) client certificate carrying the device's MAC


class PolicyError(ValueError):
    """A proofs expression that means nothing."""


@dataclass(frozen=True)
class Proofs:
    """Proofs a policy requires: all of `required`, and at least `at_least` in total."""

    required: frozenset[Proof]
    at_least: int = 1

    def satisfied_by(self, given: frozenset[Proof]) -> bool:
        return self.required <= given and len(given) >= self.at_least

    def __str__(self) -> str:
        if self.required:
            return "+".join(p.value for p in Proof if p in self.required)
        return "any" if self.at_least == 1 else "any-two"


def parse_proofs(text: str) -> Proofs:
    """`token`, `digest`, `certificate`, several joined by `+` (all required), `any` (one of
    them) or `any-two` (two different ones)."""
    value = text.strip().lower()
    if value == "any":
        return Proofs(frozenset(), 1)
    if value == "any-two":
        return Proofs(frozenset(), 2)
    names = [part.strip() for part in value.split("+")]
    try:
        required = frozenset(Proof(name) for name in names)
    except ValueError:
        raise PolicyError(
            "expected token, digest, certificate (joined with +), any or any-two"
        ) from None
    if len(required) != len(names):
        raise PolicyError("a proof is named twice")
    return Proofs(required, len(required))


TOKEN_ONLY = Proofs(frozenset({Proof.TOKEN}))


@dataclass(frozen=True)
class Policy:
    """What one device must prove, and where it may fetch from (its account's policy, or the
    global default from settings)."""

    proofs: Proofs = TOKEN_ONLY
    binding: str = "off"  # off | address | network: bound where it first fetched from
    first_contact_days: int | None = None  # unseen this long after shipping: re-authorise


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
        if not (settings.allow_mac_only or required.satisfied_by(given)):
            if Proof.DIGEST not in given and required.satisfied_by(given | {Proof.DIGEST}):
                return Decision.CHALLENGE
            return Decision.REFUSE
        if evidence.window_closed:
            return Decision.EXPIRED
        if evidence.bound_elsewhere:
            return Decision.ELSEWHERE
        return Decision.ALLOW

    return authorize
