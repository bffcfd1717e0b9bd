"""Helpers of the security tests: a real server on loopback (plain or TLS), clients bound to a
chosen source address (all of 127.0.0.0/8 is local on Linux, so an "attacker" and a "phone" can
come from different addresses and networks), digest answers computed as a phone computes them,
and certificates in each vendor's shape."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning.app import create_app
from provisioning.phones.guard import Guard
from provisioning.settings import Settings
from provisioning.state import SERVICES, Services

PHONE_ADDRESS = "127.0.0.1"
ATTACKER_ADDRESS = "127.0.1.2"  # another /24: a ban of its network must not touch the phone


@dataclass
class Server:
    app: web.Application
    port: int
    scheme: str

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def guard(self) -> Guard:
        return self.services.guard


@asynccontextmanager
async def running(
    settings: Settings, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    """The real app behind a real listening socket (TLS when a context is given)."""
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(app, port, "https" if ssl_context else "http")
    finally:
        await runner.cleanup()


def client_from(
    address: str, *, ssl_context: ssl.SSLContext | None = None, limit: int = 20
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=limit, ssl=ssl_context or False)
    return aiohttp.ClientSession(connector=connector)


# -- digest as a phone computes it (RFC 7616) -------------------------------------------------


def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    fields = {}
    for part in rest.split(", "):
        name, _, raw = part.partition("=")
        fields[name] = raw.strip('"')
    return fields


def digest_header(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    uri: str,
    algorithm: str = "MD5",
    nc: int = 1,
    cnonce: str = "0a4f113b",
    method: str = "GET",
) -> str:
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm.removesuffix("-sess")]

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hx(f"{username}:{realm}:{password}")
    if algorithm.endswith("-sess"):
        ha1 = hx(f"{ha1}:{nonce}:{cnonce}")
    ha2 = hx(f"{method}:{uri}")
    count = f"{nc:08x}"
    response = hx(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'algorithm={algorithm}, qop=auth, nc={count}, cnonce="{cnonce}", response="{response}"'
    )


# -- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    certificate: Path
    key: Path


def _write_pair(
    folder: Path,
    name: str,
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    chain: bytes = b"",
) -> Pem:
    pem = Pem(folder / f"{name}.pem", folder / f"{name}.key")
    pem.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + chain)
    pem.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem


@dataclass
class VendorCA:
    """A CA of the tests' own (standing for a vendor's factory CA)."""

    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: Path

    @classmethod
    def create(cls, folder: Path, name: str) -> VendorCA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Device Root CA"),
            ]
        )
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        pem = folder / f"{name.lower()}-ca.pem"
        pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(name, certificate, key, pem)

    def issue(
        self,
        folder: Path,
        file_name: str,
        subject: list[x509.NameAttribute],
        *,
        dns: list[str] | None = None,
        days: int = 365,
        not_before: datetime | None = None,
    ) -> Pem:
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.now(UTC) - timedelta(days=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )  # fmt: skip
        if dns:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
            )
        return _write_pair(folder, file_name, builder.sign(self.key, hashes.SHA256()), key)


def vendor_certificate(ca: VendorCA, folder: Path, vendor: str, mac: str) -> Pem:
    """A client certificate in the shape `vendor` ships (see each family.toml's [certificate]
    comment for which part is from the reference and which is assumed):

    - Polycom: subject CN = the MAC, 12 lowercase hex digits (reference: unique per MAC, signed by
      the Polycom CA; the CN is our assumption);
    - Yealink: subject CN = the MAC (reference: MAC-based, issued by the Yealink CA; CN assumed);
      written with colons here, to show that any MAC notation is read;
    - Snom: the MAC in a subjectAltName DNS entry, upper case, CN = a model name (assumption:
      the reference leaves Snom's certificate layout unconfirmed);
    - Cisco (MPP): `OU=CP-8841-3PCC, L=<serial>, ST=<mac>` (from Cisco's MPP provisioning guide,
      not from the reference).
    """
    o = x509.NameAttribute
    colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    if vendor == "polycom":
        return ca.issue(
            folder,
            f"polycom-{mac}",
            [o(NameOID.ORGANIZATION_NAME, "Polycom Inc."), o(NameOID.COMMON_NAME, mac)],
        )
    if vendor == "yealink":
        return ca.issue(
            folder,
            f"yealink-{mac}",
            [o(NameOID.ORGANIZATION_NAME, "Yealink"), o(NameOID.COMMON_NAME, colon)],
        )
    if vendor == "snom":
        return ca.issue(
            folder,
            f"snom-{mac}",
            [o(NameOID.ORGANIZATION_NAME, "Snom"), o(NameOID.COMMON_NAME, "snomD785")],
            dns=[mac.upper()],
        )
    if vendor == "cisco":
        return ca.issue(
            folder, f"cisco-{mac}",
            [o(NameOID.ORGANIZATIONAL_UNIT_NAME, "CP-8841-3PCC"), o(NameOID.LOCALITY_NAME, "88012BA01234"), o(NameOID.STATE_OR_PROVINCE_NAME, mac)],
        )  # fmt: skip
    raise ValueError(vendor)


def client_context(
    trust: Path, pem: Pem | None = None, *, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(trust))
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
    if pem is not None:
        context.load_cert_chain(pem.certificate, pem.key)
    return context
