"""Fanvil X-series: identification from real requests, and what the rendered `<sysConf>` or
`<VOIP_CONFIG_FILE>` file tells the phone (vendor-formats.md section 7, fanvil/REFERENCES.md)."""

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
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["fanvil"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0c383e07e16c"
X4U = "fanvil-x4u"
CFG = f"{MAC}.cfg"
GOLDEN = Path(__file__).parent.parent / "golden" / "fanvil"

# (User-Agent, model id or None, firmware or None, MAC or None).
USER_AGENTS = [
    # From the reference.
    ("Fanvil X4 2.10.2.6887 0c383e07e16c", "fanvil-x4", "2.10.2.6887", MAC),
    ("Fanvil X6U Pro 0.0.10 0c383e2cd782", "fanvil-x6u_pro", "0.0.10", "0c383e2cd782"),
    ("Fanvil H2U-V2 2.12.0 0c383e32342e", "fanvil-h2u_v2", "2.12.0", "0c383e32342e"),
    ("Fanvil W620W 2.16.10 0c383e7dd216", "fanvil-w620w", "2.16.10", "0c383e7dd216"),
    # Wazo's fanvil common.py (issue 19: V, i series).
    ("Fanvil V67 2.6.6.187 0c383e2b29e6", "fanvil-v67", "2.6.6.187", "0c383e2b29e6"),
    ("Fanvil V65 2.12.2.4 0c383e38e123", "fanvil-v65", "2.12.2.4", "0c383e38e123"),
    ("Fanvil i10SV 2.12.10.1 0c383e2397f4", "fanvil-i10sv", "2.12.10.1", "0c383e2397f4"),
    ("Fanvil i53W 2.12.9 0c383e10a440", "fanvil-i53w", "2.12.9", "0c383e10a440"),
    # The stray ")" some firmware appends.
    ("Fanvil X4U 2.12.16.17 0c383e1a2b3c)", X4U, "2.12.16.17", "0c383e1a2b3c"),
    # Wazo's common.py: a hardware variant outside the catalog (its image is not known).
    ("Fanvil X5U-V2 2.12.16.17 0c383e557eb1", None, "2.12.16.17", "0c383e557eb1"),
    # Constructed in the reference's format (model token, version and MAC changed): they test
    # the pattern, they are not captures from a phone.
    ("Fanvil X3S 2.10.2.6887 0c383e2b29e6", "fanvil-x3s", "2.10.2.6887", "0c383e2b29e6"),
    ("Fanvil X1SP 2.10.1.6585 00a8590c0d0e", "fanvil-x1s", "2.10.1.6585", "00a8590c0d0e"),
    ("Fanvil X6U 2.12.16.17 0c383e40a1b2", "fanvil-x6u", "2.12.16.17", "0c383e40a1b2"),
    ("Fanvil X7C Pro 2.12.16.17 0c383e55aa01", "fanvil-x7c", "2.12.16.17", "0c383e55aa01"),
    ("Fanvil X210 2.4.5.2 0c383e123456", "fanvil-x210", "2.4.5.2", "0c383e123456"),
    # Without a MAC: the family and model all the same.
    ("Fanvil X4U 2.12.16.17", X4U, "2.12.16.17", None),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str | None, firmware: str | None, mac: str | None) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family.name == "fanvil"
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac == mac


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24)",
        "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37",
        "Fanvil",
        "FanvilX4 2.10.2.6887 0c383e07e16c",
    ],
)
def test_other_user_agents_are_not_fanvil(ua: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is None or info.family.name != "fanvil"


@pytest.mark.parametrize(
    ("name", "mac"),
    [("0c383e07e16c.cfg", MAC), ("0C383E07E16C.cfg", MAC), ("00a8590c0d0e.cfg", "00a8590c0d0e")],
)
def test_file_names(name: str, mac: str) -> None:
    # Other families share `<mac>.cfg`; the device record picks the family, not the name.
    (match,) = [m for m in match_file(CATALOG, name) if m.family is FAMILY]
    assert match.mac == mac


@pytest.mark.parametrize(
    "name", ["000000000000.cfg", "f0X4hw1.100.cfg", "0c383e07e16c.xml", "0c383e07e16c.cfg.bak"]
)
def test_other_file_names_are_not_fanvil(name: str) -> None:
    assert all(m.family is not FAMILY for m in match_file(CATALOG, name))


def test_catalog() -> None:
    models = FAMILY.models
    assert models[X4U].slots == 12
    assert models[X4U].confirmed
    # Line counts in the references: X4U 12, X4 4 (FusionPBX x4); the X3S's 2 (x3sp) stays a
    # lead, its X3SG variant having a <sysConf> template too.
    assert (models["fanvil-x4"].slots, models["fanvil-x3s"].slots) == (4, 2)
    # Issue 19: the V, H, i and W series, line counts from Wazo's plugin-info (family.toml).
    added = {
        "v61g": 4, "v61w": 4, "v62": 6, "v62g": 12, "v62w": 12, "v62_pro": 12, "v63": 6,
        "v64": 12, "v65": 20, "v66": 20, "v66_pro": 20, "v67": 20, "h2u_v2": 2, "i10s": 2,
        "i10sv": 2, "i10sd": 2, "i16s": 2, "i16sv": 2, "i51w": 4, "i52w": 4, "i53w": 6,
        "i61": 2, "i62": 2, "i63": 2, "i64": 2, "w610w": 4, "w611w": 4, "w620w": 8,
    }  # fmt: skip
    assert {k: models[f"fanvil-{k}"].slots for k in added} == added
    # The X-series models whose count Wazo's serie_x plugin-info gives too.
    wazo_x = ["x4u_pro", "x5u", "x5u_pro", "x6u", "x6u_pro", "x7", "x7c", "x210"]
    confirmed = [m.id for m in models.values() if m.confirmed]
    assert confirmed == ["fanvil-x4", X4U] + [f"fanvil-{k}" for k in wazo_x + list(added)]
    assert FAMILY.notify_event == "check-sync"
    assert [(name, spec.secret) for name, spec in device_files(CATALOG, X4U, MAC)] == [(CFG, True)]


def x4u(lines: int = 2, **changes: str) -> DeviceData:
    data = sample_device(X4U, 12, lines)
    return replace(data, mac=MAC, **changes)


def render(data: DeviceData, settings: Settings = SETTINGS) -> ET.Element:
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    assert name == CFG
    root = ET.fromstring(render_file(RENDERER, settings, data, spec).body)
    assert root.tag == "sysConf"
    return root


def lines_of(root: ET.Element) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for line in root.findall("sip/line"):
        slot = int(line.attrib["index"])
        assert slot not in found
        found[slot] = {child.tag: child.text or "" for child in line}
    return found


def test_lines() -> None:
    data = x4u()
    lines = lines_of(render(data))
    assert sorted(lines) == list(range(1, 13))
    for slot, transport in ((1, "1"), (2, "3")):  # the sample's tcp and tls
        line = data.lines[slot]
        assert lines[slot] == {
            "EnableReg": "1",
            "DisplayName": line.display_name,
            "SipName": line.number,
            "PhoneNumber": line.user,
            "RegisterUser": line.auth_user,
            "RegisterPswd": line.password,
            "RegisterAddr": "sip.example.net",
            "RegisterPort": "5060",
            "Transport": transport,
            "ProxyAddr": "",
        }
    for slot in range(3, 13):
        assert lines[slot]["EnableReg"] == "0"
        assert lines[slot]["Transport"] == "0"
        emptied = {k: v for k, v in lines[slot].items() if k not in ("EnableReg", "Transport")}
        assert set(emptied) == set(lines[1]) - {"EnableReg", "Transport"}
        assert set(emptied.values()) == {""}


def test_udp_transport() -> None:
    data = x4u(1)
    line = replace(data.lines[1], transport="udp", registrar_port=5080)
    (first, *_) = lines_of(render(replace(data, lines={1: line}))).values()
    assert (first["Transport"], first["RegisterPort"]) == ("0", "5080")


def test_provisioning_and_polling() -> None:
    ap = render(x4u()).find("ap")
    assert ap is not None
    settings = {child.tag: child.text for child in ap}
    # The server part of the device's token URL, then the file: `<url>/<mac>.cfg`.
    assert settings["FlashServerIP"] == f"http://prov.example.net/{SAMPLE_TOKEN}"
    assert settings["FlashFileName"] == CFG
    assert settings["FlashProtocol"] == "4"
    # At a fixed interval, the shortest (1: a minute or an hour, the unit is unconfirmed).
    assert settings["FlashMode"] == "2"
    assert settings["FlashInterval"] == "1"
    assert settings["DownloadCommonConf"] == "0"
    assert settings["DownloadDeviceConf"] == "1"
    https = render(x4u(), replace(SETTINGS, public_url="https://prov.example.net:8443"))
    assert https.findtext("ap/FlashProtocol") == "5"
    assert https.findtext("ap/FlashServerIP") == f"https://prov.example.net:8443/{SAMPLE_TOKEN}"


@pytest.mark.parametrize(
    ("timezone", "quarters"),
    [("Europe/Paris", "4"), ("Europe/London", "0"), ("America/New_York", "-20"),
     ("Asia/Kolkata", "22"), ("America/St_Johns", "-14")],
)  # fmt: skip
def test_timezone(timezone: str, quarters: str) -> None:
    root = render(x4u(timezone=timezone))
    assert root.findtext("phone/date/TimeZone") == quarters
    assert root.findtext("phone/date/EnableSNTP") == "1"
    assert root.findtext("phone/date/SNTPServer")


def test_language() -> None:
    assert render(x4u()).findtext("phone/display/DefaultLanguage") == "fr"
    assert render(x4u(language="de")).findtext("phone/display/DefaultLanguage") == "de"
    assert render(x4u(language="ja")).find("phone/display/DefaultLanguage") is None


def test_no_firmware_image() -> None:
    assert render(x4u()).find("AUTOUPDATE_CONFIG_MODULE") is None


def test_firmware_image(tmp_path: Path) -> None:
    (tmp_path / "fanvil").mkdir()
    for name in (
        "x4upro-fanvil-release-ff01-6903-2.12.16.17-krnvUT2023-05-05-18.33.33.z",
        "x4upro-fanvil-release-ff01-6903-2.12.20.3-krnvUT2024-01-10-10.00.00.z",
        "x6upro-fanvil-release-ff01-6916-2.14.0.1-krnvUT2024-06-01-10.00.00.z",
    ):
        (tmp_path / "fanvil" / name).write_bytes(b"image")
    root = render(x4u(), replace(SETTINGS, firmware_dir=tmp_path))
    assert root.findtext("AUTOUPDATE_CONFIG_MODULE/Auto_Image_URL") == (
        "http://prov.example.net/firmware/fanvil/"
        "x4upro-fanvil-release-ff01-6903-2.12.20.3-krnvUT2024-01-10-10.00.00.z"
    )


# The older format: X4 and X3S (Wazo X4.tpl / X3S.tpl -> base.tpl; FusionPBX x4, x3sp).
OLD_FORMAT = ["fanvil-x4", "fanvil-x3s"]


def render_old(data: DeviceData, settings: Settings = SETTINGS) -> ET.Element:
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    assert name == CFG
    root = ET.fromstring(render_file(RENDERER, settings, data, spec).body)
    assert root.tag == "VOIP_CONFIG_FILE"
    assert root.findtext("version") == "2.0002"
    return root


def old_lines_of(root: ET.Element) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for entry in root.findall("SIP_CONFIG_MODULE/SIP_Line_List/SIP_Line_List_Entry"):
        fields = {child.tag: child.text or "" for child in entry}
        assert fields["ID"] not in found
        found[fields.pop("ID")] = fields
    return found


def old(
    model_id: str, lines: tuple[int, ...], language: str = "fr", timezone: str = "Europe/Paris"
) -> DeviceData:
    model = CATALOG.model(model_id)
    assert model is not None
    data = sample_device(model_id, model.slots, model.slots)
    kept = {s: data.lines[s] for s in lines}
    return replace(data, mac=MAC, lines=kept, language=language, timezone=timezone)


@pytest.mark.parametrize("model_id", OLD_FORMAT)
def test_old_format_lines(model_id: str) -> None:
    # Slots 1 and 2 hold two different lines (tcp and tls in the sample).
    data = old(model_id, (1, 2))
    lines = old_lines_of(render_old(data))
    slots = CATALOG.models[model_id].slots
    assert list(lines) == [f"SIP{n}" for n in range(1, slots + 1)]
    for slot, transport in ((1, "1"), (2, "2")):  # TLS is 2 in this format
        line = data.lines[slot]
        assert lines[f"SIP{slot}"] == {
            "Enable_Reg": "1",
            "Display_Name": line.display_name,
            "Phone_Number": line.user,
            "Register_User": line.auth_user,
            "Register_Pswd": line.password,
            "Register_Addr": "sip.example.net",
            "Register_Port": "5060",
            "Transport": transport,
            "Proxy_Addr": "",
        }
    assert lines["SIP1"]["Register_Pswd"] != lines["SIP2"]["Register_Pswd"]
    for slot in range(3, slots + 1):
        fields = lines[f"SIP{slot}"]
        assert (fields.pop("Enable_Reg"), fields.pop("Transport")) == ("0", "0")
        assert set(fields.values()) == {""}


def test_old_format_second_slot_only() -> None:
    data = old("fanvil-x3s", (2,))
    lines = old_lines_of(render_old(data))
    assert lines["SIP1"]["Enable_Reg"] == "0" and lines["SIP1"]["Register_Pswd"] == ""
    assert lines["SIP2"]["Register_User"] == data.lines[2].auth_user
    # No <sysConf> key leaks into the old format.
    root = render_old(data)
    assert root.find("sip") is None and root.find("ap") is None


@pytest.mark.parametrize("model_id", OLD_FORMAT)
def test_old_format_provisioning(model_id: str) -> None:
    root = render_old(old(model_id, (1,)))
    auto = {child.tag: child.text for child in root.findall("AUTOUPDATE_CONFIG_MODULE/*")}
    assert auto == {
        "Download_Server_IP": f"http://prov.example.net/{SAMPLE_TOKEN}",
        "Config_File_Name": CFG,
        "Download_Protocol": "2",
        "Download_Mode": "2",
        "Download_Interval": "1",
        "Download_CommonConf": "0",
        "Download_DeviceConf": "1",
    }
    https = render_old(
        old(model_id, (1,)), replace(SETTINGS, public_url="https://prov.example.net")
    )
    assert https.findtext("AUTOUPDATE_CONFIG_MODULE/Download_Protocol") == "5"
    glob = root.find("GLOBAL_CONFIG_MODULE")
    assert glob is not None
    assert (glob.findtext("Enable_SNTP"), glob.findtext("Time_Zone")) == ("1", "4")
    assert glob.findtext("Language") == "4"  # fr, Wazo's number for the older models
    english = render_old(old(model_id, (1,), language="en", timezone="America/New_York"))
    assert english.findtext("GLOBAL_CONFIG_MODULE/Language") == "0"
    assert english.findtext("GLOBAL_CONFIG_MODULE/Time_Zone") == "-20"
    assert (
        render_old(old(model_id, (1,), language="ja")).find("GLOBAL_CONFIG_MODULE/Language") is None
    )


def test_old_format_firmware_image(tmp_path: Path) -> None:
    model = replace(CATALOG.models["fanvil-x4"], firmware="x4-*.z")
    folder = tmp_path / "fanvil"
    folder.mkdir()
    (folder / "x42.14.0.7386T20210730173312.z").write_bytes(b"image")
    (folder / "x4-2.14.0.z").write_bytes(b"image")
    catalog = replace(CATALOG, families={**CATALOG.families, "fanvil": replace(
        FAMILY, models={**FAMILY.models, model.id: model})})  # fmt: skip
    data = old("fanvil-x4", (1,))
    ((_, spec),) = device_files(catalog, data.model_id, data.mac)
    body = render_file(Renderer(catalog), replace(SETTINGS, firmware_dir=tmp_path), data, spec).body
    assert ET.fromstring(body).findtext("AUTOUPDATE_CONFIG_MODULE/Auto_Image_URL") == (
        "http://prov.example.net/firmware/fanvil/x4-2.14.0.z"
    )


@pytest.mark.parametrize("model_id", ["fanvil-x1s", "fanvil-x3u", "fanvil-x4u", "fanvil-x7c"])
def test_other_models_keep_sysconf(model_id: str) -> None:
    model = CATALOG.models[model_id]
    render(replace(sample_device(model_id, model.slots, 1), mac=MAC))


def test_old_format_golden() -> None:
    """The generic golden files show the X5U (<sysConf>); this one the X4's older format."""
    data = sample_device("fanvil-x4", 4, 4)
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    body = render_file(RENDERER, SETTINGS, data, spec).body.decode("utf-8")
    golden = GOLDEN / f"fanvil-x4-full--{name}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body, encoding="utf-8")
    assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
    assert body == golden.read_text(encoding="utf-8"), f"{golden.name} differs"
