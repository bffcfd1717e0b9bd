"""Fanvil X-series: identification from real requests, and what the rendered `<sysConf>` file
tells the phone (vendor-formats.md section 7)."""

from __future__ import annotations

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

# (User-Agent, model id or None, firmware or None, MAC or None).
USER_AGENTS = [
    # From the reference.
    ("Fanvil X4 2.10.2.6887 0c383e07e16c", "fanvil-x4", "2.10.2.6887", MAC),
    ("Fanvil X6U Pro 0.0.10 0c383e2cd782", "fanvil-x6u_pro", "0.0.10", "0c383e2cd782"),
    ("Fanvil H2U-V2 2.12.0 0c383e32342e", None, "2.12.0", "0c383e32342e"),  # hotel phone
    ("Fanvil W620W 2.16.10 0c383e7dd216", None, "2.16.10", "0c383e7dd216"),  # DECT
    # The stray ")" some firmware appends.
    ("Fanvil X4U 2.12.16.17 0c383e1a2b3c)", X4U, "2.12.16.17", "0c383e1a2b3c"),
    # Same format, other models and releases (seen in Wazo's plugin and in the field).
    ("Fanvil X5U-V2 2.12.16.17 0c383e557eb1", None, "2.12.16.17", "0c383e557eb1"),
    ("Fanvil X3S 2.10.2.6887 0c383e2b29e6", "fanvil-x3s", "2.10.2.6887", "0c383e2b29e6"),
    ("Fanvil X1SP 2.10.1.6585 00a8590c0d0e", "fanvil-x1s", "2.10.1.6585", "00a8590c0d0e"),
    ("Fanvil X6U 2.12.16.17 0c383e40a1b2", "fanvil-x6u", "2.12.16.17", "0c383e40a1b2"),
    ("Fanvil X7C Pro 2.12.16.17 0c383e55aa01", "fanvil-x7c", "2.12.16.17", "0c383e55aa01"),
    ("Fanvil X210 2.4.5.2 0c383e123456", "fanvil-x210", "2.4.5.2", "0c383e123456"),
    ("Fanvil V67 2.6.6.187 0c383e2b29e6", None, "2.6.6.187", "0c383e2b29e6"),
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
    assert models[X4U].confirmed  # the only line count the reference gives
    assert [m.id for m in models.values() if m.confirmed] == [X4U]
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
    assert settings["FlashMode"] == "2"
    assert int(settings["FlashInterval"] or 0) * 60 <= SETTINGS.poll_interval
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
