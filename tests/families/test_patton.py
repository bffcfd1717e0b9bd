"""Patton SmartNode gateways: the CLI file read through the strict parser (modes and commands),
two lines on two registrars, the token URL in the provisioning profile, the check-sync rule, the
time zone, refusals, the User-Agents of Wazo."""

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
from provisioning.render.environment import Renderer, RenderRefused
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_1, LINE_2, parse_cli, two_lines

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["patton"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "00a0ba08933c"

# Verbatim from Wazo plugins/wazo_patton/common/common.py (`_extract_from_ua` comments).
USER_AGENTS = [
    (
        "SmartNode (Model:SN4112/JS/EUI; Serial:00A0BA08933C; Software Version:R6.2 2012-09-11 "
        "H323 SIP FXS FXO; Hardware Version:4.4)",
        "patton-sn4112", "6.2", "00a0ba08933c",
    ),
    (
        "SmartNode (Model:SN4316/JS; Serial:00A0BA0BA9A5; Software Version:R6.9 2016-07-05 "
        "H323 SIP FXS FXO; Hardware Version:2.3)",
        "patton-sn4316", "6.9", "00a0ba0ba9a5",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str, firmware: str, mac: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None and info.family is FAMILY
    assert info.model is not None and info.model.id == model
    assert (info.firmware, info.mac) == (firmware, mac)


def test_file_names_and_catalog() -> None:
    matches = [m for m in match_file(CATALOG, f"{MAC}.cfg") if m.family is FAMILY]
    assert matches[0].mac == MAC and matches[0].spec.lines and matches[0].spec.secret
    assert FAMILY.file_names(MAC, FAMILY.models["patton-sn4112"]) == [f"{MAC}.cfg"]
    slots = [FAMILY.models[f"patton-{m}"].slots for m in (
        "sn4112", "sn4112s", "sn4114", "sn4116", "sn4118", "sn4316", "sn4324", "sn4332")]  # fmt: skip
    assert slots == [2, 2, 4, 4, 8, 16, 24, 32]
    assert FAMILY.notify_event == "check-sync"


def render(data: DeviceData, settings: Settings = SETTINGS) -> dict[str, str]:
    (spec,) = dict(device_files(CATALOG, data.model_id, data.mac)).values()
    return parse_cli(render_file(RENDERER, settings, data, spec).body)


def mode(cfg: dict[str, str], path: str, value: str) -> str:
    """The path of the first mode `path[i]` whose arguments are `value`."""
    found = [k for k, v in cfg.items() if k.rsplit("[", 1)[0] == path and v == value]
    assert found, (path, value)
    return found[0]


def test_two_lines_on_two_registrars() -> None:
    cfg = render(two_lines(CATALOG, "patton-sn4114", MAC))
    switch = mode(cfg, "/context", "cs switch")
    for slot, line in ((1, LINE_1), (2, LINE_2)):
        port = slot - 1
        sip = mode(cfg, f"{switch}/interface", f"sip IF_SIP_LINE{slot}")
        assert cfg[f"{sip}/remote[0]"] == f"{line.registrar_host} {line.registrar_port}"
        fxs = mode(cfg, f"{switch}/interface", f"fxs IF_FXS{port}")
        assert cfg[f"{fxs}/subscriber-number[0]"] == line.user
        loc = mode(cfg, "/location-service", f"LOC_LINE{slot}")
        assert cfg[f"{loc}/domain[0]"] == line.registrar_host
        identity = mode(cfg, f"{loc}/identity", line.user)
        auth = f"{identity}/authentication[0]/authenticate[0]"
        assert cfg[auth] == f"authentication-service AUTH username {line.auth_user}"
        reg = f"{identity}/registration[0]"
        assert cfg[f"{reg}/registrar[0]"] == f"{line.registrar_host} {line.registrar_port}"
        assert cfg[f"{reg}/register[0]"] == "auto"
        mode(
            cfg, "/authentication-service[0]/username", f"{line.auth_user} password {line.password}"
        )
        port_mode = mode(cfg, "/port", f"fxs 0 {port}")
        assert cfg[f"{port_mode}/no[0]"] == "shutdown"
    assert cfg[f"{switch}/routing-table[0]/route[1]"] == "sip:bob-u2@.% dest-interface IF_FXS1"
    # Ports 2 and 3 have no line: shut down, no SIP identity.
    assert cfg[f"{mode(cfg, '/port', 'fxs 0 3')}/shutdown[0]"] == ""
    assert not [k for k, v in cfg.items() if v == "LOC_LINE3"]


def test_token_url_and_check_sync_rule() -> None:
    cfg = render(two_lines(CATALOG, "patton-sn4112", MAC))
    profile = mode(cfg, "/profile", "provisioning PF_PROVISIONING_CONFIG")
    assert cfg[f"{profile}/location[0]"] == f"1 http://prov.example.net/{SAMPLE_TOKEN}/{MAC}.cfg"
    assert cfg[f"{profile}/destination[0]"] == "configuration"
    rule = mode(cfg, "/actions[0]/rule", "ACT_CHECK_SYNC")
    assert cfg[f"{rule}/condition[0]"] == "sip gateway:GW_SIP NOTIFY_CHECK_SYNC_RELOAD"
    assert cfg[f"{rule}/action[0]"] == '"provisioning execute PF_PROVISIONING_CONFIG"'
    gateway = [k for k, v in cfg.items() if v == "sip-gateway GW_SIP"][-1]
    assert cfg[f"{gateway}/notify[0]"] == "check-sync accept"


def test_time_zone() -> None:
    data = two_lines(CATALOG, "patton-sn4112", MAC)
    cfg = render(data)  # Europe/Paris
    assert cfg["/clock[0]"] == "local default-offset +01:00"
    assert cfg["/clock[1]"] == (
        "local dst-rule DSTRULE +02:00 from 02:00 mar last sunday until 03:00 oct last sunday"
    )
    ny = render(replace(data, timezone="America/New_York"))
    assert ny["/clock[0]"] == "local default-offset -05:00"
    assert ny["/clock[1]"].endswith("from 02:00 mar second sunday until 02:00 nov first sunday")
    kathmandu = render(replace(data, timezone="Asia/Kathmandu"))
    assert kathmandu["/clock[0]"] == "local default-offset +05:45" and "/clock[1]" not in kathmandu


@pytest.mark.parametrize("password", ["two words", 'quo"te', "#hash"])
def test_a_value_that_is_not_one_word_is_refused(password: str) -> None:
    data = two_lines(CATALOG, "patton-sn4112", MAC)
    data = replace(data, lines={1: LINE_1, 2: replace(LINE_2, password=password)})
    with pytest.raises(RenderRefused, match="slot 2"):
        render(data)


async def test_a_gateway_fetches_its_file_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Patton owner")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", password="pw-two",
            auth_username="auth-two", registrar="udp:pbx-b.example.org:5070",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "patton-sn4112", account.id
        )
        await inventory.assign_line(session, MAC, first.id)
        await inventory.assign_line(session, MAC, second.id)
    ua = {"User-Agent": USER_AGENTS[0][0]}
    resp = await client.get(f"/{token}/{MAC}.cfg", headers=ua)
    assert resp.status == 200
    cfg = parse_cli(await resp.read())
    auth = "/authentication-service[0]/username"
    assert cfg[f"{auth}[0]"] == "auth-one password pw-one"
    assert cfg[f"{auth}[1]"] == "auth-two password pw-two"
    remotes = sorted(v for k, v in cfg.items() if k.endswith("/remote[0]"))
    assert remotes == ["pbx-a.example.net 5060", "pbx-b.example.org 5070"]
    profile = mode(cfg, "/profile", "provisioning PF_PROVISIONING_CONFIG")
    assert cfg[f"{profile}/location[0]"] == f"1 http://phones.test:8080/{token}/{MAC}.cfg"
