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
    ("Cisco/SPA525G2-7.5.5 (0022BDCDE012)(CBT151300AB)", "cisco-spa525g", "7.5.5", "0022bdcde012"),
    # One group: the serial number, never a MAC.
    ("Cisco/SPA525G-7.4.7 (CBT141900G7)", "cisco-spa525g", "7.4.7", None),
    ("Cisco/SPA509G-7.5.5 (CBT15130N7K)", "cisco-spa509g", "7.5.5", None),
    ("Cisco/SPA508G-7.4.4 (0002FDFF2103)", "cisco-spa508g", "7.4.4", None),
    ("Cisco/SPA508G-7.4.4", "cisco-spa508g", "7.4.4", None),
    # A Cisco device outside the catalog (ATA): the family is known, the model is not.
    ("Cisco/SPA112-1.4.1(002) (CBT1925017E)", None, "1.4.1(002)", None),
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
    spa = [name for name, _ in device_files(CATALOG, "cisco-spa508g", MAC)]
    assert spa == [f"spa{MAC}.xml", f"{MAC}.xml", "spa508G.cfg"]
    mpp = [name for name, _ in device_files(CATALOG, "cisco-cp7841", MAC)]
    assert mpp == [f"spa{MAC}.xml", f"{MAC}.xml"]  # no `code`: no SPA common file


# Slot counts of the reference's table (Wazo key tables), and models that are leads only.
SLOTS = {
    "spa941": 4, "spa942": 4, "spa962": 6, "spa303": 3, "spa501g": 8, "spa502g": 1,
    "spa504g": 4, "spa508g": 8, "spa509g": 12, "spa512g": 1, "spa514g": 4, "spa525g": 5,
    "cp6821": 2, "cp6841": 4, "cp6851": 4, "cp6861": 4, "cp6871": 6, "cp7811": 1, "cp7821": 2,
    "cp7832": 1, "cp7841": 4, "cp7861": 16, "cp8811": 10, "cp8841": 10, "cp8845": 10,
    "cp8851": 10, "cp8861": 10, "cp8865": 10,
}  # fmt: skip
UNCONFIRMED = {"cp8845", "cp8865"}


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


def test_common_file_carries_no_secret() -> None:
    data = two_lines()
    spec = dict(device_files(CATALOG, data.model_id, data.mac))["spa508G.cfg"]
    assert spec.secret is False
    body = render_file(RENDERER, SETTINGS, data, spec).body.decode()
    assert SAMPLE_TOKEN not in body
    assert "s3cr" not in body and SAMPLE_PASSWORD not in body
    root = ET.fromstring(body)
    keys = {element.tag for element in root}
    assert not {k for k in keys if k.startswith(("Profile_Rule", "Password", "User_ID"))}
    assert value(root, "Resync_Periodic") == str(SETTINGS.poll_interval)
    assert value(root, "Time_Zone") == "GMT+01:00"


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
