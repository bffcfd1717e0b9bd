"""Technicolor (Thomson) ST2022 / ST2030 / TB30: INI files read through the strict parser, two
lines on two registrars and transports, the model's .inf chaining to the MAC file, config_sn,
time zone and language, the User-Agents of Wazo."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.devices.identify import match_file, parse_user_agent
from provisioning.render.check import SAMPLE_TOKEN
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_1, LINE_2, parse_ini, two_lines

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["technicolor"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "00147fe147b3"

# Verbatim from Wazo plugins/wazo_technicolor/common/common.py (`_extract_info_from_ua`).
USER_AGENTS = [
    ("THOMSON ST2030 hw5 fw2.74 00-14-7F-E1-47-B3", "technicolor-st2030", "2.74", "00147fe147b3"),
    ("THOMSON ST2030 hw5 fw2.72 00-14-7F-E1-47-B3", "technicolor-st2030", "2.72", "00147fe147b3"),
    ("THOMSON ST2022 hw2 fw4.68 00-14-7F-E1-FC-6D", "technicolor-st2022", "4.68", "00147fe1fc6d"),
    ("Thomson TB30 hw1 fw1.74.0 00-1F-9F-84-F1-80", "technicolor-tb30", "1.74.0", "001f9f84f180"),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str, firmware: str, mac: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None and info.family is FAMILY
    assert info.model is not None and info.model.id == model
    assert (info.firmware, info.mac) == (firmware, mac)


def test_file_names_and_catalog() -> None:
    own = [m for m in match_file(CATALOG, f"ST2030S_{MAC.upper()}.txt") if m.family is FAMILY]
    assert own[0].mac == MAC and own[0].code == "ST2030" and own[0].spec.lines
    (inf,) = [m for m in match_file(CATALOG, "TB30S.inf") if m.family is FAMILY]
    assert inf.code == "TB30" and not inf.spec.secret and not inf.spec.lines
    model = FAMILY.models["technicolor-st2030"]
    assert FAMILY.file_names(MAC, model) == [f"ST2030S_{MAC.upper()}.txt", "ST2030S.inf"]
    slots = {m.id: m.slots for m in FAMILY.models.values()}
    assert slots == {"technicolor-st2022": 2, "technicolor-st2030": 4, "technicolor-tb30": 4}
    assert FAMILY.notify_event == "check-sync"


def render(data: DeviceData, name: str | None = None) -> dict[str, str]:
    files = dict(device_files(CATALOG, data.model_id, data.mac))
    model = CATALOG.model(data.model_id)
    assert model is not None and model.code is not None
    spec = files[name or f"{model.code}S_{data.mac.upper()}.txt"]
    return parse_ini(render_file(RENDERER, SETTINGS, data, spec).body)


def test_two_lines_on_two_registrars_and_transports() -> None:
    cfg = render(two_lines(CATALOG, "technicolor-st2030", MAC))
    for n, line, transport in ((1, LINE_1, "0"), (2, LINE_2, "2")):
        assert cfg[f"sip/RegisterServerMP{n}"] == line.registrar_host
        assert cfg[f"sip/ProxyServerMP{n}"] == line.registrar_host
        assert cfg[f"sip/sip_reg_srv_portMP{n}"] == str(line.registrar_port)
        assert cfg[f"sip/sip_pxy_srv_portMP{n}"] == str(line.registrar_port)
        assert cfg[f"sip/TransportFlgMP{n}"] == transport
        assert cfg[f"sip/regid{n}"] == line.auth_user
        assert cfg[f"sip/regpwd{n}"] == line.password
        assert cfg[f"sip/TEL{n}Number"] == line.user
        assert cfg[f"sip/DisplayName{n}"] == line.display_name
        assert cfg[f"sip/TEL0{n}Use"] == "1"
    assert cfg["sip/sip_reg_srv_portMP2"] == "5071"
    for n in (3, 4):
        assert cfg[f"sip/TEL0{n}Use"] == "0" and cfg[f"sip/regpwd{n}"] == ""
        assert f"sip/sip_reg_srv_portMP{n}" not in cfg


def test_tcp_transport_code() -> None:
    data = two_lines(CATALOG, "technicolor-st2030", MAC)
    data = replace(data, lines={**data.lines, 1: replace(LINE_1, transport="tcp")})
    assert render(data)["sip/TransportFlgMP1"] == "1"


def test_config_sn_follows_the_revision() -> None:
    data = two_lines(CATALOG, "technicolor-st2030", MAC)
    first = render(data)["sys/config_sn"]
    second = render(replace(data, revision=data.revision + 1))["sys/config_sn"]
    assert len(first) == len(second) == 12 and first.isdigit() and first != second


def test_time_zone_and_language() -> None:
    data = two_lines(CATALOG, "technicolor-st2030", MAC)
    cfg = render(data)  # Europe/Paris, French
    assert cfg["ntp/NtpZoneNum"] == "22" and cfg["ipp/LanguageType"] == "1"
    ny = render(replace(data, timezone="America/New_York", language="de"))
    assert ny["ntp/NtpZoneNum"] == "11" and ny["ipp/LanguageType"] == "3"
    nowhere = render(replace(data, timezone="Asia/Kathmandu", language="pt"))
    assert "ntp/NtpZoneNum" not in nowhere and "ipp/LanguageType" not in nowhere


def test_the_inf_file_chains_to_the_mac_file_and_is_public() -> None:
    data = two_lines(CATALOG, "technicolor-tb30", MAC)
    files = dict(device_files(CATALOG, data.model_id, data.mac))
    body = render_file(RENDERER, SETTINGS, data, files["TB30S.inf"]).body
    assert parse_ini(body) == {"config/config": "http://prov.example.net/"}
    for secret in (SAMPLE_TOKEN, LINE_1.password, LINE_2.password):
        assert secret.encode() not in body


async def test_a_phone_fetches_its_files_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """The real app and database: an ST2030 with two lines asks for its .inf and its own file
    with the User-Agent of Wazo's example."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Technicolor owner")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", password="pw-two",
            auth_username="auth-two", registrar="tls:pbx-b.example.org:5061",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "technicolor-st2030", account.id
        )
        await inventory.assign_line(session, MAC, first.id)
        await inventory.assign_line(session, MAC, second.id)
    ua = {"User-Agent": "THOMSON ST2030 hw5 fw2.74 00-14-7F-E1-47-B3"}
    inf = await client.get(f"/{token}/ST2030S.inf", headers=ua)
    assert inf.status == 200
    assert parse_ini(await inf.read()) == {"config/config": "http://phones.test:8080/"}
    resp = await client.get(f"/{token}/ST2030S_{MAC.upper()}.txt", headers=ua)
    assert resp.status == 200
    cfg = parse_ini(await resp.read())
    assert cfg["sip/RegisterServerMP1"] == "pbx-a.example.net"
    assert cfg["sip/TransportFlgMP1"] == "0" and cfg["sip/regid1"] == "auth-one"
    assert cfg["sip/RegisterServerMP2"] == "pbx-b.example.org"
    assert cfg["sip/TransportFlgMP2"] == "2" and cfg["sip/sip_reg_srv_portMP2"] == "5061"
    assert cfg["sip/regid2"] == "auth-two" and cfg["sip/regpwd2"] == "pw-two"
