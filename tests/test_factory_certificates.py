"""Factory certificates (mutual TLS): real handshakes on loopback with client certificates the
tests make in each vendor's shape (see `security_kit.vendor_certificate` for which facts come
from the reference and which are assumed), signed by one test CA per vendor; then the same
behind a TLS-terminating proxy, as headers and through a real nginx running deploy/nginx/."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import netaddr
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.phones.guard import CERT_HEADER, VERIFY_HEADER
from provisioning.security import lab
from provisioning.security.factory import FactoryCertificates, mac_in
from provisioning.security.tls import server_context
from provisioning.settings import PROJECT_ROOT, Settings
from tests.conftest import World
from tests.peers.require import free_port, require_binary
from tests.security_kit import (
    Pem,
    VendorCA,
    client_context,
    client_from,
    running,
    vendor_certificate,
)

pytestmark = pytest.mark.usefixtures("world")


@dataclass(frozen=True)
class Phone:
    vendor: str
    mac: str
    model: str
    file: str  # its per-device file (with credentials)


PHONES = [
    Phone("polycom", "0004f2a1b2c3", "polycom-vvx400", "0004f2a1b2c3-phone.cfg"),
    Phone("yealink", "001565a1b2c3", "yealink-t46u", "001565a1b2c3.cfg"),
    Phone("snom", "000413a1b2c3", "snom-d785", "snomD785-000413A1B2C3.htm"),
    Phone("cisco", "00562ba1b2c3", "cisco-cp8841", "00562ba1b2c3.xml"),
]


@dataclass
class Lab:
    folder: Path
    server: lab.Issued
    cas: dict[str, VendorCA]
    certs: dict[str, Pem]  # vendor -> that vendor's phone's certificate

    def trust(self) -> Path:
        return self.folder / "server-ca" / "ca.pem"


@pytest.fixture
async def phones(
    sessions: SessionFactory, catalog: Catalog, settings: Settings, world: World
) -> list[Phone]:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        for phone in PHONES:
            await inventory.add_device(
                session, catalog, cipher, phone.mac, phone.model, world.account_id
            )
    return PHONES


@pytest.fixture
def pki(tmp_path: Path) -> Lab:
    server_ca = lab.create_ca(tmp_path / "server-ca")
    server = lab.create_server(tmp_path / "server-ca", tmp_path / "server", ["127.0.0.1"])
    cas = {p.vendor: VendorCA.create(tmp_path, p.vendor.capitalize()) for p in PHONES}
    certs = {p.vendor: vendor_certificate(cas[p.vendor], tmp_path, p.vendor, p.mac) for p in PHONES}
    assert server_ca.certificate.is_file()
    return Lab(tmp_path, server, cas, certs)


@pytest.fixture
def mtls(settings: Settings, pki: Lab) -> Settings:
    return replace(
        settings,
        tls_cert=pki.server.certificate,
        tls_key=pki.server.key,
        client_cas=tuple((vendor, ca.pem) for vendor, ca in pki.cas.items()),
        auth_proofs="certificate",  # the factory certificate alone opens a phone's files
        ban_window=86_400,
    )


async def get(server, path: str, context) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as client, client.get(server.url(path), ssl=context) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("vendor", [p.vendor for p in PHONES])
async def test_each_vendors_certificate_opens_its_phones_file(
    mtls: Settings, pki: Lab, phones: list[Phone], vendor: str
) -> None:
    phone = next(p for p in phones if p.vendor == vendor)
    async with running(mtls, ssl_context=server_context(mtls)) as server:
        status, body = await get(
            server, f"/{phone.file}", client_context(pki.trust(), pki.certs[vendor])
        )
        assert status == 200, vendor
        assert body
        # Without the certificate: nothing (and the token is not asked for by this policy).
        assert await get(server, f"/{phone.file}", client_context(pki.trust())) == (404, b"")


async def test_a_certificate_for_mac_a_never_opens_mac_bs_file(
    mtls: Settings, pki: Lab, phones: list[Phone], sessions: SessionFactory, catalog: Catalog
) -> None:
    polycom = next(p for p in phones if p.vendor == "polycom")
    other = Phone("polycom", "0004f2d4e5f6", "polycom-vvx400", "0004f2d4e5f6-phone.cfg")
    cipher = Cipher(mtls.secret_key)
    async with sessions() as session, session.begin():
        await inventory.add_device(session, catalog, cipher, other.mac, other.model, None)
    async with running(mtls, ssl_context=server_context(mtls)) as server:
        context = client_context(pki.trust(), pki.certs["polycom"])
        assert (await get(server, f"/{polycom.file}", context))[0] == 200
        assert await get(server, f"/{other.file}", context) == (404, b"")
        assert await get(server, f"/{other.mac}.cfg", context) == (404, b"")


async def test_one_vendors_ca_says_nothing_about_another_vendors_phone(
    mtls: Settings, pki: Lab, phones: list[Phone], tmp_path: Path
) -> None:
    """A certificate from the Yealink CA carrying the Polycom phone's MAC (in Yealink's place)."""
    polycom = next(p for p in phones if p.vendor == "polycom")
    forged = vendor_certificate(pki.cas["yealink"], tmp_path, "yealink", polycom.mac)
    async with running(mtls, ssl_context=server_context(mtls)) as server:
        assert await get(server, f"/{polycom.file}", client_context(pki.trust(), forged)) == (
            404,
            b"",
        )


async def test_certificates_no_configured_ca_vouches_for_fail_the_handshake(
    mtls: Settings, pki: Lab, phones: list[Phone], tmp_path: Path
) -> None:
    folder = tmp_path / "rogue"
    folder.mkdir()
    rogue = VendorCA.create(folder, "Polycom")  # same name as the vendor's CA, another key
    cert = vendor_certificate(rogue, folder, "polycom", phones[0].mac)
    async with running(mtls, ssl_context=server_context(mtls)) as server:
        with pytest.raises(aiohttp.ClientError):
            await get(server, f"/{phones[0].file}", client_context(pki.trust(), cert))


async def test_an_expired_factory_certificate_is_refused(
    mtls: Settings, pki: Lab, phones: list[Phone], tmp_path: Path
) -> None:
    polycom = next(p for p in phones if p.vendor == "polycom")
    old = pki.cas["polycom"].issue(
        tmp_path, "expired", [x509.NameAttribute(NameOID.COMMON_NAME, polycom.mac)],
        not_before=datetime.now(UTC) - timedelta(days=30), days=10,
    )  # fmt: skip
    async with running(mtls, ssl_context=server_context(mtls)) as server:
        with pytest.raises(aiohttp.ClientError):
            await get(server, f"/{polycom.file}", client_context(pki.trust(), old))


async def test_certificate_and_token_together_for_any_two(
    mtls: Settings, pki: Lab, phones: list[Phone], world: World
) -> None:
    settings = replace(mtls, auth_proofs="any-two")
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    yealink_cert = vendor_certificate(pki.cas["yealink"], pki.folder, "yealink", world.yealink_mac)
    async with running(settings, ssl_context=server_context(settings)) as server:
        # The token alone is one proof: a digest answer would make two, so it is asked for.
        assert (await get(server, path, client_context(pki.trust())))[0] == 401
        status, body = await get(server, path, client_context(pki.trust(), yealink_cert))
        assert status == 200 and b"secret-1" in body


async def test_the_lab_ca_vouches_for_every_family(
    settings: Settings, phones: list[Phone], tmp_path: Path
) -> None:
    ca = lab.create_ca(tmp_path / "ca")
    server = lab.create_server(tmp_path / "ca", tmp_path / "server", ["127.0.0.1"])
    lab_settings = replace(
        settings, tls_cert=server.certificate, tls_key=server.key,
        client_cas=(("lab", ca.certificate),), auth_proofs="certificate",
    )  # fmt: skip
    async with running(lab_settings, ssl_context=server_context(lab_settings)) as running_server:
        for phone in phones:
            device = lab.create_device(tmp_path / "ca", tmp_path / "devices", phone.mac)
            pem = Pem(device.certificate, device.key)
            status, _ = await get(
                running_server, f"/{phone.file}", client_context(ca.certificate, pem)
            )
            assert status == 200, phone.vendor


# -- behind a TLS-terminating proxy -------------------------------------------------------------


def escaped(pem: Pem) -> str:
    """What nginx's $ssl_client_escaped_cert holds."""
    return quote(pem.certificate.read_text(), safe="")


@pytest.fixture
def proxied(mtls: Settings) -> Settings:
    return replace(
        mtls, tls_cert=None, tls_key=None, trusted_proxies=netaddr.IPSet(["127.0.0.1/32"])
    )


async def test_a_certificate_header_is_believed_from_a_trusted_proxy_only(
    proxied: Settings, pki: Lab, phones: list[Phone]
) -> None:
    polycom = next(p for p in phones if p.vendor == "polycom")
    headers = {CERT_HEADER: escaped(pki.certs["polycom"]), VERIFY_HEADER: "SUCCESS"}
    async with running(proxied) as server:
        async with (
            client_from("127.0.0.1") as proxy,
            proxy.get(server.url(f"/{polycom.file}"), headers=headers) as resp,
        ):
            assert resp.status == 200
        # The same headers from anyone else: ignored.
        async with (
            client_from("127.0.10.1") as stranger,
            stranger.get(server.url(f"/{polycom.file}"), headers=headers) as resp,
        ):
            assert (resp.status, await resp.read()) == (404, b"")
        # The proxy's verdict counts: a failed verification is not a certificate.
        failed = {**headers, VERIFY_HEADER: "FAILED:certificate has expired"}
        async with (
            client_from("127.0.0.1") as proxy,
            proxy.get(server.url(f"/{polycom.file}"), headers=failed) as resp,
        ):
            assert resp.status == 404


async def test_a_trusted_proxy_cannot_vouch_for_a_certificate_no_ca_signed(
    proxied: Settings, pki: Lab, phones: list[Phone], tmp_path: Path
) -> None:
    rogue_folder = tmp_path / "rogue"
    rogue_folder.mkdir()
    rogue = vendor_certificate(
        VendorCA.create(rogue_folder, "Polycom"), rogue_folder, "polycom", phones[0].mac
    )
    headers = {CERT_HEADER: escaped(rogue), VERIFY_HEADER: "SUCCESS"}
    async with running(proxied) as server, client_from("127.0.0.1") as proxy:
        async with proxy.get(server.url(f"/{phones[0].file}"), headers=headers) as resp:
            assert resp.status == 404
        for junk in ("not a certificate", "-----BEGIN CERTIFICATE-----%0Agarbage", "x" * 20000):
            bad = {CERT_HEADER: junk, VERIFY_HEADER: "SUCCESS"}
            async with proxy.get(server.url(f"/{phones[0].file}"), headers=bad) as resp:
                assert resp.status in (400, 404)


def test_the_mac_must_be_the_only_one_in_the_vendors_places(pki: Lab, tmp_path: Path) -> None:
    o = x509.NameAttribute
    two = pki.cas["snom"].issue(
        tmp_path, "two", [o(NameOID.COMMON_NAME, "000413000001")], dns=["000413000002"]
    )
    certificate = x509.load_pem_x509_certificate(two.certificate.read_bytes())
    assert mac_in(certificate, ("subject:CN", "san:dns")) is None
    assert mac_in(certificate, ("subject:CN",)) == "000413000001"
    cn_not_a_mac = pki.cas["snom"].issue(tmp_path, "model", [o(NameOID.COMMON_NAME, "snomD785")])
    certificate = x509.load_pem_x509_certificate(cn_not_a_mac.certificate.read_bytes())
    assert mac_in(certificate, ("subject:CN", "san:dns")) is None


def test_bundles_must_name_a_family_with_a_certificate_shape(catalog: Catalog, pki: Lab) -> None:
    from provisioning.security.factory import FactoryError

    with pytest.raises(FactoryError, match=r"linphone: family\.toml has no"):
        FactoryCertificates.load((("linphone", pki.cas["polycom"].pem),), catalog)
    with pytest.raises(FactoryError, match="acme: not a family"):
        FactoryCertificates.load((("acme", pki.cas["polycom"].pem),), catalog)


# -- a real nginx with deploy/nginx/provisioning.conf -------------------------------------------


def nginx_config(folder: Path, pki: Lab, listen: int, upstream: int) -> Path:
    """deploy/nginx/provisioning.conf with this test's paths and ports, in a minimal nginx.conf."""
    site = (PROJECT_ROOT / "deploy" / "nginx" / "provisioning.conf").read_text()
    bundle = folder / "vendor-cas.pem"
    bundle.write_text("".join(ca.pem.read_text() for ca in pki.cas.values()))
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{listen} ssl;",
        "listen 80;": f"listen 127.0.0.1:{free_port('tcp')};",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "/etc/provisioning/tls/server.pem": str(pki.server.certificate),
        "/etc/provisioning/tls/server.key": str(pki.server.key),
        "/etc/provisioning/tls/vendor-cas.pem": str(bundle),
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx/provisioning.conf no longer has {old!r}"
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    config = folder / "nginx.conf"
    config.write_text(
        f"daemon off;\nmaster_process off;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events {}\n"
        f"http {{\n  access_log {folder}/access.log;\n  client_body_temp_path {folder}/body;\n"
        f"  proxy_temp_path {folder}/proxy;\n  fastcgi_temp_path {folder}/fastcgi;\n"
        f"  uwsgi_temp_path {folder}/uwsgi;\n  scgi_temp_path {folder}/scgi;\n"
        f"  include {folder}/site.conf;\n}}\n"
    )
    return config


async def test_behind_the_deployed_nginx_configuration(
    proxied: Settings, pki: Lab, phones: list[Phone], tmp_path: Path, world: World
) -> None:
    nginx = require_binary("nginx")
    listen = free_port("tcp")
    async with running(proxied) as server:
        folder = tmp_path / "nginx"
        folder.mkdir()
        config = nginx_config(folder, pki, listen, server.port)
        process = await asyncio.create_subprocess_exec(
            nginx, "-c", str(config), "-p", str(folder), stderr=asyncio.subprocess.PIPE
        )
        try:
            for _ in range(100):
                if (folder / "nginx.pid").exists() or process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            if process.returncode is not None and process.stderr is not None:
                raise AssertionError((await process.stderr.read()).decode())
            base = f"https://127.0.0.1:{listen}"
            polycom = next(p for p in phones if p.vendor == "polycom")
            cisco = next(p for p in phones if p.vendor == "cisco")
            async with aiohttp.ClientSession() as client:
                for _ in range(50):  # nginx binds its port a moment after writing its pid
                    try:
                        async with client.get(f"{base}/", ssl=client_context(pki.trust())):
                            break
                    except aiohttp.ClientConnectorError:
                        await asyncio.sleep(0.1)
                for phone in (polycom, cisco):
                    context = client_context(pki.trust(), pki.certs[phone.vendor])
                    async with client.get(f"{base}/{phone.file}", ssl=context) as resp:
                        assert resp.status == 200, phone.vendor
                # Polycom's certificate on the Cisco phone's file.
                context = client_context(pki.trust(), pki.certs["polycom"])
                async with client.get(f"{base}/{cisco.file}", ssl=context) as resp:
                    assert (resp.status, await resp.read()) == (404, b"")
                # A client forging the headers nginx sets gets nothing from them.
                forged = {
                    CERT_HEADER: escaped(pki.certs["polycom"]),
                    VERIFY_HEADER: "SUCCESS",
                    "X-Forwarded-For": "127.0.0.1",
                }
                async with client.get(
                    f"{base}/{polycom.file}", ssl=client_context(pki.trust()), headers=forged
                ) as resp:
                    assert (resp.status, await resp.read()) == (404, b"")
                # The phone's own address reaches the server (for bans and bindings).
                token_path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
                async with client.get(
                    f"{base}{token_path}", ssl=client_context(pki.trust())
                ) as resp:
                    assert resp.status == 404  # this policy wants a certificate
        finally:
            if process.returncode is None:
                os.kill(process.pid, signal.SIGQUIT)
            await asyncio.wait_for(process.wait(), timeout=10)
    access = (folder / "access.log").read_text()
    assert re.search(r'"GET /0004f2a1b2c3-phone\.cfg HTTP/1\.1" 200', access)
