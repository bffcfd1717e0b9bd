"""Aastra / Mitel 67xxi and 68xxi: `key: value` files read through the strict parser, two lines
on two registrars, the common file, the token URL, time zone and the User-Agents of Wazo."""

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
from provisioning.render.files import device_files, render_file, spec_for
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_1, LINE_2, parse_colon, two_lines

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["aastra"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "00085d2374a9"

# Verbatim from Wazo plugins/wazo_aastra/common/common.py (`_extract_from_ua` comments).
USER_AGENTS = [
    ("Aastra6731i MAC:00-08-5D-23-74-29 V:3.2.0.70-SIP", "aastra-6731i", "3.2.0.70", "00085d237429"),
    ("Aastra6739i MAC:00-08-5D-13-CA-05 V:3.2.1.1013-SIP", "aastra-6739i", "3.2.1.1013", "00085d13ca05"),
    ("Aastra6735i MAC:00-08-5D-2E-A0-94 V:3.2.2.6038-SIP", "aastra-6735i", "3.2.2.6038", "00085d2ea094"),
    ("Aastra6737i MAC:00-08-5D-30-A6-CE V:3.2.2.6038-SIP", "aastra-6737i", "3.2.2.6038", "00085d30a6ce"),
    ("Aastra6863i MAC:00-08-5D-40-90-5F V:4.1.0.128-SIP", "aastra-6863i", "4.1.0.128", "00085d40905f"),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str, firmware: str, mac: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None and info.family is FAMILY
    assert info.model is not None and info.model.id == model
    assert (info.firmware, info.mac) == (firmware, mac)


def test_older_user_agent_names() -> None:
    # Wazo `_UA_MODELS_MAP`: 55i and 57i name the 6755i and 6757i.
    assert FAMILY.model_for_ua("57I") is FAMILY.models["aastra-6757i"]
    assert FAMILY.model_for_ua("55I") is FAMILY.models["aastra-6755i"]


def test_file_names_and_catalog() -> None:
    (own,) = [m for m in match_file(CATALOG, f"{MAC.upper()}.cfg") if m.family is FAMILY]
    assert own.mac == MAC and own.spec.lines and own.spec.secret
    assert spec_for(CATALOG, "aastra-6867i", [own]) is own.spec
    (common,) = [m for m in match_file(CATALOG, "aastra.cfg") if m.family is FAMILY]
    assert not common.spec.secret and not common.spec.lines
    assert FAMILY.file_names(MAC, FAMILY.models["aastra-6731i"]) == [
        f"{MAC.upper()}.cfg",
        "aastra.cfg",
    ]
    slots = {m.id: m.slots for m in FAMILY.models.values()}
    assert slots["aastra-6731i"] == 6 and slots["aastra-6757i"] == 9
    assert slots["aastra-6863i"] == 2 and slots["aastra-6869i"] == 24
    assert FAMILY.notify_event == "check-sync"
    assert all(m.unwritten == ("transport",) for m in FAMILY.models.values())
    assert not any(m.confirmed for m in FAMILY.models.values())


def render(
    data: DeviceData, name: str | None = None, settings: Settings = SETTINGS
) -> dict[str, str]:
    files = dict(device_files(CATALOG, data.model_id, data.mac))
    body = render_file(RENDERER, settings, data, files[name or f"{data.mac.upper()}.cfg"]).body
    return parse_colon(body)


def test_two_lines_on_two_registrars() -> None:
    data = two_lines(CATALOG, "aastra-6867i", MAC)
    cfg = render(data)
    for n, line in ((1, LINE_1), (2, LINE_2)):
        assert cfg[f"sip line{n} proxy ip"] == line.registrar_host
        assert cfg[f"sip line{n} registrar ip"] == line.registrar_host
        assert cfg[f"sip line{n} proxy port"] == str(line.registrar_port)
        assert cfg[f"sip line{n} registrar port"] == str(line.registrar_port)
        assert cfg[f"sip line{n} user name"] == line.user
        assert cfg[f"sip line{n} auth name"] == line.auth_user
        assert cfg[f"sip line{n} password"] == line.password
        assert cfg[f"sip line{n} screen name"] == line.display_name
        assert cfg[f"sip line{n} screen name 2"] == line.number
    # The second line really is elsewhere: another host, port and auth id.
    assert cfg["sip line1 registrar ip"] != cfg["sip line2 registrar ip"]
    assert cfg["sip line2 registrar port"] == "5071"
    assert cfg["sip line2 auth name"] == "auth-bob-a2"
    # Slots 3..24 are emptied; no transport key is written (declared unwritten).
    assert cfg["sip line3 user name"] == "" and cfg["sip line24 password"] == ""
    assert "sip line3 registrar port" not in cfg
    assert not any("transport" in key for key in cfg)


def test_a_hash_in_a_credential_is_refused_with_the_slot() -> None:
    data = two_lines(CATALOG, "aastra-6863i", MAC)
    data = replace(data, lines={1: data.lines[1], 2: replace(LINE_2, password="pw#2")})
    with pytest.raises(RenderRefused, match="slot 2"):
        render(data)


def test_token_url_recheck_time_zone_and_language() -> None:
    cfg = render(two_lines(CATALOG, "aastra-6863i", MAC))
    assert cfg["download protocol"] == "HTTP"
    assert (cfg["http server"], cfg["http port"]) == ("prov.example.net", "80")
    assert cfg["http path"] == SAMPLE_TOKEN
    assert cfg["auto resync mode"] == "1" and cfg["auto resync days"] == "0"
    # Europe/Paris: UTC+1 is 60 minutes EAST, written -60; EU rule, last Sundays.
    assert cfg["time zone name"] == "Custom" and cfg["time zone minutes"] == "-60"
    assert cfg["dst config"] == "3"
    assert (cfg["dst start month"], cfg["dst start week"], cfg["dst start hour"]) == (
        "3",
        "-1",
        "2",
    )
    assert (cfg["dst end month"], cfg["dst end week"], cfg["dst end hour"]) == ("10", "-1", "3")
    assert cfg["input language"] == "French"
    ny = render(replace(two_lines(CATALOG, "aastra-6863i", MAC), timezone="America/New_York"))
    assert ny["time zone minutes"] == "300"
    assert (ny["dst start week"], ny["dst end month"], ny["dst end week"]) == ("2", "11", "1")
    tokyo = render(replace(two_lines(CATALOG, "aastra-6863i", MAC), timezone="Asia/Tokyo"))
    assert tokyo["time zone minutes"] == "-540" and tokyo["dst config"] == "0"


def test_https_with_a_path_prefix() -> None:
    settings = replace(SETTINGS, public_url="https://example.net:8443/prov/")
    cfg = render(two_lines(CATALOG, "aastra-6863i", MAC), settings=settings)
    assert cfg["download protocol"] == "HTTPS"
    assert (cfg["https server"], cfg["https port"]) == ("example.net", "8443")
    assert cfg["https path"] == f"prov/{SAMPLE_TOKEN}"
    assert "http server" not in cfg


def test_common_file_is_public() -> None:
    data = two_lines(CATALOG, "aastra-6867i", MAC)
    files = dict(device_files(CATALOG, data.model_id, data.mac))
    body = render_file(RENDERER, SETTINGS, data, files["aastra.cfg"]).body
    cfg = parse_colon(body)
    assert cfg["auto resync mode"] == "1"
    for secret in (SAMPLE_TOKEN, LINE_1.password, LINE_2.password, LINE_1.user):
        assert secret.encode() not in body
    assert not any(key.startswith("sip line") for key in cfg)


async def test_a_phone_fetches_its_files_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """The real app and database: a 6731i with two lines asks for aastra.cfg and its own file
    with the User-Agent of Wazo's example and its token."""
    mac = "00085d237429"
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Aastra owner")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", password="pw-two",
            auth_username="auth-two", registrar="tls:pbx-b.example.org:5061",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, mac, "aastra-6731i", account.id
        )
        await inventory.assign_line(session, mac, first.id)
        await inventory.assign_line(session, mac, second.id)
    ua = {"User-Agent": "Aastra6731i MAC:00-08-5D-23-74-29 V:3.2.0.70-SIP"}
    common = await client.get(f"/{token}/aastra.cfg", headers=ua)
    assert common.status == 200
    assert "pw-one" not in await common.text()
    resp = await client.get(f"/{token}/{mac.upper()}.cfg", headers=ua)
    assert resp.status == 200
    cfg = parse_colon(await resp.read())
    assert cfg["sip line1 registrar ip"] == "pbx-a.example.net"
    assert cfg["sip line1 auth name"] == "auth-one" and cfg["sip line1 password"] == "pw-one"
    assert cfg["sip line2 registrar ip"] == "pbx-b.example.org"
    assert cfg["sip line2 registrar port"] == "5061" and cfg["sip line2 auth name"] == "auth-two"
    assert cfg["http path"] == token
