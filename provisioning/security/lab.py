"""`provisioning certs`: a lab CA, a server certificate and per-device client certificates, so a
lab can run everything in TLS (mutual TLS included) without a vendor's CA.

Keys are ECDSA P-256; private keys are written 0600 and nothing is ever overwritten.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning.devices.mac import normalize_mac
from provisioning.security.factory import LAB_PLACES, SUBJECT

ORGANISATION = "Plug & Phone lab"
CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


class LabError(ValueError):
    """A file exists already, or the CA folder is incomplete; the message says which."""


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise LabError(f"{path} exists: nothing is overwritten") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def create_ca(folder: Path, *, name: str = "Plug & Phone lab CA", days: int = 3650) -> Issued:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    certificate = (
        _builder(subject, subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    issued = Issued(folder / "ca.pem", folder / "ca.key")
    _write(issued.key, _key_pem(key), 0o600)
    _write(issued.certificate, _cert_pem(certificate), 0o644)
    return issued


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        certificate = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    except (OSError, ValueError):
        raise LabError(f"{folder}: no lab CA here (ca.pem and ca.key; see `certs ca`)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise LabError(f"{folder}/ca.key: not a key made by `provisioning certs ca`")
    return certificate, key


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def create_server(ca_folder: Path, folder: Path, hosts: list[str], *, days: int = 825) -> Issued:
    """A server certificate for `hosts` (names or IP addresses); `server.pem` holds the chain."""
    if not hosts:
        raise LabError("name at least one host (--host)")
    ca, ca_key = _load_ca(ca_folder)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
        ]
    )
    certificate, key = _leaf(ca, ca_key, subject, names, ExtendedKeyUsageOID.SERVER_AUTH, days)
    folder.mkdir(parents=True, exist_ok=True)
    issued = Issued(folder / "server.pem", folder / "server.key")
    _write(issued.key, _key_pem(key), 0o600)
    _write(issued.certificate, _cert_pem(certificate) + _cert_pem(ca), 0o644)
    return issued


def create_device(
    ca_folder: Path,
    folder: Path,
    mac: str,
    *,
    places: tuple[str, ...] = LAB_PLACES,
    days: int = 825,
) -> Issued:
    """A client certificate carrying `mac` in `places` (a family's shape, or the lab's)."""
    mac = normalize_mac(mac)
    ca, ca_key = _load_ca(ca_folder)
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION)]
    if "subject:CN" not in places:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, f"lab device {mac}"))
    for place in places:
        if place in SUBJECT:
            attributes.append(x509.NameAttribute(SUBJECT[place], mac))
    names: list[x509.GeneralName] = [x509.DNSName(mac)] if "san:dns" in places else []
    certificate, key = _leaf(
        ca, ca_key, x509.Name(attributes), names, ExtendedKeyUsageOID.CLIENT_AUTH, days
    )
    folder.mkdir(parents=True, exist_ok=True)
    issued = Issued(folder / f"{mac}.pem", folder / f"{mac}.key")
    _write(issued.key, _key_pem(key), 0o600)
    _write(issued.certificate, _cert_pem(certificate), 0o644)
    return issued
