"""Factory certificates: which CA vouches for a phone's client certificate, and the MAC the
certificate carries, read from the place that CA's vendor puts it.

Where a vendor puts the MAC is data, in the family's `family.toml`:

    [certificate]
    mac_in = ["subject:CN"]     # places, tried in order; every MAC found must be the same

Places: `subject:CN`, `subject:ST`, `subject:L`, `subject:OU`, `subject:serialNumber`,
`san:dns`; the value must be a MAC in a notation `devices.mac` accepts. Certificates made by
`provisioning certs device` (the `lab` CA) carry the MAC in `subject:CN` and in a `san:dns`
entry, whatever the family.

CA bundles come from settings (`PROVISIONING_CLIENT_CAS=polycom=/etc/ca/polycom.pem,...`): a
bundle named after a family vouches for that family's phones only; `lab` for every family.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID

from provisioning.devices.catalog import Catalog
from provisioning.devices.mac import try_mac

LAB = "lab"
LAB_PLACES: tuple[str, ...] = ("subject:CN", "san:dns")
SUBJECT = {
    "subject:CN": NameOID.COMMON_NAME,
    "subject:ST": NameOID.STATE_OR_PROVINCE_NAME,
    "subject:L": NameOID.LOCALITY_NAME,
    "subject:OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "subject:serialNumber": NameOID.SERIAL_NUMBER,
}
SAN = {"san:dns": x509.DNSName}
PLACES = (*SUBJECT, *SAN)


class FactoryError(ValueError):
    """A CA bundle or a family's [certificate] table is unusable; the message says which."""


@dataclass(frozen=True)
class Authority:
    name: str  # a family name, or "lab"
    families: frozenset[str] | None  # None: vouches for every family
    places: tuple[str, ...]
    certificates: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class CertIdentity:
    mac: str
    authority: str
    families: frozenset[str] | None

    def vouches_for(self, family: str) -> bool:
        return self.families is None or family in self.families


def certificate_places(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """Each family's `[certificate] mac_in`, read from its family.toml."""
    places: dict[str, tuple[str, ...]] = {}
    for family in catalog:
        toml_path = family.path / "family.toml"
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        table = data.get("certificate")
        if table is None:
            continue
        mac_in = table.get("mac_in") if isinstance(table, dict) else None
        if not isinstance(mac_in, list) or not mac_in or any(p not in PLACES for p in mac_in):
            raise FactoryError(
                f"{toml_path}: certificate.mac_in must list places among {', '.join(PLACES)}"
            )
        places[family.name] = tuple(mac_in)
    return places


def _read_bundle(name: str, path: Path) -> tuple[x509.Certificate, ...]:
    try:
        certificates = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError):
        raise FactoryError(f"{name}={path}: not a readable PEM certificate bundle") from None
    return certificates


class FactoryCertificates:
    """The configured authorities, and the identity a client certificate proves."""

    def __init__(self, authorities: tuple[Authority, ...]) -> None:
        self.authorities = authorities
        # Phones present the same certificate on every connection: parse and check it once.
        self._identify: Callable[[bytes], tuple[CertIdentity, datetime, datetime] | None] = (
            lru_cache(maxsize=4096)(self._identify_uncached)
        )

    @classmethod
    def load(cls, bundles: tuple[tuple[str, Path], ...], catalog: Catalog) -> FactoryCertificates:
        places = certificate_places(catalog)
        authorities = []
        for name, path in bundles:
            if name == LAB:
                families, where = None, LAB_PLACES
            elif name in places:
                families, where = frozenset({name}), places[name]
            elif name in catalog.families:
                raise FactoryError(f"{name}: family.toml has no [certificate] table")
            else:
                raise FactoryError(f"{name}: not a family of the catalog, nor {LAB}")
            authorities.append(Authority(name, families, where, _read_bundle(name, path)))
        return cls(tuple(authorities))

    def identify_der(self, der: bytes, *, now: datetime | None = None) -> CertIdentity | None:
        found = self._identify(der)
        if found is None:
            return None
        identity, not_before, not_after = found
        now = now or datetime.now(UTC)
        return identity if not_before <= now <= not_after else None

    def identify_pem(self, pem: str, *, now: datetime | None = None) -> CertIdentity | None:
        if len(pem) > 16_384 or "-----BEGIN CERTIFICATE-----" not in pem:
            return None
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        return self.identify_der(certificate.public_bytes(Encoding.DER), now=now)

    def _identify_uncached(self, der: bytes) -> tuple[CertIdentity, datetime, datetime] | None:
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        authority = self._issuer(certificate)
        if authority is None:
            return None
        mac = mac_in(certificate, authority.places)
        if mac is None:
            return None
        identity = CertIdentity(mac=mac, authority=authority.name, families=authority.families)
        return identity, certificate.not_valid_before_utc, certificate.not_valid_after_utc

    def _issuer(self, certificate: x509.Certificate) -> Authority | None:
        """The authority whose bundle holds the certificate's direct issuer (checked by
        signature): with TLS terminated here OpenSSL has already checked the whole chain, and
        this names the vendor; behind a proxy it is our own check of what the proxy says."""
        for authority in self.authorities:
            for ca in authority.certificates:
                if ca.subject != certificate.issuer:
                    continue
                try:
                    certificate.verify_directly_issued_by(ca)
                except (InvalidSignature, ValueError, TypeError):
                    continue
                return authority
        return None


def mac_in(certificate: x509.Certificate, places: tuple[str, ...]) -> str | None:
    """The one MAC found in the given places of the certificate; None if none, or if two
    places disagree (a certificate naming two devices proves neither)."""
    found: set[str] = set()
    for place in places:
        for value in _values(certificate, place):
            mac = try_mac(value)
            if mac is not None:
                found.add(mac)
    return found.pop() if len(found) == 1 else None


def _values(certificate: x509.Certificate, place: str) -> list[str]:
    if place in SUBJECT:
        return [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(SUBJECT[place])
        ]
    try:
        extension = certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        )
    except x509.ExtensionNotFound:
        return []
    assert isinstance(extension.value, x509.SubjectAlternativeName)
    return [str(v) for v in extension.value.get_values_for_type(SAN[place])]
