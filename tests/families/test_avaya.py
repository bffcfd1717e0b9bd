"""Avaya 1220 IP / 1230 IP (SIP firmware): `KEY value` files read through the strict parser
(lines < 80 characters), the model file's chain to DeviceConfig.cfg and SIP<MAC>.cfg, the one
line, refusals, the User-Agents of Wazo (a control byte inside)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.devices.identify import clean_user_agent, match_file, parse_user_agent
from provisioning.render.check import SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer, RenderRefused
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_2, parse_spaced

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["avaya"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0024002b3c4d"

# Verbatim from Wazo plugins/wazo_avaya/common/common.py (`_extract_from_ua` comments).
USER_AGENTS = [
    ("AVAYA/SIP12x0\x17/04.00.04.00", "04.00.04.00"),
    ("AVAYA/SIP12x0\x16/04.00.04.00", "04.00.04.00"),
    ("AVAYA/SIP12x0\x14/04.00.04.00", "04.00.04.00"),
    ("AVAYA/SIP12x0\xff/04.01.13.00", "04.01.13.00"),
]


@pytest.mark.parametrize(("ua", "firmware"), USER_AGENTS)
def test_user_agents_raw_and_cleaned(ua: str, firmware: str) -> None:
    for seen in (ua, clean_user_agent(ua)):
        info = parse_user_agent(CATALOG, seen)
        assert info is not None and info.family is FAMILY, repr(seen)
        # The User-Agent names no model: the requested file name does (1220SIP.cfg).
        assert info.model is None and info.firmware == firmware


def test_file_names_and_catalog() -> None:
    (own,) = [m for m in match_file(CATALOG, f"SIP{MAC.upper()}.cfg") if m.family is FAMILY]
    assert own.mac == MAC and own.spec.lines and own.spec.secret
    (model_file,) = [m for m in match_file(CATALOG, "1230SIP.cfg") if m.family is FAMILY]
    assert model_file.code == "1230" and not model_file.spec.secret
    (device_config,) = [m for m in match_file(CATALOG, "DeviceConfig.cfg") if m.family is FAMILY]
    assert not device_config.spec.secret
    model = FAMILY.models["avaya-1220"]
    assert FAMILY.file_names(MAC, model) == [
        f"SIP{MAC.upper()}.cfg",
        "1220SIP.cfg",
        "DeviceConfig.cfg",
    ]
    assert {m.slots for m in FAMILY.models.values()} == {1}
    assert FAMILY.notify_event == "check-sync"


def device(used: int = 1) -> DeviceData:
    return replace(sample_device("avaya-1220", 1, used), mac=MAC)


def render(data: DeviceData, name: str | None = None) -> dict[str, str]:
    files = dict(device_files(CATALOG, data.model_id, data.mac))
    spec = files[name or f"SIP{data.mac.upper()}.cfg"]
    return parse_spaced(render_file(RENDERER, SETTINGS, data, spec).body)


def test_the_line() -> None:
    data = replace(device(), lines={1: LINE_2})
    cfg = render(data)
    assert cfg["SIP_DOMAIN1"] == cfg["SERVER_IP1_1"] == "pbx-b.example.org"
    assert cfg["SERVER_PORT1_1"] == cfg["SERVER_PORT1_2"] == "5071"
    assert cfg["SERVER_IP1_2"] == "pbx-b.example.org"  # never 0.0.0.0
    assert cfg["AUTOLOGIN_ENABLE"] == "USE_AUTOLOGIN_ID"
    assert cfg["AUTOLOGIN_AUTHID_KEY01"] == "auth-bob-a2"
    assert cfg["AUTOLOGIN_ID_KEY01"] == "bob-u2@pbx-b.example.org"
    assert cfg["AUTOLOGIN_PASSWD_KEY01"] == "pw-bob-p2"
    assert cfg["TIMEZONE_OFFSET"] == "3600"  # Europe/Paris, standard time
    assert render(replace(data, timezone="America/New_York"))["TIMEZONE_OFFSET"] == "-18000"


def test_an_ipv6_registrar_takes_brackets_only_in_the_user_at_domain() -> None:
    v6 = replace(device(), lines={1: replace(LINE_2, registrar_host="2001:db8::10")})
    cfg = render(v6)
    assert cfg["AUTOLOGIN_ID_KEY01"] == "bob-u2@[2001:db8::10]"
    assert cfg["SERVER_IP1_1"] == cfg["SIP_DOMAIN1"] == "2001:db8::10"


def test_no_line_logs_nobody_in() -> None:
    cfg = render(device(0))
    assert cfg == {"TIMEZONE_OFFSET": "3600", "AUTOLOGIN_ENABLE": "NO"}


def test_a_line_the_phone_could_not_read_is_refused() -> None:
    long = replace(device(), lines={1: replace(LINE_2, password="p" * 70)})
    with pytest.raises(RenderRefused, match="AUTOLOGIN_PASSWD_KEY01"):
        render(long)
    empty = replace(device(), lines={1: replace(LINE_2, password="")})
    with pytest.raises(RenderRefused, match="empty"):
        render(empty)


def test_the_model_file_chains_to_device_config_and_the_mac_file() -> None:
    cfg = render(device(), "1220SIP.cfg")
    assert cfg["DEVICE_CONFIG/FILENAME"] == "DeviceConfig.cfg"
    assert cfg["DEVICE_CONFIG/DOWNLOAD_MODE"] == cfg["USER_CONFIG/DOWNLOAD_MODE"] == "FORCED"
    assert cfg["USER_CONFIG/PROTOCOL"] == "HTTP"
    # [USER_CONFIG] names no file: the phone asks for its own SIP<MAC>.cfg.
    assert "USER_CONFIG/FILENAME" not in cfg
    for name in ("1220SIP.cfg", "DeviceConfig.cfg"):
        files = dict(device_files(CATALOG, "avaya-1220", MAC))
        body = render_file(RENDERER, SETTINGS, device(), files[name]).body
        assert SAMPLE_TOKEN.encode() not in body and b"auth1" not in body


async def test_a_phone_fetches_its_files_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Avaya owner")
        line = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, MAC, "avaya-1220", account.id
        )
        await inventory.assign_line(session, MAC, line.id)
    ua = {"User-Agent": "AVAYA/SIP12x0\xff/04.01.13.00"}
    for name in ("1220SIP.cfg", "DeviceConfig.cfg"):
        resp = await client.get(f"/{token}/{name}", headers=ua)
        assert resp.status == 200, name
        parse_spaced(await resp.read())
    resp = await client.get(f"/{token}/SIP{MAC.upper()}.cfg", headers=ua)
    assert resp.status == 200
    cfg = parse_spaced(await resp.read())
    assert cfg["SERVER_IP1_1"] == "pbx-a.example.net" and cfg["SERVER_PORT1_1"] == "5060"
    assert cfg["AUTOLOGIN_AUTHID_KEY01"] == "auth-one"
    assert cfg["AUTOLOGIN_PASSWD_KEY01"] == "pw-one"
