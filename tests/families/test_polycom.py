"""Polycom / Poly (SoundPoint IP, VVX): identification from real requests, and what the rendered
master and per-phone files tell the phone (vendor-formats.md section 2)."""

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
FAMILY = CATALOG.families["polycom"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0004f200106c"
VVX400 = "polycom-vvx400"

# (User-Agent, model id or None, firmware or None). Polycom User-Agents never carry the MAC.
USER_AGENTS = [
    # From the reference.
    ("FileTransport PolycomSoundPointIP-SPIP_335-UA/3.2.1.0078", "polycom-spip335", "3.2.1.0078"),
    ("FileTransport PolycomVVX-VVX_101-UA/5.4.3.1014 Type/Application", "polycom-vvx101", "5.4.3.1014"),
    ("FileTransport PolycomVVX-VVX_400-UA/4.1.4.7430 Type/Application", VVX400, "4.1.4.7430"),
    ("FileTransport PolycomSoundStationIP-SSIP_6000-UA/4.0.4.2906 Type/Application", "polycom-ssip6000", "4.0.4.2906"),
    # The Updater's own version is not the application's: no firmware learnt from it.
    ("FileTransport PolycomSoundStationIP-SSIP_6000-UA/5.0.3.1667 Type/Updater", "polycom-ssip6000", None),
    # Other models and releases in the reference's format; SPIP_450 3.2.3.1734 is Wazo's
    # (common.py), the others constructed (model token and version changed): they test the
    # pattern, they are not captures from a phone.
    ("FileTransport PolycomSoundPointIP-SPIP_450-UA/3.2.3.1734", "polycom-spip450", "3.2.3.1734"),
    ("FileTransport PolycomSoundPointIP-SPIP_670-UA/4.0.15.1009 Type/Application", "polycom-spip670", "4.0.15.1009"),
    ("FileTransport PolycomVVX-VVX_150-UA/6.3.1.8427 Type/Application", "polycom-vvx150", "6.3.1.8427"),
    ("FileTransport PolycomVVX-VVX_250-UA/6.4.6.2175 Type/Application", "polycom-vvx250", "6.4.6.2175"),
    ("FileTransport PolycomVVX-VVX_311-UA/5.9.6.2327 Type/Application", "polycom-vvx311", "5.9.6.2327"),
    ("FileTransport PolycomVVX-VVX_411-UA/5.9.5.0614 Type/Application", "polycom-vvx411", "5.9.5.0614"),
    ("FileTransport PolycomVVX-VVX_501-UA/6.3.0.14929 Type/Application", "polycom-vvx501", "6.3.0.14929"),
    ("FileTransport PolycomVVX-VVX_601-UA/6.4.3.0938 Type/Updater", "polycom-vvx601", None),
    ("FileTransport PolycomVVX-VVX_1500-UA/5.9.6.2327 Type/Application", "polycom-vvx1500", "5.9.6.2327"),
    ("FileTransport PolycomRealPresenceTrio-Trio_8800-UA/5.9.1.10419 Type/Application", None, "5.9.1.10419"),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware"), USER_AGENTS)
def test_user_agents(ua: str, model: str | None, firmware: str | None) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family.name == "polycom"
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac is None


@pytest.mark.parametrize(
    "ua",
    [
        "PolycomVVX-VVX_400-UA/5.9.5.0614",  # the SIP User-Agent, not the provisioning one
        "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37",
        "FileTransport Polycom",
        "curl/8.5.0",
    ],
)
def test_other_user_agents_are_not_polycom(ua: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is None or info.family.name != "polycom"


@pytest.mark.parametrize(
    ("name", "mac"),
    [
        ("0004f200106c.cfg", MAC),
        ("0004F200106C.cfg", MAC),
        ("0004f200106c-phone.cfg", MAC),
        ("0004F200106C-phone.cfg", MAC),
        ("000000000000.cfg", None),
    ],
)
def test_file_names(name: str, mac: str | None) -> None:
    (match,) = [m for m in match_file(CATALOG, name) if m.family is FAMILY]
    assert match.mac == mac


@pytest.mark.parametrize(
    "name",
    ["000000000000-phone.cfg", "0004f200106c-web.cfg", "0004f200106c.cfg.bak", "sip.ld"],
)
def test_other_file_names_are_not_polycom(name: str) -> None:
    assert all(m.family is not FAMILY for m in match_file(CATALOG, name))


# Lines per model: the reference's datasheet table, the same as Wazo's plugin-info.
SLOTS = {
    "spip321": 2, "spip331": 2, "spip335": 2, "spip450": 3, "spip550": 4, "spip560": 4,
    "spip650": 6, "spip670": 6, "vvx101": 1, "vvx150": 2, "vvx201": 2, "vvx250": 4,
    "vvx300": 6, "vvx301": 6, "vvx310": 6, "vvx311": 6, "vvx350": 6, "vvx400": 12,
    "vvx401": 12, "vvx410": 12, "vvx411": 12, "vvx450": 12, "vvx500": 12, "vvx501": 12,
    "vvx600": 16, "vvx601": 16, "vvx1500": 6,
    # SoundStation IP (issue 19): one line each (Wazo v3_2_4B plugin-info).
    "ssip5000": 1, "ssip6000": 1, "ssip7000": 1,
}  # fmt: skip


def test_catalog() -> None:
    assert {m.id.removeprefix("polycom-"): m.slots for m in FAMILY.models.values()} == SLOTS
    # Every line count is the reference's datasheet value and Wazo's plugin-info `lines`.
    assert all(m.confirmed for m in FAMILY.models.values())
    assert FAMILY.notify_event == "check-sync"
    names = [(name, spec.secret) for name, spec in device_files(CATALOG, VVX400, MAC)]
    assert names == [(f"{MAC}.cfg", False), ("000000000000.cfg", False), (f"{MAC}-phone.cfg", True)]


def vvx400(lines: int = 2, **changes: str) -> DeviceData:
    data = sample_device(VVX400, 12, lines)
    return replace(data, mac=MAC, **changes)


def render(data: DeviceData, settings: Settings = SETTINGS) -> dict[str, str]:
    return {
        name: render_file(RENDERER, settings, data, spec).body.decode("utf-8")
        for name, spec in device_files(CATALOG, data.model_id, data.mac)
    }


def settings_of(text: str) -> dict[str, str]:
    """Every attribute of the `<polycomConfig>` document: the phone reads them all as settings."""
    root = ET.fromstring(text)
    assert root.tag == "polycomConfig"
    found: dict[str, str] = {}
    for element in root.iter():
        for key, value in element.attrib.items():
            assert key not in found, f"{key} set twice"
            found[key] = value
    return found


def test_lines() -> None:
    data = vvx400()
    lines = dict(data.lines)
    lines[1] = replace(lines[1], transport="udp")
    config = settings_of(render(replace(data, lines=lines))[f"{MAC}-phone.cfg"])
    for slot, transport in ((1, "UDPOnly"), (2, "TLS")):
        line = lines[slot]
        assert config[f"reg.{slot}.address"] == line.user
        assert config[f"reg.{slot}.displayName"] == line.display_name
        assert config[f"reg.{slot}.label"] == line.number
        assert config[f"reg.{slot}.auth.userId"] == line.auth_user
        assert config[f"reg.{slot}.auth.password"] == line.password
        assert config[f"reg.{slot}.server.1.address"] == line.registrar_host
        assert config[f"reg.{slot}.server.1.port"] == str(line.registrar_port)
        assert config[f"reg.{slot}.server.1.transport"] == transport
        assert config[f"reg.{slot}.server.1.register"] == "1"
    for slot in range(3, 13):
        assert config[f"reg.{slot}.address"] == ""
        assert config[f"reg.{slot}.auth.userId"] == ""
        assert config[f"reg.{slot}.auth.password"] == ""
        assert config[f"reg.{slot}.server.1.address"] == ""
        assert config[f"reg.{slot}.server.1.register"] == "0"
    assert not any(key.startswith("reg.13.") for key in config)


def test_tcp_transport() -> None:
    config = settings_of(render(vvx400(1))[f"{MAC}-phone.cfg"])
    assert config["reg.1.server.1.transport"] == "TCPOnly"  # the sample's slot 1 is TCP


def test_polling_and_check_sync() -> None:
    config = settings_of(render(vvx400())[f"{MAC}-phone.cfg"])
    assert config["prov.polling.enabled"] == "1"
    # Relative mode needs a period > 3600 s: the 5-minute backstop cannot be had (family.toml).
    assert config["prov.polling.mode"] == "rel"
    assert int(config["prov.polling.period"]) > 3600
    assert int(config["prov.polling.period"]) >= SETTINGS.poll_interval
    assert config["voIpProt.SIP.specialEvent.checkSync.alwaysReboot"] == "0"


DST = "tcpIpApp.sntp.daylightSavings."


def test_timezone_europe() -> None:
    config = settings_of(render(vvx400())[f"{MAC}-phone.cfg"])  # Europe/Paris
    assert config["tcpIpApp.sntp.gmtOffset"] == "3600"
    assert config[DST + "enable"] == "1"
    assert config[DST + "fixedDayEnable"] == "0"
    assert (config[DST + "start.month"], config[DST + "stop.month"]) == ("3", "10")
    assert config[DST + "start.dayOfWeek.lastInMonth"] == "1"
    assert config[DST + "stop.dayOfWeek.lastInMonth"] == "1"
    # 01:00 UTC: 02:00 winter time in Paris, 03:00 summer time.
    assert (config[DST + "start.time"], config[DST + "stop.time"]) == ("2", "3")
    london = settings_of(render(vvx400(timezone="Europe/London"))[f"{MAC}-phone.cfg"])
    assert london["tcpIpApp.sntp.gmtOffset"] == "0"
    assert (london[DST + "start.time"], london[DST + "stop.time"]) == ("1", "2")


def test_timezone_us() -> None:
    config = settings_of(render(vvx400(timezone="America/New_York"))[f"{MAC}-phone.cfg"])
    assert config["tcpIpApp.sntp.gmtOffset"] == "-18000"
    assert config[DST + "enable"] == "1"
    assert (config[DST + "start.month"], config[DST + "start.date"]) == ("3", "8")
    assert (config[DST + "stop.month"], config[DST + "stop.date"]) == ("11", "1")
    assert config[DST + "start.dayOfWeek.lastInMonth"] == "0"


def test_timezone_without_a_known_rule() -> None:
    config = settings_of(render(vvx400(timezone="Asia/Kolkata"))[f"{MAC}-phone.cfg"])
    assert config["tcpIpApp.sntp.gmtOffset"] == "19800"
    assert config[DST + "enable"] == "0"
    assert not any(key.startswith(DST + "start") for key in config)


def test_language() -> None:
    assert settings_of(render(vvx400())[f"{MAC}-phone.cfg"])["lcl.ml.lang"] == "French_France"
    german = settings_of(render(vvx400(language="de"))[f"{MAC}-phone.cfg"])
    assert german["lcl.ml.lang"] == "German_Germany"
    # A language without a Polycom name leaves the phone's own setting alone.
    assert "lcl.ml.lang" not in settings_of(render(vvx400(language="xx"))[f"{MAC}-phone.cfg"])


def test_master_files_name_the_phone_file_and_carry_no_secret() -> None:
    files = render(vvx400(12))
    assert files[f"{MAC}.cfg"] == files["000000000000.cfg"]
    root = ET.fromstring(files[f"{MAC}.cfg"])
    assert root.tag == "APPLICATION"
    assert root.attrib["CONFIG_FILES"] == "[PHONE_MAC_ADDRESS]-phone.cfg"
    assert root.attrib["APP_FILE_PATH"] == "sip.ld"
    for secret in (SAMPLE_TOKEN, "s3cr", "auth1", "user1"):
        assert secret not in files[f"{MAC}.cfg"]
    assert "s3cr" in files[f"{MAC}-phone.cfg"]


def test_firmware_url(tmp_path: Path) -> None:
    folder = tmp_path / "polycom"
    folder.mkdir()
    for name in (
        "3111-46157-002-6.3.0.14929.sip.ld",
        "3111-46157-002-6.4.6.2175.sip.ld",
        "3111-46162-001-6.4.6.2175.sip.ld",  # VVX 410: not for a VVX 400
    ):
        (folder / name).write_bytes(b"image")
    settings = replace(SETTINGS, firmware_dir=tmp_path)
    files = render(vvx400(), settings)
    for name in (f"{MAC}.cfg", "000000000000.cfg"):
        assert ET.fromstring(files[name]).attrib["APP_FILE_PATH"] == (
            "http://prov.example.net/firmware/polycom/3111-46157-002-6.4.6.2175.sip.ld"
        )
    # No image for this model: the factory default name, which the server answers with a 404.
    empty = replace(SETTINGS, firmware_dir=tmp_path / "none")
    assert ET.fromstring(render(vvx400(), empty)[f"{MAC}.cfg"]).attrib["APP_FILE_PATH"] == "sip.ld"
