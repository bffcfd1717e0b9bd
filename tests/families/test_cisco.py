"""Cisco SPA / Linksys and MPP 3PCC: real requests, and the flat-profile keys per line."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from provisioning.devices.catalog import load_catalog
from provisioning.devices.identify import match_file, parse_user_agent
from provisioning.render.check import SAMPLE_PASSWORD, SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["cisco"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0015654aa937"
DEVICE_URL = f"http://prov.example.net/{SAMPLE_TOKEN}/"

# (User-Agent, model id or None, firmware, MAC or None). From vendor-formats.md section 4, plus
# realistic ones of the same shapes.
USER_AGENTS = [
    # SPA: two parenthesised groups = MAC, then serial number.
    ("Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)", "cisco-spa508g", "7.4.4", "0002fdff2103"),
    ("Cisco/SPA504G-7.6.2 (E05FB9A01B2C)(CBT1602034Z)", "cisco-spa504g", "7.6.2", "e05fb9a01b2c"),
    ("Cisco/SPA525G2-7.5.5 (0022BDCDE012)(CBT151300AB)", "cisco-spa525g2", "7.5.5", "0022bdcde012"),
    # One group: the serial number, never a MAC.
    ("Cisco/SPA525G-7.4.7 (CBT141900G7)", "cisco-spa525g", "7.4.7", None),
    ("Cisco/SPA509G-7.5.5 (CBT15130N7K)", "cisco-spa509g", "7.5.5", None),
    ("Cisco/SPA508G-7.4.4 (0002FDFF2103)", "cisco-spa508g", "7.4.4", None),
    ("Cisco/SPA508G-7.4.4", "cisco-spa508g", "7.4.4", None),
    # SPA ATA: one parenthesised group, the serial number.
    ("Cisco/SPA112-1.4.1(002) (CBT1925017E)", "cisco-spa112", "1.4.1(002)", None),
    # MPP ATA (Wazo cisco_sip v11_1_0 common.py): a serial number, no MAC.
    ("Cisco/ATA191-MPP-11-1-0-MSR4 (FCH2443D9R4)", "cisco-ata191", "MPP-11-1-0-MSR4", None),
    # MPP 3PCC: the MAC in parentheses, lowercase.
    ("Cisco-CP-7832-3PCC/11.0.1 (00562b043615)", "cisco-cp7832", "11.0.1", "00562b043615"),
    ("Cisco-CP-7841-3PCC/11.3.7 (00ebd5a1b2c3)", "cisco-cp7841", "11.3.7", "00ebd5a1b2c3"),
    ("Cisco-CP-8845-3PCC/12.0.1 (F87B20AABBCC)", "cisco-cp8845", "12.0.1", "f87b20aabbcc"),
    ("Cisco-CP-6841-3PCC/11.3.7 (2c31241a2b3c)", "cisco-cp6841", "11.3.7", "2c31241a2b3c"),
    ("Cisco-CP-8851NR-3PCC/11.2.3 (7c69f6010203)", "cisco-cp8851", "11.2.3", "7c69f6010203"),
    # Linksys: the parenthesised value is the serial number (here it even looks like a MAC).
    ("Linksys/SPA942-6.1.5(a)", "cisco-spa942", "6.1.5(a)", None),
    ("Linksys/SPA-942-6.1.5(a) (88019FA42805)", "cisco-spa942", "6.1.5(a)", None),
    ("Linksys/SPA-962-6.1.5(a) (FM500HA01234)", "cisco-spa962", "6.1.5(a)", None),
    ("Linksys/SPA941-5.1.8", "cisco-spa941", "5.1.8", None),
    ("Linksys/PAP2T-5.1.6(LS) (4MB00IA02345)", None, "5.1.6(LS)", None),
]


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str | None, firmware: str, mac: str | None) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family.name == "cisco"
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac == mac


@pytest.mark.parametrize(
    ("name", "mac", "code"),
    [
        ("spa0015654aa937.xml", MAC, None),
        ("spa0015654AA937.xml", MAC, None),
        ("0015654aa937.xml", MAC, None),
        ("00562B043615.xml", "00562b043615", None),
        ("spa508G.cfg", None, "508G"),
        ("spa942.cfg", None, "942"),
    ],
)
def test_file_names(name: str, mac: str | None, code: str | None) -> None:
    # `<mac>.xml` is shared with other families: the device record decides, so only ours is
    # checked here.
    (match,) = [m for m in match_file(CATALOG, name) if m.family is FAMILY]
    assert match.mac == mac
    assert match.code == code


@pytest.mark.parametrize("name", ["spa000000000000.xml", "spa-phone.xml", "0015654aa937.cfg"])
def test_not_our_file_names(name: str) -> None:
    assert not [m for m in match_file(CATALOG, name) if m.family is FAMILY]


def test_files_of_spa_and_mpp() -> None:
    # Each model lists both factory names (the loader has no per-file model filter): a SPA asks
    # for `spa$PSN.cfg`, an MPP for `$PSN.xml` (`7841-3PCC.xml`).
    files = dict(device_files(CATALOG, "cisco-spa508g", MAC))
    assert list(files) == [
        f"spa{MAC}.xml", f"{MAC}.xml", "spa508G.cfg", "508G-3PCC.xml", "ata508G.cfg"
    ]  # fmt: skip
    assert [(spec.secret, spec.lines) for spec in files.values()] == [
        (True, True), (True, True), (False, False), (False, False), (False, False)
    ]  # fmt: skip
    mpp = [name for name, _ in device_files(CATALOG, "cisco-cp7841", MAC)]
    assert mpp == [f"spa{MAC}.xml", f"{MAC}.xml", "spa7841.cfg", "7841-3PCC.xml", "ata7841.cfg"]
    ata = [name for name, _ in device_files(CATALOG, "cisco-ata191", MAC)]
    assert "ata191.cfg" in ata and "spa112.cfg" in dict(device_files(CATALOG, "cisco-spa112", MAC))
    g2 = [name for name, _ in device_files(CATALOG, "cisco-spa525g2", MAC)]
    assert "spa525G2.cfg" in g2


@pytest.mark.parametrize(
    ("name", "code"),
    [("spa508G.cfg", "508G"), ("spa525G2.cfg", "525G2"), ("7841-3PCC.xml", "7841"),
     ("8851-3PCC.xml", "8851"), ("6821-3PCC.xml", "6821"), ("ata191.cfg", "191"),
     ("ata192.cfg", "192"), ("spa112.cfg", "112"), ("spa122.cfg", "122")],
)  # fmt: skip
def test_factory_file_names(name: str, code: str) -> None:
    (match,) = [m for m in match_file(CATALOG, name) if m.family is FAMILY]
    assert match.code == code and match.mac is None
    assert not match.spec.secret


# Every MPP model's factory file is named after its number (Wazo's _COMMON_FILENAMES).
def test_mpp_codes() -> None:
    for model in FAMILY.models.values():
        if model.id.startswith("cisco-cp"):
            assert model.code == model.id.removeprefix("cisco-cp")


# Slot counts of the reference's table (Wazo key tables), and models that are leads only.
SLOTS = {
    "spa941": 4, "spa942": 4, "spa962": 6, "spa303": 3, "spa501g": 8, "spa502g": 1,
    "spa504g": 4, "spa508g": 8, "spa509g": 12, "spa512g": 1, "spa514g": 4, "spa525g": 5,
    "spa525g2": 5,
    "cp6821": 2, "cp6841": 4, "cp6851": 4, "cp6861": 4, "cp6871": 6, "cp7811": 1, "cp7821": 2,
    "cp7832": 1, "cp7841": 4, "cp7861": 16, "cp8811": 10, "cp8841": 10, "cp8845": 10,
    "cp8851": 10, "cp8861": 10, "cp8865": 10,
    # Issue 19: ATAs (Wazo), 8832 and 9861 (FusionPBX line blocks; leads, REFERENCES.md).
    "spa112": 2, "spa122": 2, "ata191": 2, "ata192": 2, "cp8832": 10, "cp9861": 16,
}  # fmt: skip
UNCONFIRMED = {"cp8845", "cp8865", "cp8832", "cp9861"}


def test_catalog() -> None:
    models = FAMILY.models
    assert {m.id.removeprefix("cisco-"): m.slots for m in models.values()} == SLOTS
    assert {m.id.removeprefix("cisco-") for m in models.values() if not m.confirmed} == UNCONFIRMED
    assert FAMILY.notify_event == "resync"


def render(data: DeviceData, settings: Settings = SETTINGS) -> dict[str, ET.Element]:
    return {
        name: ET.fromstring(render_file(RENDERER, settings, data, spec).body)
        for name, spec in device_files(CATALOG, data.model_id, data.mac)
    }


def value(root: ET.Element, key: str) -> str | None:
    """The text of a flat-profile parameter ("" when empty), None when absent."""
    found = root.findall(key)
    assert len(found) <= 1, f"{key} set twice"
    return (found[0].text or "") if found else None


def two_lines(model_id: str = "cisco-spa508g") -> DeviceData:
    model = CATALOG.model(model_id)
    assert model is not None
    return sample_device(model_id, model.slots, 2)


@pytest.mark.parametrize("file_name", [f"spa{MAC}.xml", f"{MAC}.xml"])
def test_lines(file_name: str) -> None:
    data = two_lines()
    root = render(data)[file_name]
    assert root.tag == "flat-profile"
    for slot in range(1, 9):
        line = data.lines.get(slot)
        if line is None:
            assert value(root, f"Line_Enable_{slot}_") == "No"
            assert value(root, f"Register_{slot}_") == "No"
            for key in ("User_ID", "Auth_ID", "Password", "Proxy", "Display_Name", "Short_Name"):
                assert value(root, f"{key}_{slot}_") == "", f"{key}_{slot}_"
            continue
        assert value(root, f"Line_Enable_{slot}_") == "Yes"
        assert value(root, f"Register_{slot}_") == "Yes"
        assert value(root, f"User_ID_{slot}_") == line.user
        assert value(root, f"Auth_ID_{slot}_") == line.auth_user
        assert value(root, f"Use_Auth_ID_{slot}_") == "Yes"
        assert value(root, f"Password_{slot}_") == line.password
        assert value(root, f"Display_Name_{slot}_") == line.display_name
        assert value(root, f"Short_Name_{slot}_") == line.number
        assert value(root, f"Proxy_{slot}_") == f"{line.registrar_host}:{line.registrar_port}"
        assert value(root, f"SIP_Transport_{slot}_") == line.transport.upper()
    assert value(root, "Line_Enable_9_") is None  # nothing beyond the model's 8 lines


@pytest.mark.parametrize("file_name", [f"spa{MAC}.xml", f"{MAC}.xml"])
def test_provisioning_keeps_the_phone_on_its_own_file(file_name: str) -> None:
    root = render(two_lines())[file_name]
    assert value(root, "Profile_Rule") == DEVICE_URL + file_name
    for rule in ("Profile_Rule_B", "Profile_Rule_C", "Profile_Rule_D"):
        assert value(root, rule) == ""
    assert value(root, "Provision_Enable") == "Yes"
    assert value(root, "Resync_Periodic") == str(SETTINGS.poll_interval)
    assert value(root, "Resync_Error_Retry_Delay") == str(SETTINGS.poll_interval)
    assert value(root, "Resync_From_SIP") == "Yes"


def test_time_and_language() -> None:
    root = render(two_lines())[f"{MAC}.xml"]
    assert value(root, "Time_Zone") == "GMT+01:00"  # Europe/Paris, standard time
    assert value(root, "Daylight_Saving_Time_Enable") == "Yes"
    assert value(root, "Daylight_Saving_Time_Rule") == "start=3/-1/7/2;end=10/-1/7/3;save=1"
    assert value(root, "Language_Selection") == "French"


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [("America/St_Johns", "GMT-03:30"), ("Asia/Kolkata", "GMT+05:30"), ("UTC", "GMT+00:00")],
)
def test_time_zone_without_a_rule(timezone: str, expected: str) -> None:
    data = replace(two_lines(), timezone=timezone, language="xx")
    root = render(data)[f"{MAC}.xml"]
    assert value(root, "Time_Zone") == expected
    assert value(root, "Daylight_Saving_Time_Enable") == "No"
    assert value(root, "Language_Selection") is None  # unknown language: the phone's own


@pytest.mark.parametrize(
    ("model_id", "factory_file", "mac_file"),
    [
        ("cisco-spa508g", "spa508G.cfg", "spa$MA.xml"),
        ("cisco-spa525g2", "spa525G2.cfg", "spa$MA.xml"),
        ("cisco-cp7841", "7841-3PCC.xml", "$MA.xml"),
        ("cisco-cp8851", "8851-3PCC.xml", "$MA.xml"),
    ],
)
def test_factory_file_chains_to_the_mac_file(
    model_id: str, factory_file: str, mac_file: str
) -> None:
    """Zero-touch: the file a factory phone asks for carries no secret (public, may cross plain
    HTTP) and chains, through Profile_Rule_B and `$MA`, to the phone's own file."""
    model = CATALOG.models[model_id]
    data = sample_device(model_id, model.slots, 2)
    spec = dict(device_files(CATALOG, model_id, data.mac))[factory_file]
    assert spec.secret is False and spec.lines is False
    https = replace(SETTINGS, public_url="https://prov.example.net:8443")
    body = render_file(RENDERER, https, data, spec).body.decode()
    assert SAMPLE_TOKEN not in body
    assert "s3cr" not in body and SAMPLE_PASSWORD not in body
    root = ET.fromstring(body)
    keys = {element.tag for element in root}
    assert not {k for k in keys if k.startswith(("Password", "User_ID", "Line_Enable"))}
    assert value(root, "Profile_Rule") is None  # the factory rule stays until the MAC file
    assert value(root, "Profile_Rule_B") == f"https://prov.example.net:8443/{mac_file}"
    assert (value(root, "Profile_Rule_C"), value(root, "Profile_Rule_D")) == ("", "")
    assert value(root, "Resync_Periodic") == str(SETTINGS.poll_interval)
    assert value(root, "Time_Zone") == "GMT+01:00"
    # The MAC file it chains to exists and moves the phone to its token URL.
    served = mac_file.replace("$MA", data.mac)
    mac_spec = dict(device_files(CATALOG, model_id, data.mac))[served]
    mac_root = ET.fromstring(render_file(RENDERER, https, data, mac_spec).body)
    assert (
        value(mac_root, "Profile_Rule") == f"https://prov.example.net:8443/{SAMPLE_TOKEN}/{served}"
    )
    assert value(mac_root, "Line_Enable_1_") == "Yes" and value(mac_root, "Line_Enable_2_") == "Yes"
    assert value(mac_root, "Password_1_") != value(mac_root, "Password_2_")


def test_firmware(tmp_path: Path) -> None:
    folder = tmp_path / "cisco"
    folder.mkdir()
    for name in ("spa50x-30x-7-5-2b.bin", "spa50x-30x-7-5-5.bin", "sip78xx.12-0-7MPP.loads"):
        (folder / name).write_bytes(b"image")
    settings = replace(SETTINGS, firmware_dir=tmp_path)
    url = "http://prov.example.net/firmware/cisco/spa50x-30x-7-5-5.bin"
    for name, root in render(two_lines(), settings).items():
        assert value(root, "Upgrade_Enable") == "Yes", name
        assert value(root, "Upgrade_Rule") == url, name
    mpp = render(two_lines("cisco-cp7841"), settings)[f"{MAC}.xml"]
    assert value(mpp, "Upgrade_Rule") == (
        "http://prov.example.net/firmware/cisco/sip78xx.12-0-7MPP.loads"
    )
    # No image for the model: the phone's own upgrade settings are left alone.
    for root in render(two_lines(), replace(SETTINGS, firmware_dir=tmp_path / "none")).values():
        assert value(root, "Upgrade_Rule") is None
        assert value(root, "Upgrade_Enable") is None
