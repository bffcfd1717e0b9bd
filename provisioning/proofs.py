"""The proofs grammar: what a phone must prove (`token`, `digest`, `certificate`, `any`, ...).

Below `provisioning.settings`, which checks `PROVISIONING_AUTH_PROOFS` with it, so it imports
nothing of the project's; `provisioning.phones.auth` re-exports it with the policy it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
