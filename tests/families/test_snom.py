"""Snom (3xx, 7xx, D-series): identification from real requests, and what the rendered general,
phone-specific and firmware setting files tell the phone (vendor-formats.md section 3)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from provisioning.devices.catalog import load_catalog
from provisioning.devices.identify import match_file, parse_user_agent
from provisioning.render.check import SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer, RenderRefused
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_1, LINE_2, parse_xml, two_lines

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["snom"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "000413922d24"
D785 = "snom-d785"
GENERAL = "snomD785.htm"
PHONE = "snomD785-000413922D24.htm"
FIRMWARE = "snomD785-firmware.xml"

# (User-Agent, model id or None, firmware or None, MAC or None).
USER_AGENTS = [
    # From the reference.
    ("Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24 SXM:0 UXM:0)", D785, "10.1.33.33", MAC),
    ("Mozilla/4.0 (compatible; snom320-SIP 8.4.18 1.1.3-s)", "snom-320", "8.4.18", None),
    ("Mozilla/4.0 (compatible; snom710-SIP 8.7.5.35 1.1.5-IFX-05.01.12 000413741767)", "snom-710", "8.7.5.35", "000413741767"),
    # A build date in parentheses before the MAC.
    ("Mozilla/4.0 (compatible; snomD785-SIP 10.1.169.16 2010.12-00001-gd311851f1 (Feb 25 2019 - 14:19:43) 00041396D9B4 SXM:0 UXM:0 UXMC:0)", D785, "10.1.169.16", "00041396d9b4"),
    # Other models and releases: Wazo snom common/common.py comments.
    ("Mozilla/4.0 (compatible; snom710-SIP 8.7.3.19 1.1.5-IFX-05.01.12)", "snom-710", "8.7.3.19", None),
    ("Mozilla/4.0 (compatible; snom760-SIP 8.7.3.19 2010.06)", "snom-760", "8.7.3.19", None),
    ("Mozilla/4.0 (compatible; snom320-SIP 6.5.20; snom320 jffs2 v3.36; snom320 linux 3.38)", "snom-320", "6.5.20", None),
    # Constructed in the D785's format (model token, version and MAC changed): they test the
    # pattern, they are not captures from a phone.
    ("Mozilla/4.0 (compatible; snomD715-SIP 10.1.54.13 2010.12-00004-g9ba52f5 000413A1B2C3 SXM:0 UXM:0)", "snom-d715", "10.1.54.13", "000413a1b2c3"),
    ("Mozilla/4.0 (compatible; snomD385-SIP 10.1.73.16 2010.12-00004-g9ba52f5 0004139F0A1B SXM:0 UXM:1)", "snom-d385", "10.1.73.16", "0004139f0a1b"),
    # Wazo common.py: the PA1 (issue 19).
    ("Mozilla/4.0 (compatible; snomPA1-SIP 8.4.35 1.1.3-s)", "snom-pa1", "8.4.35", None),
    # Wazo common_dect/common.py: an M-series DECT base (issue 19).
    ("Mozilla/4.0 (compatible; Snom M900 05.20.0001 000413b60680)", "snom-m900", "05.20.0001", "000413b60680"),
    # Models outside the catalog: a Snom all the same.
    ("Mozilla/4.0 (compatible; snom870-SIP 8.4.35 SPEAr300 SNOM 1.4)", None, "8.4.35", None),
    # Firmware before 6.5 says nothing but that it is a Snom.
    ("Mozilla/4.0 (compatible; snom lid 3605)", None, None, None),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str | None, firmware: str | None, mac: str | None) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family.name == "snom"
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac == mac


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Fanvil X4 2.10.2.6887 0c383e07e16c",
        "snom-provisioning-script/1.0",
    ],
)
def test_other_user_agents_are_not_snom(ua: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is None or info.family.name != "snom"


@pytest.mark.parametrize(
    ("name", "mac", "code"),
    [
        ("snomD785.htm", None, "D785"),
        ("snom320.htm", None, "320"),
        ("snomD785-000413922D24.htm", MAC, "D785"),
        ("snomD785-000413922d24.htm", MAC, "D785"),
        ("snom710-000413741767.htm", "000413741767", "710"),
        ("snomD785-firmware.xml", None, "D785"),
        # M-series: the device file Wazo's DECT plugin reads the MAC from.
        ("snomM700-000413B60680.htm", "000413b60680", "M700"),
        ("snomM700.htm", None, "M700"),
    ],
)
def test_file_names(name: str, mac: str | None, code: str) -> None:
    (match,) = [m for m in match_file(CATALOG, name) if m.family is FAMILY]
    assert match.mac == mac
    assert match.code == code


@pytest.mark.parametrize(
    "name", ["snomD785-000000000000.htm", "snomD785.xml", "snom.htm", "000413922D24.xml"]
)
def test_other_file_names_are_not_snom(name: str) -> None:
    assert all(m.family is not FAMILY for m in match_file(CATALOG, name))


def test_catalog() -> None:
    models = FAMILY.models
    assert {"snom-300", "snom-320", "snom-710", "snom-d120", "snom-d785"} <= set(models)
    # Identities from Wazo's snom plugin-info (firmware-10 models and the PA1); the firmware-8
    # 3xx/7xx and the D715 stay leads (family.toml).
    wazo = {
        "715": 4, "725": 12, "d120": 2, "d140": 2, "d150": 2, "d305": 4, "d315": 4, "d335": 12,
        "d345": 12, "d375": 12, "d385": 12, "d712": 4, "d713": 6, "d717": 6, "d735": 12,
        "d745": 12, "d765": 12, "d785": 12, "d810": 12, "d812": 12, "d815": 12, "d862": 8,
        "d865": 12, "d892": 12, "pa1": 1,
    }  # fmt: skip
    assert {k: models[f"snom-{k}"].slots for k in wazo} == wazo
    assert {m.id for m in models.values() if m.confirmed} == {f"snom-{k}" for k in wazo}
    # M-series DECT bases (Wazo's DECT plugin-info `lines`), not confirmed (family.toml).
    dect = {"m300": 20, "m400": 20, "m700": 1000, "m900": 1000}
    assert {k: models[f"snom-{k}"].slots for k in dect} == dect
    assert all(models[f"snom-{k}"].unwritten == ("transport",) for k in dect)
    assert all(1 <= m.slots <= 12 for m in models.values() if m.code[:1] != "M")
    assert all(m.code and m.ua_models == (m.code.upper(),) for m in models.values())
    assert FAMILY.notify_event == "check-sync;reboot=false"
    names = [(name, spec.secret) for name, spec in device_files(CATALOG, D785, MAC)]
    assert names == [(GENERAL, False), (PHONE, True), (FIRMWARE, False)]


def d785(lines: int = 2, **changes: str) -> DeviceData:
    data = sample_device(D785, 12, lines)
    return replace(data, mac=MAC, **changes)


def render(data: DeviceData, settings: Settings = SETTINGS) -> dict[str, str]:
    return {
        name: render_file(RENDERER, settings, data, spec).body.decode("utf-8")
        for name, spec in device_files(CATALOG, data.model_id, data.mac)
    }


def phone_settings(text: str) -> dict[tuple[str, str | None], str]:
    """`<phone-settings>` as {(name, idx): value}; each setting is provisioned read-only."""
    root = ET.fromstring(text)
    assert root.tag == "settings"
    (block,) = root
    assert block.tag == "phone-settings"
    found: dict[tuple[str, str | None], str] = {}
    for element in block:
        key = (element.tag, element.get("idx"))
        assert key not in found, f"{key} set twice"
        assert element.get("perm") == "R", key
        found[key] = element.text or ""
    return found


def test_identities() -> None:
    data = d785()
    config = phone_settings(render(data)[PHONE])
    for slot, transport in ((1, "tcp"), (2, "tls")):  # the sample's transports
        line = data.lines[slot]
        idx = str(slot)
        assert config["user_active", idx] == "on"
        assert config["user_realname", idx] == line.display_name
        assert config["user_idle_text", idx] == line.number
        assert config["user_name", idx] == line.user
        assert config["user_pname", idx] == line.auth_user
        assert config["user_pass", idx] == line.password
        assert config["user_host", idx] == "sip.example.net:5060"
        assert config["user_outbound", idx] == f"sip.example.net:5060;transport={transport}"
    for slot in range(3, 13):
        idx = str(slot)
        assert config["user_active", idx] == "off"
        for name in ("realname", "idle_text", "name", "pname", "pass", "host", "outbound"):
            assert config[f"user_{name}", idx] == ""
    assert not any(idx == "13" for _, idx in config)


def test_udp_and_other_port() -> None:
    data = d785(1)
    line = replace(data.lines[1], transport="udp", registrar_port=5080)
    config = phone_settings(render(replace(data, lines={1: line}))[PHONE])
    assert config["user_host", "1"] == "sip.example.net:5080"
    assert config["user_outbound", "1"] == "sip.example.net:5080;transport=udp"


def test_provisioning_and_polling() -> None:
    config = phone_settings(render(d785())[PHONE])
    # The device's folder URL: the phone asks for snomD785.htm, then snomD785-<MAC>.htm in it.
    assert config["setting_server", None] == f"http://prov.example.net/{SAMPLE_TOKEN}/"
    assert config["settings_refresh_timer", None] == str(SETTINGS.poll_interval)
    assert int(config["settings_refresh_timer", None]) <= 300


def test_timezone_and_language() -> None:
    files = render(d785())  # Europe/Paris, fr
    for name in (GENERAL, PHONE):
        config = phone_settings(files[name])
        assert config["timezone", None] == "FRA+1"
        assert config["language", None] == "Francais"
        assert config["web_language", None] == "Francais"
    rome = phone_settings(render(d785(timezone="Europe/Rome", language="de"))[PHONE])
    assert rome["timezone", None] == "ITA+1"
    assert rome["language", None] == "Deutsch"


def test_unknown_timezone_and_language_leave_the_phone_alone() -> None:
    config = phone_settings(render(d785(timezone="Asia/Tokyo", language="ja"))[PHONE])
    assert ("timezone", None) not in config
    assert ("language", None) not in config
    assert ("web_language", None) not in config


def test_general_and_firmware_files_carry_no_secret() -> None:
    data = d785(12)
    files = render(data)
    for name in (GENERAL, FIRMWARE):
        assert SAMPLE_TOKEN not in files[name]
        for line in data.lines.values():
            assert line.password not in files[name]
            assert line.user not in files[name]
    general = phone_settings(files[GENERAL])
    assert not any(tag.startswith("user_") or tag == "setting_server" for tag, _ in general)


def test_no_firmware_image() -> None:
    files = render(d785())
    config = phone_settings(files[PHONE])
    assert ("firmware_status", None) not in config
    assert ("update_policy", None) not in config
    assert list(ET.fromstring(files[FIRMWARE])) == []


def test_firmware_image(tmp_path: Path) -> None:
    (tmp_path / "snom").mkdir()
    for name in ("snomD785-10.1.54.13-SIP-r.bin", "snomD785-10.1.169.16-SIP-r.bin"):
        (tmp_path / "snom" / name).write_bytes(b"image")
    (tmp_path / "snom" / "snomD715-10.1.200.1-SIP-r.bin").write_bytes(b"other model")
    files = render(d785(), replace(SETTINGS, firmware_dir=tmp_path))
    config = phone_settings(files[PHONE])
    assert config["firmware_status", None] == f"http://prov.example.net/{SAMPLE_TOKEN}/{FIRMWARE}"
    assert config["update_policy", None] == "auto_update"
    root = ET.fromstring(files[FIRMWARE])
    assert root.tag == "firmware-settings"
    (firmware,) = root
    assert firmware.tag == "firmware"
    assert firmware.text == "http://prov.example.net/firmware/snom/snomD785-10.1.169.16-SIP-r.bin"


# --- M-series DECT bases (_dect.xml.j2; Wazo common_dect base.tpl)

M700 = "snom-m700"
DECT_MAC = "000413b60680"


def dect_settings(
    model_id: str, data: DeviceData | None = None
) -> dict[tuple[str, str | None], str]:
    data = data or two_lines(CATALOG, model_id, DECT_MAC)
    code = FAMILY.models[model_id].code
    files = render(data)
    assert set(files) == {
        f"snom{code}.htm",
        f"snom{code}-{DECT_MAC.upper()}.htm",
        f"snom{code}-firmware.xml",
    }
    parse_xml(files[f"snom{code}-{DECT_MAC.upper()}.htm"].encode("utf-8"))  # the strict parser
    return phone_settings(files[f"snom{code}-{DECT_MAC.upper()}.htm"])


@pytest.mark.parametrize("model_id", ["snom-m300", "snom-m400", M700, "snom-m900"])
def test_dect_two_lines_on_two_servers(model_id: str) -> None:
    config = dect_settings(model_id)
    # Servers numbered from 1 in slot order, one per (registrar, port); user_host by server.
    assert config["srv_sip_server_alias", "1"] == LINE_1.registrar_host
    assert config["user_host", "1"] == f"{LINE_1.registrar_host}:{LINE_1.registrar_port}"
    assert config["srv_sip_server_alias", "2"] == LINE_2.registrar_host
    assert config["user_host", "2"] == f"{LINE_2.registrar_host}:{LINE_2.registrar_port}"
    assert ("user_host", "3") not in config
    for slot, line in ((1, LINE_1), (2, LINE_2)):
        idx = str(slot)
        assert config["user_active", idx] == "on"
        assert config["user_realname", idx] == line.display_name
        assert config["user_name", idx] == line.user
        assert config["user_pname", idx] == line.auth_user
        assert config["user_pass", idx] == line.password
        # Identity N is handset N, registration code N on 4 digits, on its line's server.
        assert config["subscr_sip_hs_idx", idx] == idx
        assert config["subscr_dect_ac_code", idx] == f"{slot:04d}"
        assert config["subscr_sip_ua_data_server_id", idx] == idx
    # No desk-phone identity keys, no transport.
    assert not [k for k in config if k[0] in ("user_outbound", "user_idle_text")]
    slots = FAMILY.models[model_id].slots
    for slot in (3, slots):
        idx = str(slot)
        assert config["user_active", idx] == "off"
        for name in ("realname", "name", "pname", "pass"):
            assert config[f"user_{name}", idx] == ""
    assert ("user_active", str(slots + 1)) not in config
    # The device's token URL and the device-wide settings, as on the desk phones.
    assert config["setting_server", None] == f"http://prov.example.net/{SAMPLE_TOKEN}/"
    assert config["settings_refresh_timer", None] == "300"


def test_dect_lines_on_one_registrar_share_a_server() -> None:
    data = two_lines(CATALOG, M700, DECT_MAC)
    same = replace(
        LINE_2, registrar_host=LINE_1.registrar_host, registrar_port=LINE_1.registrar_port
    )
    config = dect_settings(M700, replace(data, lines={1: LINE_1, 5: same}))
    assert config["subscr_sip_ua_data_server_id", "1"] == "1"
    assert config["subscr_sip_ua_data_server_id", "5"] == "1"
    assert ("user_host", "2") not in config


def test_dect_eleven_registrars_are_refused() -> None:
    """Wazo's DECT plugin counts at most 10 SIP servers: an eleventh is a clear error."""
    data = two_lines(CATALOG, M700, DECT_MAC)
    lines = {
        slot: replace(LINE_1, registrar_host=f"pbx{slot}.example.net") for slot in range(1, 12)
    }
    spec = dict(device_files(CATALOG, M700, DECT_MAC))[f"snomM700-{DECT_MAC.upper()}.htm"]
    with pytest.raises(RenderRefused, match="11 different registrars"):
        render_file(RENDERER, SETTINGS, replace(data, lines=lines), spec)
    ten = {slot: line for slot, line in lines.items() if slot <= 10}
    render_file(RENDERER, SETTINGS, replace(data, lines=ten), spec)


def test_dect_golden() -> None:
    """The M-series layout, two lines on two servers (the generic golden files show a desk
    phone)."""
    name = f"snomM300-{DECT_MAC.upper()}.htm"
    body = render(two_lines(CATALOG, "snom-m300", DECT_MAC))[name]
    golden = Path(__file__).parent.parent / "golden" / "snom" / f"snom-m300-2-lines--{name}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body, encoding="utf-8")
    assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
    assert body == golden.read_text(encoding="utf-8"), f"{golden.name} differs"
