"""Alcatel-Lucent 8028s and Myriad M3/M5/M7: real requests, the keys of two different lines."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

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
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import ALICE_AND_BOB

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["alcatel"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "487a55023075"

# The two User-Agents the references give (Wazo wazo_alcatel v1_51_52 and v2_13_02 common.py).
USER_AGENTS = [
    ("ALE 8028s-GE 1.51.52.2204 487a55023075", "alcatel-8028s", "1.51.52.2204", MAC),
    ("ALE M3-CE 2.11.01.1604 3c28a620089e", "alcatel-m3", "2.11.01.1604", "3c28a620089e"),
]


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str, firmware: str, mac: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family is FAMILY
    assert info.model is not None and info.model.id == model
    assert (info.firmware, info.mac) == (firmware, mac)


def test_file_names() -> None:
    (match,) = [m for m in match_file(CATALOG, f"config.{MAC}.xml") if m.family is FAMILY]
    assert match.mac == MAC and match.spec.lines and match.spec.secret
    # The per-model file is not served (family.toml).
    assert not [m for m in match_file(CATALOG, "config.8028s-GE.xml") if m.family is FAMILY]
    assert not [m for m in match_file(CATALOG, "config.M3.xml") if m.family is FAMILY]


def test_catalog() -> None:
    slots = {m.id: (m.slots, m.confirmed) for m in FAMILY.models.values()}
    assert slots == {
        "alcatel-8028s": (2, False),  # no transport key: not confirmed
        "alcatel-m3": (8, True),
        "alcatel-m5": (8, True),
        "alcatel-m7": (8, True),
    }
    assert FAMILY.notify_event == "check-sync"


def two_lines(model_id: str) -> DeviceData:
    """Two lines that differ in everything a phone must keep apart."""
    model = CATALOG.model(model_id)
    assert model is not None
    base = replace(sample_device(model_id, model.slots, 0), mac=MAC)
    lines = dict(ALICE_AND_BOB)
    return replace(base, lines=lines)


def render(data: DeviceData, settings: Settings = SETTINGS) -> tuple[ET.Element, dict[str, str]]:
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    assert name == f"config.{data.mac}.xml"
    root = ET.fromstring(render_file(RENDERER, settings, data, spec).body)
    assert root.tag == "settings"
    ids = [str(s.get("id")) for s in root]
    assert all(s.tag == "setting" for s in root)
    assert len(ids) == len(set(ids)), "a setting is written twice"
    return root, {str(s.get("id")): str(s.get("value")) for s in root}


@pytest.mark.parametrize("model_id", ["alcatel-m3", "alcatel-m5", "alcatel-m7"])
def test_myriad_two_lines_on_two_registrars(model_id: str) -> None:
    root, values = render(two_lines(model_id))
    assert all(s.get("override") is None for s in root)
    # Slot 1: its registrar and port, UDP, its auth id.
    assert values["Account1Enable"] == "true"
    assert values["Account1UserName"] == "alice" and values["Account1RegName"] == "auth-alice"
    assert values["Account1Password"] == "pw-1"
    assert values["Account1Server1Address"] == "pbx-a.example.net"
    assert values["Account1Server1Port"] == "5060"
    assert values["Account1Server1Transport"] == "udp"
    assert values["Account1Label"] == "1001" and values["Account1DisplayName"] == "Alice"
    # Slot 2: another registrar and port, TLS, another auth id.
    assert values["Account2Enable"] == "true"
    assert values["Account2UserName"] == "bob" and values["Account2RegName"] == "auth-bob"
    assert values["Account2Password"] == "pw-2"
    assert values["Account2Server1Address"] == "pbx-b.example.org"
    assert values["Account2Server1Port"] == "5061"
    assert values["Account2Server1Transport"] == "tls"
    # Slots 3-8: off and emptied.
    for slot in range(3, 9):
        assert values[f"Account{slot}Enable"] == "false"
        for key in ("UserName", "RegName", "Password", "Server1Address"):
            assert values[f"Account{slot}{key}"] == "", (slot, key)
    assert "Account9Enable" not in values


def test_myriad_provisioning_time_language() -> None:
    data = replace(two_lines("alcatel-m7"), http_username=MAC, http_password="digest-pw")
    _, values = render(data)
    assert values["DeviceProvisionServerUrl"] == f"http://prov.example.net/{SAMPLE_TOKEN}/"
    assert values["DeviceProvisionServerUsername"] == MAC
    assert values["DeviceProvisionServerPassword"] == "digest-pw"
    assert values["DeviceProvisionFileSecond"] == "config.$mac.xml"
    assert values["SettingTimeZone"] == "+1:00"  # Europe/Paris, standard time
    assert values["SettingTimeZoneLocation"] == "Europe/Paris"
    assert values["SettingLanguage"] == "1"  # fr
    other = replace(data, timezone="America/St_Johns", language="de")
    _, values = render(other)
    assert values["SettingTimeZone"] == "-3:30" and values["SettingLanguage"] == "2"
    _, values = render(replace(data, language="ja"))  # no number known: the phone's own
    assert "SettingLanguage" not in values


def test_8028s_two_lines_on_two_registrars() -> None:
    root, values = render(two_lines("alcatel-8028s"))
    assert all(s.get("override") == "true" for s in root)
    assert values["SIPServer1Address"] == "pbx-a.example.net"
    assert values["SIPGroup1DomainName"] == "pbx-a.example.net"
    assert values["SIPGroup1OutBoundProxyAddress"] == "pbx-a.example.net"
    assert values["SIPGroup1OutBoundProxyPort"] == "5060"
    assert values["SIPGroup1AuthenticationName"] == "auth-alice"
    assert values["SIPGroup1DeviceUri"] == "alice"
    assert values["SIPGroup1AuthenticationPassword"] == "pw-1"
    assert values["SIPServer2Address"] == "pbx-b.example.org"
    assert values["SIPGroup2OutBoundProxyPort"] == "5061"  # the registrar's own port
    assert values["SIPGroup2AuthenticationName"] == "auth-bob"
    assert values["SIPGroup2DeviceUri"] == "bob"
    # No transport key exists for the 8028s: the TLS line says so, the UDP line says nothing.
    assert not any("Transport" in key for key in values)
    notes = comments(two_lines("alcatel-8028s"))
    assert sum("asks for TLS" in note for note in notes) == 1
    assert not any("asks for UDP" in note for note in notes)


def comments(data: DeviceData) -> list[str]:
    """The XML comments of the device's file, read by the XML parser."""
    ((_, spec),) = device_files(CATALOG, data.model_id, data.mac)
    body = render_file(RENDERER, SETTINGS, data, spec).body
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    return [c.text or "" for c in ET.fromstring(body, parser=parser).iter(ET.Comment)]


def test_8028s_provisioning_time_language() -> None:
    _, values = render(two_lines("alcatel-8028s"))
    assert values["LocalEnetcfgDmUrl"] == f"http://prov.example.net/{SAMPLE_TOKEN}/"
    assert values["EdsEnetcfgDmUrl"] == values["LocalEnetcfgDmUrl"]
    assert values["LocalAdmcfgRunMode"] == "SIP"
    assert values["DmAdmcfgTimeZone"] == "+1:00"
    assert values["language"] == "1" and values["language_local"] == "1"


GOLDEN = Path(__file__).parent.parent / "golden" / "alcatel"


@pytest.mark.parametrize("lines", ["1-line", "full"])
def test_8028s_golden(lines: str) -> None:
    """The generic golden test covers the M-series (the model with most slots); the 8028s has
    its own key set, so its own golden files (UPDATE_GOLDEN=1 accepts a change)."""
    data = sample_device("alcatel-8028s", 2, 1 if lines == "1-line" else 2)
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    body = render_file(RENDERER, SETTINGS, data, spec).body
    golden = GOLDEN / f"alcatel-8028s-{lines}--{name}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_bytes(body)
    assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
    assert body == golden.read_bytes(), f"{golden.name} differs"


async def two_line_device(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, model_id: str, mac: str
) -> str:
    """A device of `model_id` in the real database with two lines on two registrars (UDP on
    one, TLS on a non-default port on the other); its token."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Owner")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", password="pw-two",
            auth_username="auth-two", registrar="tls:pbx-b.example.org:5061",
        )  # fmt: skip
        _, token = await inventory.add_device(session, catalog, cipher, mac, model_id, account.id)
        await inventory.assign_line(session, mac, first.id)
        await inventory.assign_line(session, mac, second.id)
    return token


async def test_a_phone_fetches_its_file_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """The real app and database: an M3 asks for `config.<mac>.xml` with the User-Agent of
    Wazo's example (its MAC too) and its token."""
    mac = "3c28a620089e"
    token = await two_line_device(sessions, settings, catalog, "alcatel-m3", mac)
    ua = {"User-Agent": "ALE M3-CE 2.11.01.1604 3c28a620089e"}
    resp = await client.get(f"/{token}/config.{mac}.xml", headers=ua)
    assert resp.status == 200
    root = ET.fromstring(await resp.read())
    values = {str(s.get("id")): str(s.get("value")) for s in root}
    assert values["Account1Server1Address"] == "pbx-a.example.net"
    assert values["Account1Server1Transport"] == "udp"
    assert values["Account1RegName"] == "auth-one" and values["Account1Password"] == "pw-one"
    assert values["Account2Server1Address"] == "pbx-b.example.org"
    assert (values["Account2Server1Port"], values["Account2Server1Transport"]) == ("5061", "tls")
    assert values["Account2RegName"] == "auth-two" and values["Account2Password"] == "pw-two"
    assert values["DeviceProvisionServerUrl"] == f"http://phones.test:8080/{token}/"
