"""Panasonic KX-UT1xx: real User-Agents, the file names, the factory file (text form, read back
with the strict `KEY="value"` parser) that chains a new phone to its own file under its token,
the attributes of two different lines in that file (XML form, read back with an XML parser),
provisioning, re-check, resync and time zone, and both fetched through the server."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from provisioning import accounts
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.devices.identify import match_file, parse_user_agent
from provisioning.render.check import SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file, spec_for
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import ALICE_AND_BOB, parse_quoted, parse_xml

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["panasonic"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0080f0c8c381"

# Lines per model: Wazo plugins/wazo_panasonic/v01_133/plugin-info (KX-UT136: 6, capped at the
# 4 accounts FusionPBX's XML gives keys for).
SLOTS = {"kx_ut113": 1, "kx_ut123": 2, "kx_ut133": 3, "kx_ut136": 4}


def test_user_agents() -> None:
    # Wazo plugins/wazo_panasonic/common/common.py
    info = parse_user_agent(CATALOG, "Panasonic_KX-UT113/01.133 (0080f0c8c381)")
    assert info is not None and info.family is FAMILY
    assert info.model is not None and info.model.id == "panasonic-kx_ut113"
    assert info.firmware == "01.133" and info.mac == MAC
    # FusionPBX app/provision/index.php: a KX-UT670 (not in the catalog) with a placeholder
    # MAC of 11 digits: the family is known, the model and MAC are not.
    info = parse_user_agent(CATALOG, "Panasonic_KX-UT670/01.022 (0080f000000)")
    assert info is not None and info.family is FAMILY
    assert info.model is None and info.mac is None and info.firmware == "01.022"


def test_catalog_and_file_names() -> None:
    assert {m.id.removeprefix("panasonic-"): m.slots for m in FAMILY.models.values()} == SLOTS
    assert not any(m.confirmed for m in FAMILY.models.values())
    assert FAMILY.notify_event == "check-sync"
    # The factory file first (what a new phone asks for), then its own file.
    for key in SLOTS:
        model = FAMILY.models[f"panasonic-{key}"]
        assert FAMILY.file_names(MAC, model) == [f"{model.ua_models[0]}.cfg", f"{MAC}.xml"]
    matches = match_file(CATALOG, f"{MAC.upper()}.xml")
    mine = [m for m in matches if m.family is FAMILY]
    assert [m.mac for m in mine] == [MAC]
    assert spec_for(CATALOG, "panasonic-kx_ut123", matches) is mine[0].spec
    assert mine[0].spec.lines and mine[0].spec.secret and mine[0].spec.format == "xml"
    # The factory file: Panasonic's text form, no lines, the device token (secret).
    matches = match_file(CATALOG, "KX-UT123.cfg")
    (factory,) = [m for m in matches if m.family is FAMILY]
    assert factory.mac is None and factory.code == "UT123"
    assert factory.spec.format == "quoted" and factory.spec.secret and not factory.spec.lines


def two_lines(model_id: str = "panasonic-kx_ut123", slots: int = 2) -> DeviceData:
    base = sample_device(model_id, slots, 0)
    lines = dict(ALICE_AND_BOB)
    return replace(base, mac=MAC, lines=lines)


def render(data: DeviceData, settings: Settings = SETTINGS) -> ET.Element:
    (_, (name, spec)) = device_files(CATALOG, data.model_id, data.mac)
    assert name == f"{data.mac}.xml"
    body = render_file(RENDERER, settings, data, spec).body
    return parse_xml(body)  # strict: expat, no recovery, no DOCTYPE or entity


def render_factory(data: DeviceData, settings: Settings = SETTINGS) -> bytes:
    ((name, spec), _) = device_files(CATALOG, data.model_id, data.mac)
    assert name == CATALOG.models[data.model_id].ua_models[0] + ".cfg"
    return render_file(RENDERER, settings, data, spec).body


def test_the_factory_file_chains_a_new_phone_to_its_own_file() -> None:
    """Panasonic's manuals: the text form, CR LF line ends, the fixed first line; what it sets is
    read back by the strict `KEY="value"` parser (tests/families/strict.py)."""
    body = render_factory(two_lines())
    assert body.startswith(b"# Panasonic SIP Phone Standard Format File #\r\n")
    assert body.endswith(b"\r\n\r\n") and body.count(b"\n") == body.count(b"\r\n")
    url = f"http://prov.example.net/{SAMPLE_TOKEN}/{MAC}.xml"
    # Only the chain: no line and no credential but the device token in the URL.
    assert parse_quoted(body) == {"CFG_STANDARD_FILE_PATH": url}
    assert attr(render(two_lines()), "CFG_STANDARD_FILE_PATH") == url  # the file names itself
    for key in SLOTS:  # every model's factory file, the same chain
        data = replace(two_lines(), model_id=f"panasonic-{key}", lines={})
        assert parse_quoted(render_factory(data)) == {"CFG_STANDARD_FILE_PATH": url}


def attr(root: ET.Element, name: str) -> str | None:
    """The value of parameter `name` wherever it is; None when absent; never set twice."""
    found = [el.attrib[name] for el in root.iter() if name in el.attrib]
    assert len(found) <= 1, f"{name} set twice"
    return found[0] if found else None


def line(root: ET.Element, n: int) -> ET.Element:
    (element,) = root.findall(f"Dev/Srv/Prof/Line[@ID='{n}']")
    return element


def test_two_lines_on_two_registrars() -> None:
    root = render(two_lines())
    assert root.tag == "PANASipPhoneConfig"
    sip = root.find("Dev/Srv/Prof/SIP")
    assert sip is not None
    # Slot 1: its registrar and port, UDP, its auth id.
    assert attr(root, "SIP_RGSTR_ADDR_1") == "pbx-a.example.net"
    assert attr(root, "SIP_PRXY_ADDR_1") == "pbx-a.example.net"
    assert attr(root, "SIP_SVCDOMAIN_1") == "pbx-a.example.net"
    assert attr(root, "SIP_RGSTR_PORT_1") == "5060" and attr(root, "SIP_PRXY_PORT_1") == "5060"
    assert attr(root, "SIP_TRANSPORT_1") == "0"
    one = line(root, 1)
    assert attr(one, "LINE_ENABLE_1") == "Enabled"
    assert attr(one, "PHONE_NUMBER_1") == "alice" and attr(one, "SIP_URI_1") == "alice"
    assert attr(one, "SIP_AUTHID_1") == "auth-alice" and attr(one, "SIP_PASS_1") == "pw-1"
    assert attr(one, "DISPLAY_NAME_1") == "Alice"
    # Slot 2: another registrar and port, TLS, another auth id.
    assert attr(root, "SIP_RGSTR_ADDR_2") == "pbx-b.example.org"
    assert attr(root, "SIP_PRXY_ADDR_2") == "pbx-b.example.org"
    assert attr(root, "SIP_SVCDOMAIN_2") == "pbx-b.example.org"
    assert attr(root, "SIP_RGSTR_PORT_2") == "5061" and attr(root, "SIP_PRXY_PORT_2") == "5061"
    assert attr(root, "SIP_TRANSPORT_2") == "2"
    two = line(root, 2)
    assert attr(two, "LINE_ENABLE_2") == "Enabled"
    assert attr(two, "PHONE_NUMBER_2") == "bob"
    assert attr(two, "SIP_AUTHID_2") == "auth-bob" and attr(two, "SIP_PASS_2") == "pw-2"
    assert attr(two, "DISPLAY_NAME_2") == "Bob"


def test_unused_lines_are_emptied() -> None:
    data = two_lines("panasonic-kx_ut136", 4)
    root = render(data)
    for n in (3, 4):
        assert attr(root, f"SIP_RGSTR_ADDR_{n}") == ""
        unused = line(root, n)
        assert attr(unused, f"LINE_ENABLE_{n}") is None
        for key in ("PHONE_NUMBER", "SIP_AUTHID", "SIP_PASS", "SIP_URI", "DISPLAY_NAME"):
            assert attr(unused, f"{key}_{n}") == "", key
    assert len(root.findall("Dev/Srv/Prof/Line")) == 4


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_transport_codes(transport: str) -> None:
    data = two_lines()
    data = replace(data, lines={1: replace(data.lines[1], transport=transport)})
    assert attr(render(data), "SIP_TRANSPORT_1") == {"udp": "0", "tcp": "1", "tls": "2"}[transport]


def test_provisioning_recheck_and_resync() -> None:
    root = render(two_lines())
    url = f"http://prov.example.net/{SAMPLE_TOKEN}/{MAC}.xml"
    assert attr(root, "CFG_STANDARD_FILE_PATH") == url
    assert attr(root, "CFG_CYCLIC") == "Y"
    assert attr(root, "CFG_CYCLIC_INTVL") == str(SETTINGS.poll_interval // 60)
    assert attr(root, "CFG_RESYNC_FROM_SIP") == FAMILY.notify_event == "check-sync"


def test_time_zone_and_language() -> None:
    root = render(two_lines())  # Europe/Paris, French
    assert attr(root, "TIME_ZONE") == "60"
    assert attr(root, "DEFAULT_LANGUAGE") is None  # no reference gives French's value
    us = render(replace(two_lines(), timezone="America/Phoenix", language="en"))
    assert attr(us, "TIME_ZONE") == "-420"  # FusionPBX KX-TGP500's value for UTC-7
    assert attr(us, "DEFAULT_LANGUAGE") == "en-US"


async def test_a_phone_fetches_its_file_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """The real app and database: a KX-UT123 with two lines on two registrars asks for its file
    with the User-Agent of Wazo's example (its MAC too) and its token."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Panasonic owner")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", password="pw-two",
            auth_username="auth-two", registrar="tls:pbx-b.example.org:5061",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "panasonic-kx_ut123", account.id
        )
        await inventory.assign_line(session, MAC, first.id)
        await inventory.assign_line(session, MAC, second.id)
    ua = {"User-Agent": "Panasonic_KX-UT123/01.133 (0080f0c8c381)"}
    # Fresh from the box, option 66 `http://phones.test:8080/<token>/`: `{MODEL}.cfg` first.
    resp = await client.get(f"/{token}/KX-UT123.cfg", headers=ua)
    assert resp.status == 200 and resp.content_type == "text/plain"
    chained = parse_quoted(await resp.read())["CFG_STANDARD_FILE_PATH"]
    assert chained == f"http://phones.test:8080/{token}/{MAC}.xml"
    # It carries the token: with ALLOW_MAC_ONLY off (the default), the very same request
    # without it, though its User-Agent names the phone's MAC, gets the empty 404 (a MAC is no
    # secret). test_the_factory_file_by_mac_alone shows what ALLOW_MAC_ONLY on changes.
    assert not settings.allow_mac_only
    resp = await client.get("/KX-UT123.cfg", headers=ua)
    assert resp.status == 404 and await resp.read() == b""
    # Then the file it names.
    resp = await client.get(chained.removeprefix("http://phones.test:8080"), headers=ua)
    assert resp.status == 200
    root = parse_xml(await resp.read())
    assert attr(root, "SIP_RGSTR_ADDR_1") == "pbx-a.example.net"
    assert attr(root, "SIP_RGSTR_PORT_1") == "5060" and attr(root, "SIP_TRANSPORT_1") == "0"
    assert attr(root, "SIP_AUTHID_1") == "auth-one" and attr(root, "SIP_PASS_1") == "pw-one"
    assert attr(root, "SIP_RGSTR_ADDR_2") == "pbx-b.example.org"
    assert attr(root, "SIP_RGSTR_PORT_2") == "5061" and attr(root, "SIP_TRANSPORT_2") == "2"
    assert attr(root, "SIP_AUTHID_2") == "auth-two" and attr(root, "SIP_PASS_2") == "pw-two"
    assert attr(root, "CFG_STANDARD_FILE_PATH") == f"http://phones.test:8080/{token}/{MAC}.xml"


async def test_the_factory_file_by_mac_alone(
    aiohttp_client: Any, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """With ALLOW_MAC_ONLY on (labs only: README), a request without the token is served the
    file of the device whose MAC it names, here in its User-Agent (the factory file's name has
    none): the factory file, with the device's token, like `<mac>.xml` with its SIP passwords.
    Only to that MAC's own request: one that names another MAC, none, or two that differ, gets
    the empty 404, and never this device's token."""
    cipher = Cipher(settings.secret_key)
    other = "0080f0c8c382"
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Panasonic owner")
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "panasonic-kx_ut123", account.id
        )
        _, other_token = await inventory.add_device(
            session, catalog, cipher, other, "panasonic-kx_ut123", account.id
        )
    client: TestClient = await aiohttp_client(create_app(replace(settings, allow_mac_only=True)))

    def agent(mac: str | None) -> dict[str, str]:
        return {"User-Agent": "Panasonic_KX-UT123/01.133" + (f" ({mac})" if mac else "")}

    resp = await client.get("/KX-UT123.cfg", headers=agent(MAC))
    assert resp.status == 200
    chained = parse_quoted(await resp.read())["CFG_STANDARD_FILE_PATH"]
    assert chained == f"http://phones.test:8080/{token}/{MAC}.xml"
    # Another device's MAC: that device's own file, its token, not this one's.
    resp = await client.get("/KX-UT123.cfg", headers=agent(other))
    body = await resp.read()
    assert resp.status == 200 and token.encode() not in body and other_token.encode() in body
    # No MAC, a MAC no device has, or a path naming one MAC and a User-Agent another: 404.
    for path, mac in (
        ("/KX-UT123.cfg", None),
        ("/KX-UT123.cfg", "0080f0c8c3ff"),
        (f"/{MAC}.xml", other),
    ):
        resp = await client.get(path, headers=agent(mac))
        assert (resp.status, await resp.read()) == (404, b""), (path, mac)
    # The device file by MAC alone too (the operator chose it): the path names the MAC.
    resp = await client.get(f"/{MAC}.xml", headers=agent(MAC))
    assert resp.status == 200
    assert attr(parse_xml(await resp.read()), "CFG_STANDARD_FILE_PATH") == chained
