"""Htek UC9xx: real requests, the P-values per account, the factory file's chain."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.devices.identify import match_file, parse_user_agent
from provisioning.render.check import SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer, RenderError
from provisioning.render.files import device_files, render_file, spec_for
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import ALICE_AND_BOB

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["htek"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "001fc11c22a9"

# (User-Agent, model id, firmware, MAC): the two examples the references give, verbatim.
USER_AGENTS = [
    # Wazo plugins/wazo_htek/common/common.py
    ("Htek UC903 2.0.4.2 00:1f:c1:1c:22:a9", "htek-uc903", "2.0.4.2", "001fc11c22a9"),
    # FusionPBX app/provision/index.php (its MAC is a placeholder)
    ("Htek UC926 2.0.4.2 00:1f:c1:00:00:00", "htek-uc926", "2.0.4.2", "001fc1000000"),
]


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str, firmware: str, mac: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family is FAMILY
    assert info.model is not None and info.model.id == model
    assert info.firmware == firmware
    assert info.mac == mac


def test_file_names() -> None:
    # `cfg<mac>.xml` also fits the factory name `cfg<code>.xml`; the MAC file is listed first, so
    # it is the one served for a device of this family.
    matches = [m for m in match_file(CATALOG, f"cfg{MAC.upper()}.xml") if m.family is FAMILY]
    assert matches[0].mac == MAC
    assert spec_for(CATALOG, "htek-uc926", matches) is matches[0].spec
    assert matches[0].spec.lines and matches[0].spec.secret
    # The factory file of a UC926 (Wazo entry.py COMMON_FILES): public, names no MAC.
    (common,) = [m for m in match_file(CATALOG, "cfg0010.xml") if m.family is FAMILY]
    assert common.code == "0010" and common.mac is None
    assert not common.spec.secret and not common.spec.lines


def test_catalog() -> None:
    slots = {m.id: m.slots for m in FAMILY.models.values()}
    # Every model capped at the 4 accounts whose registrar key is known (family.toml).
    assert set(slots.values()) == {4}
    assert {m.id for m in FAMILY.models.values() if m.confirmed} == {"htek-uc902", "htek-uc912"}
    codes = {m.id: m.code for m in FAMILY.models.values()}
    assert codes["htek-uc926"] == "0010" and codes["htek-uc912"] == "0019"
    assert FAMILY.notify_event == "check-sync"
    uc912 = FAMILY.model_for_ua("UC912G")
    assert uc912 is not None and uc912.id == "htek-uc912"


def two_lines(model_id: str = "htek-uc926") -> DeviceData:
    """Two lines that differ in everything a phone must keep apart."""
    base = sample_device(model_id, 4, 0)
    lines = dict(ALICE_AND_BOB)
    return replace(base, lines=lines)


def render(data: DeviceData, name: str | None = None, settings: Settings = SETTINGS) -> ET.Element:
    files = dict(device_files(CATALOG, data.model_id, data.mac))
    spec = files[name or f"cfg{data.mac}.xml"]
    body = render_file(RENDERER, settings, data, spec).body
    return ET.fromstring(body)  # strict: any malformed byte fails here


def p(root: ET.Element, key: str) -> str | None:
    """The text of a P-value ("" when empty), None when absent; never set twice."""
    found = root.findall(f"config/{key}")
    assert len(found) <= 1, f"{key} set twice"
    return (found[0].text or "") if found else None


# Per account: active, server, transport, user, auth id, password, display name, label.
KEYS = {
    1: ("P271", "P47", "P130", "P35", "P36", "P34", "P3", "P20000"),
    2: ("P401", "P747", "P830", "P735", "P736", "P734", "P703", "P20001"),
    3: ("P501", "P502", "P930", "P504", "P505", "P506", "P507", "P20002"),
    4: ("P601", "P602", "P1030", "P604", "P605", "P606", "P607", "P20003"),
}


def test_two_lines_on_two_registrars() -> None:
    data = two_lines()
    root = render(data)
    assert root.tag == "hl_provision" and root.get("version") == "1"
    config = root.find("config")
    assert config is not None and config.get("version") == "1"
    # Slot 1: its own registrar, UDP, its own auth id.
    assert p(root, "P271") == "1"
    assert p(root, "P47") == "pbx-a.example.net:5060"
    assert p(root, "P130") == "0"
    assert p(root, "P35") == "alice" and p(root, "P36") == "auth-alice"
    assert p(root, "P34") == "pw-1" and p(root, "P3") == "Alice"
    assert p(root, "P20000") == "1001"
    assert p(root, "P24082") == "0"
    # Slot 2: another registrar and port, TLS, another auth id.
    assert p(root, "P401") == "1"
    assert p(root, "P747") == "pbx-b.example.org:5061"
    assert p(root, "P830") == "2"
    assert p(root, "P735") == "bob" and p(root, "P736") == "auth-bob"
    assert p(root, "P734") == "pw-2" and p(root, "P703") == "Bob"
    assert p(root, "P20001") == "2002"
    assert p(root, "P24083") == "1"
    # Line keys 1 and 2 are lines, bound to accounts 1 and 2 (0-based).
    assert [p(root, k) for k in ("P41200", "P41400", "P41500")] == ["1", "1001", "0"]
    assert [p(root, k) for k in ("P41201", "P41401", "P41501")] == ["1", "2002", "1"]
    # Slots 3 and 4 unused: off and emptied, their line keys off.
    for slot in (3, 4):
        active, server, _transport, user, auth, password, display, label = KEYS[slot]
        assert p(root, active) == "0"
        for key in (server, user, auth, password, display, label):
            assert p(root, key) == "", key
    assert p(root, "P41202") == "0" and p(root, "P41203") == "0"


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_transport_codes(transport: str) -> None:
    data = two_lines()
    data = replace(data, lines={1: replace(data.lines[1], transport=transport)})
    assert p(render(data), "P130") == {"udp": "0", "tcp": "1", "tls": "2"}[transport]


def test_every_slot_of_every_model() -> None:
    for model in FAMILY.models.values():
        data = sample_device(model.id, model.slots, model.slots)
        root = render(data)
        for slot, (active, server, *_rest) in KEYS.items():
            assert p(root, active) == "1", (model.id, slot)
            assert p(root, server) == "sip.example.net:5060"


def test_fifth_account_fails_loudly() -> None:
    """No registrar key is known beyond account 4: a model given 5 slots must not render."""
    model = replace(FAMILY.models["htek-uc926"], slots=5)
    catalog = Catalog({"htek": replace(FAMILY, models={model.id: model})})
    data = sample_device(model.id, 5, 5)
    spec = dict(device_files(catalog, model.id, MAC))[f"cfg{MAC}.xml"]
    with pytest.raises(RenderError):
        render_file(Renderer(catalog), SETTINGS, data, spec)


def test_provisioning_url_and_recheck() -> None:
    root = render(two_lines())
    assert p(root, "P212") == "1"  # HTTP
    assert p(root, "P237") == f"http://prov.example.net/{SAMPLE_TOKEN}/"
    assert p(root, "P194") == "1"
    assert p(root, "P193") == str(SETTINGS.poll_interval // 60)


def test_provisioning_over_https() -> None:
    settings = replace(SETTINGS, public_url="https://example.net:8443/prov/")
    root = render(two_lines(), settings=settings)
    assert p(root, "P212") == "3"
    assert p(root, "P237") == f"https://example.net:8443/prov/{SAMPLE_TOKEN}/"


def test_http_credential() -> None:
    data = replace(two_lines(), http_username="001fc11c22a9", http_password="digest-pw")
    root = render(data)
    assert p(root, "P1360") == "001fc11c22a9" and p(root, "P1361") == "digest-pw"


def test_time_zone() -> None:
    root = render(two_lines())  # Europe/Paris: UTC+1
    assert p(root, "P64") == "49"
    assert p(root, "P75") == "2"
    ny = replace(two_lines(), timezone="America/New_York")
    assert p(render(ny), "P64") == "18"
    # Kathmandu (+5:45) is not in the phone's list: the phone's own zone stays.
    np = render(replace(two_lines(), timezone="Asia/Kathmandu"))
    assert p(np, "P64") is None and p(np, "P75") is None


def test_factory_file_chains_to_the_mac_file() -> None:
    data = two_lines()
    root = render(data, "cfg0010.xml")
    assert p(root, "P237") == "http://prov.example.net/"
    text = ET.tostring(root, encoding="unicode")
    for secret in (SAMPLE_TOKEN, "pw-1", "pw-2", "alice", "bob"):
        assert secret not in text
    assert p(root, "P47") is None and p(root, "P271") is None


async def test_a_phone_fetches_its_files_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """The real app and database: a UC903 with two lines on two registrars asks for its file
    with the User-Agent of Wazo's example (its MAC too) and its token, then for its factory
    file."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Htek owner")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", password="pw-two",
            auth_username="auth-two", registrar="tls:pbx-b.example.org:5061",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "htek-uc903", account.id
        )
        await inventory.assign_line(session, MAC, first.id)
        await inventory.assign_line(session, MAC, second.id)
    ua = {"User-Agent": "Htek UC903 2.0.4.2 00:1f:c1:1c:22:a9"}
    resp = await client.get(f"/{token}/cfg{MAC}.xml", headers=ua)
    assert resp.status == 200
    root = ET.fromstring(await resp.read())
    assert p(root, "P47") == "pbx-a.example.net:5060" and p(root, "P130") == "0"
    assert p(root, "P36") == "auth-one" and p(root, "P34") == "pw-one"
    assert p(root, "P747") == "pbx-b.example.org:5061" and p(root, "P830") == "2"
    assert p(root, "P736") == "auth-two" and p(root, "P734") == "pw-two"
    assert p(root, "P237") == f"http://phones.test:8080/{token}/"
    common = await client.get(f"/{token}/cfg0016.xml", headers=ua)
    assert common.status == 200
    text = await common.text()
    assert "pw-one" not in text and token not in text
    assert p(ET.fromstring(text), "P237") == "http://phones.test:8080/"
