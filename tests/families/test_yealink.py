"""Yealink (T3x/T4x/T5x, CP, VP, W-series DECT): identification from real requests, the common
file of every model, and what the rendered MAC file tells a desk phone and a DECT base
(vendor-formats.md section 1)."""

from __future__ import annotations

import os
import tomllib
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
FAMILY = CATALOG.families["yealink"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
GOLDEN = Path(__file__).parent.parent / "golden" / "yealink"
MAC = "805ec009abdc"

# (User-Agent, model id or None, firmware, MAC or None).
USER_AGENTS = [
    # From the reference.
    ("Yealink W60B 77.81.0.35 80:5e:c0:09:ab:dc", "yealink-w60b", "77.81.0.35", "805ec009abdc"),
    ("W52P 25.30.0.2 00:15:65:44:b3:7c", "yealink-w52p", "25.30.0.2", "00156544b37c"),
    ("Yealink W90DM 130.85.0.15 80:5e:c0:5a:90:01", "yealink-w90dm", "130.85.0.15", "805ec05a9001"),
    ("Yealink W90DM 130.87.0.10 80:5e:c0:d9:c7:44", "yealink-w90dm", "130.87.0.10", "805ec0d9c744"),
    ("Yealink CP960 73.83.0.30 80:5e:c0:73:96:00", "yealink-cp960", "73.83.0.30", "805ec0739600"),
    ("VP530P 23.70.0.40 00:15:65:53:00:40", "yealink-vp530", "23.70.0.40", "001565530040"),
    ("Yealink SIP VP-T49G 51.80.0.10 00:15:65:00:00:49", "yealink-t49g", "51.80.0.10", "001565000049"),
    # The T56A is no longer taken for the T58 it shares its model id with.
    ("Yealink SIP-T56A  58.80.0.25 001565f429a4", "yealink-t56a", "58.80.0.25", "001565f429a4"),
    # Constructed in the reference's formats (model token, version and MAC changed): they test
    # the pattern, they are not captures from a phone — except, below, the W80B (Wazo v83
    # common.py), W80DM, W75B and T7x/T8x ones (Wazo v87 common.py).
    ("Yealink SIP-T30 124.86.0.40 24:9a:d8:30:00:01", "yealink-t30", "124.86.0.40", "249ad8300001"),
    ("Yealink SIP-T30P 124.86.0.40 24:9a:d8:30:00:02", "yealink-t30p", "124.86.0.40", "249ad8300002"),
    ("Yealink SIP-T31 124.86.0.75 24:9a:d8:31:00:01", "yealink-t31", "124.86.0.75", "249ad8310001"),
    ("Yealink SIP-T31G 124.85.0.40 24:9a:d8:31:00:02", "yealink-t31g", "124.85.0.40", "249ad8310002"),
    ("yealink SIP-T31P 124.85.0.40 24:9a:d8:31:00:03", "yealink-t31p", "124.85.0.40", "249ad8310003"),
    ("Yealink SIP-T33G 124.86.0.75 24:9a:d8:33:00:01", "yealink-t33g", "124.86.0.75", "249ad8330001"),
    ("Yealink SIP-T33P 124.86.0.75 24:9a:d8:33:00:02", "yealink-t33p", "124.86.0.75", "249ad8330002"),
    ("Yealink SIP-T34W 124.86.0.75 24:9a:d8:34:00:01", "yealink-t34w", "124.86.0.75", "249ad8340001"),
    ("Yealink SIP-T40P 54.84.0.125 00:15:65:40:00:01", "yealink-t40p", "54.84.0.125", "001565400001"),
    ("Yealink SIP-T40G 76.84.0.125 80:5e:c0:40:00:02", "yealink-t40g", "76.84.0.125", "805ec0400002"),
    ("Yealink SIP-T43U 108.86.0.45 44:db:d2:43:00:01", "yealink-t43u", "108.86.0.45", "44dbd2430001"),
    ("Yealink SIP-T44U 108.87.0.10 44:db:d2:44:00:01", "yealink-t44u", "108.87.0.10", "44dbd2440001"),
    ("Yealink SIP-T44W 108.87.0.10 44:db:d2:44:00:02", "yealink-t44w", "108.87.0.10", "44dbd2440002"),
    ("Yealink SIP-T52S 70.86.0.5 80:5e:c0:52:00:01", "yealink-t52s", "70.86.0.5", "805ec0520001"),
    ("Yealink SIP-T54W  96.86.0.45 249ad8540001", "yealink-t54w", "96.86.0.45", "249ad8540001"),
    ("Yealink SIP-CP920 78.86.0.15 80:5e:c0:92:00:01", "yealink-cp920", "78.86.0.15", "805ec0920001"),
    ("Yealink CP860 37.81.0.10 00:15:65:86:00:01", "yealink-cp860", "37.81.0.10", "001565860001"),
    ("Yealink VP59 91.283.0.35 24:9a:d8:59:00:01", "yealink-vp59", "91.283.0.35", "249ad8590001"),
    ("Yealink W52P 25.73.0.40 00:15:65:52:00:01", "yealink-w52p", "25.73.0.40", "001565520001"),
    ("Yealink W70B 146.85.0.20 24:9a:d8:70:00:01", "yealink-w70b", "146.85.0.20", "249ad8700001"),
    # W80 firmware is 103.x, the W75's 175.x (Wazo v87 common.py): a W75B is not a W80.
    ("Yealink W80B 103.83.0.90 80:5e:c0:71:01:38", "yealink-w80", "103.83.0.90", "805ec0710138"),
    ("Yealink W80DM 103.87.0.10 24:9a:d8:d1:a6:31", "yealink-w80", "103.87.0.10", "249ad8d1a631"),
    ("Yealink W75B 175.87.0.10 24:9a:d8:df:fb:11", "yealink-w75", "175.87.0.10", "249ad8dffb11"),
    # Wazo v87 common.py (the T7x/T8x series).
    ("Yealink SIP-T77U 185.87.0.10 44:db:d2:bd:b5:69", "yealink-t77u", "185.87.0.10", "44dbd2bdb569"),
    ("Yealink SIP-T85W 185.87.0.10 44:db:d2:67:58:4b", "yealink-t85w", "185.87.0.10", "44dbd267584b"),
    ("Yealink SIP-T87W 185.87.0.10 44:db:d2:c9:73:b7", "yealink-t87w", "185.87.0.10", "44dbd2c973b7"),
    ("W90DM 130.85.0.15 80:5e:c0:5a:90:02", "yealink-w90dm", "130.85.0.15", "805ec05a9002"),
    # A Yealink the catalog does not list: the family is known, the model is not.
    ("yealink SIP-T28P 2.70.0.140 00:15:65:13:ae:0b", None, "2.70.0.140", "00156513ae0b"),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str | None, firmware: str, mac: str | None) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family is FAMILY
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac == mac


def test_every_ua_model_names_one_model() -> None:
    seen: dict[str, str] = {}
    for model in FAMILY.models.values():
        for token in model.ua_models:
            assert token not in seen, f"{token}: {seen.get(token)} and {model.id}"
            seen[token] = model.id


def test_dect_base_cells_are_taken_as_their_system() -> None:
    """W80B, W75B and W90B: Wazo v87 provisions each with its system's DECT template and every
    line given to it (`_NB_SIP_ACCOUNTS` 0 keeps all lines). No User-Agent of a W90B is in a
    reference, so the model token is checked, not an invented User-Agent."""
    for token, model_id in (
        ("W80B", "yealink-w80"),
        ("W75B", "yealink-w75"),
        ("W90B", "yealink-w90dm"),
        ("W90DM", "yealink-w90dm"),
    ):
        model = FAMILY.model_for_ua(token)
        assert model is not None and model.id == model_id, token
    w90 = FAMILY.models["yealink-w90dm"]
    assert (w90.label, w90.slots, w90.code, w90.confirmed) == (
        "Yealink W90 (W90DM / W90B)",
        250,
        "130",
        False,
    )


# Accounts per model added with the T3x/T4x/CP/VP/W-series (the reference's table; the comments
# in family.toml say which are datasheet values).
NEW_SLOTS = {
    "t30": 1, "t30p": 1, "t31": 2, "t31g": 2, "t31p": 2, "t33g": 4, "t33p": 4, "t34w": 4,
    "t40p": 3, "t40g": 3, "t43u": 12, "t44u": 12, "t44w": 12, "t49g": 16, "t52s": 12,
    "t56a": 16, "cp860": 1, "cp920": 1, "cp960": 1, "vp59": 16, "vp530": 4,
    "w52p": 5, "w60b": 8, "w70b": 10, "w80": 30, "w90dm": 250,
    # Issue 19 (REFERENCES.md "Models added for issue 19").
    "t31w": 2, "t53c": 12, "t58w": 16, "t73u": 12, "t73w": 12, "t74u": 16, "t74w": 16,
    "t77u": 16, "t85w": 16, "t87w": 16, "t88w": 16, "t88v": 16, "cp925": 1, "cp965": 1,
    "ax83h": 4, "ax86r": 4, "w75": 20,
}  # fmt: skip

# The common file `y0000000000XX.cfg` each model asks for when it has no boot file. T3x: four
# ids for one firmware (yealink/REFERENCES.md).
CODES = {
    "t30": 127, "t30p": 127, "t31": 123, "t31g": 123, "t31p": 123, "t33g": 124, "t33p": 124,
    "t34w": 171, "t40p": 54, "t40g": 76, "t43u": 108, "t44u": 108, "t44w": 108, "t49g": 51,
    "t52s": 74, "t56a": 58, "t58": 58, "cp860": 37, "cp920": 78, "cp960": 73, "vp59": 91,
    "vp530": 23, "w52p": 25, "w60b": 77, "w70b": 146, "w80": 103, "w90dm": 130,
    "t31w": 172, "t53c": 95, "t58w": 150, "t73u": 186, "t73w": 183, "t74u": 187, "t74w": 184,
    "t77u": 188, "t85w": 196, "t87w": 197, "t88w": 192, "t88v": 192, "cp925": 148,
    "cp965": 143, "ax83h": 180, "ax86r": 182, "w75": 175,
}  # fmt: skip

# Model id and slot count both in the reference; the others carry a lead (family.toml comments).
CONFIRMED = {
    "t31g", "t33g", "t34w", "t40p", "t40g", "t49g", "cp860", "cp920", "cp960", "vp530", "w52p",
    "w60b", "t58w", "t73u", "t73w", "t74u", "t74w", "t77u", "t85w", "t87w", "t88w", "t88v",
    "ax83h", "ax86r",
}  # fmt: skip


def test_catalog() -> None:
    models = FAMILY.models
    assert {key: models[f"yealink-{key}"].slots for key in NEW_SLOTS} == NEW_SLOTS
    assert {key for key in NEW_SLOTS if models[f"yealink-{key}"].confirmed} == CONFIRMED
    assert FAMILY.notify_event == "check-sync;reboot=false"


def test_dect_bases_have_one_account_per_handset() -> None:
    """`handsets` is data the loader ignores: read it from the TOML itself."""
    raw = tomllib.loads((FAMILY.path / "family.toml").read_text(encoding="utf-8"))["models"]
    bases = {key: entry for key, entry in raw.items() if key.startswith("w")}
    assert set(bases) == {"w52p", "w60b", "w70b", "w75", "w80", "w90dm"}
    for key, entry in bases.items():
        assert entry["handsets"] == entry["slots"] == NEW_SLOTS[key], key


@pytest.mark.parametrize(("key", "code"), sorted(CODES.items()))
def test_common_file_per_model(key: str, code: int) -> None:
    model_id = f"yealink-{key}"
    common = f"y{code:012d}.cfg"
    names = [(name, spec.secret) for name, spec in device_files(CATALOG, model_id, MAC)]
    assert names == [(f"{MAC}.boot", False), (common, False), (f"{MAC}.cfg", True)]
    (match,) = [m for m in match_file(CATALOG, common) if m.family is FAMILY]
    assert match.code == str(code)
    assert match.mac is None


def device(model_id: str, lines: int = 2, **changes: str) -> DeviceData:
    model = FAMILY.models[model_id]
    return replace(sample_device(model_id, model.slots, lines), mac=MAC, **changes)


def render(data: DeviceData, settings: Settings = SETTINGS) -> dict[str, str]:
    return {
        name: render_file(RENDERER, settings, data, spec).body.decode("utf-8")
        for name, spec in device_files(CATALOG, data.model_id, data.mac)
    }


def keys_of(text: str) -> dict[str, str]:
    assert text.split("\n", 1)[0] == "#!version:1.0.0.1"
    found: dict[str, str] = {}
    for line in text.split("\n")[1:]:
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(" = ")
        assert sep, line
        assert key not in found, f"{key} set twice"
        found[key] = value
    return found


@pytest.mark.parametrize("model_id", ["yealink-w60b", "yealink-t54w"])
def test_two_lines(model_id: str) -> None:
    data = device(model_id)
    config = keys_of(render(data)[f"{MAC}.cfg"])
    for slot, transport in ((1, "1"), (2, "2")):  # the sample's slot 1 is TCP, slot 2 TLS
        line = data.lines[slot]
        assert config[f"account.{slot}.enable"] == "1"
        assert config[f"account.{slot}.label"] == line.number
        assert config[f"account.{slot}.display_name"] == line.display_name
        assert config[f"account.{slot}.auth_name"] == line.auth_user
        assert config[f"account.{slot}.user_name"] == line.user
        assert config[f"account.{slot}.password"] == line.password
        assert config[f"account.{slot}.sip_server.1.address"] == line.registrar_host
        assert config[f"account.{slot}.sip_server.1.port"] == str(line.registrar_port)
        assert config[f"account.{slot}.sip_server.1.transport_type"] == transport
    slots = FAMILY.models[model_id].slots
    for slot in range(3, slots + 1):
        assert config[f"account.{slot}.enable"] == "0"
        for key in ("label", "display_name", "auth_name", "user_name", "password"):
            assert config[f"account.{slot}.{key}"] == "%NULL%"
        assert config[f"account.{slot}.sip_server.1.address"] == "%NULL%"
    assert not any(key.startswith(f"account.{slots + 1}.") for key in config)
    assert config["static.auto_provision.server.url"] == f"http://prov.example.net/{SAMPLE_TOKEN}/"


def test_udp_transport() -> None:
    config = keys_of(render(device("yealink-w60b", 3))[f"{MAC}.cfg"])
    assert config["account.3.sip_server.1.transport_type"] == "0"  # the sample's slot 3 is UDP


def test_dect_base_maps_account_n_to_handset_n() -> None:
    config = keys_of(render(device("yealink-w60b"))[f"{MAC}.cfg"])
    for slot in (1, 2):
        assert config[f"handset.{slot}.incoming_lines"] == str(slot)
        assert config[f"handset.{slot}.dial_out_lines"] == str(slot)
        assert config[f"handset.{slot}.dial_out_default_line"] == str(slot)
    # Unused slots leave their handset alone; desk phones have no handsets at all.
    assert not any(key.startswith(("handset.3.", "handset.8.")) for key in config)
    desk = keys_of(render(device("yealink-t54w"))[f"{MAC}.cfg"])
    assert not any(key.startswith("handset.") for key in desk)


@pytest.mark.parametrize("model_id", ["yealink-w60b", "yealink-t54w"])
def test_polling_timezone_language(model_id: str) -> None:
    files = render(device(model_id))
    code = FAMILY.models[model_id].code
    assert code is not None
    # Both the MAC file and the common file carry the device-wide settings.
    for name in (f"{MAC}.cfg", f"y{code:0>12}.cfg"):
        config = keys_of(files[name])
        assert config["static.auto_provision.repeat.enable"] == "1"
        assert config["static.auto_provision.repeat.minutes"] == str(SETTINGS.poll_interval // 60)
        assert int(config["static.auto_provision.repeat.minutes"]) * 60 <= SETTINGS.poll_interval
        assert config["sip.notify_reboot_enable"] == "0"
        assert config["local_time.time_zone"] == "+1"  # Europe/Paris
        assert config["local_time.time_zone_name"] == "France(Paris)"
        assert config["lang.gui"] == config["lang.wui"] == "French"
    assert SAMPLE_TOKEN not in files[f"y{code:0>12}.cfg"]


def test_other_timezone_and_language() -> None:
    data = device("yealink-w60b", timezone="America/St_Johns", language="de")
    config = keys_of(render(data)[f"{MAC}.cfg"])
    assert config["local_time.time_zone"] == "-3:30"
    assert "local_time.time_zone_name" not in config  # not in family.toml [timezones]
    assert config["lang.gui"] == "German"
    unknown = keys_of(render(replace(data, language="xx"))[f"{MAC}.cfg"])
    assert "lang.gui" not in unknown


def test_firmware_url(tmp_path: Path) -> None:
    settings = Settings(public_url="http://prov.example.net", secret_key=(), firmware_dir=tmp_path)

    def mac_file(model_id: str) -> dict[str, str]:
        return keys_of(render(device(model_id), settings)[f"{MAC}.cfg"])

    assert "static.firmware.url" not in mac_file("yealink-t54w")
    (tmp_path / "yealink").mkdir()
    for version in ("96.86.0.9", "96.86.0.45"):
        (tmp_path / "yealink" / f"T54W(T57W,T53W,T53,T53C,T54,T57)-{version}.rom").write_bytes(b"x")
    assert mac_file("yealink-t54w")["static.firmware.url"] == (
        "http://prov.example.net/firmware/yealink/T54W%28T57W%2CT53W%2CT53%2CT53C%2CT54%2CT57%29-96.86.0.45.rom"
    )
    # No image glob for the W60B: no firmware key, whatever the folder holds.
    assert "static.firmware.url" not in mac_file("yealink-w60b")


@pytest.mark.parametrize(
    "model_id", ["yealink-t54w", "yealink-w60b", "yealink-t31g", "yealink-w80"]
)
def test_two_line_golden(model_id: str) -> None:
    """Small golden files next to the generic ones (which show the 250-slot W90DM): desk phones
    (a T3x with its own common-file id) and DECT bases, two lines each."""
    for name, body in render(device(model_id)).items():
        golden = GOLDEN / f"{model_id}-2-lines--{name}"
        if os.environ.get("UPDATE_GOLDEN"):
            golden.write_text(body, encoding="utf-8")
        assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
        assert body == golden.read_text(encoding="utf-8"), f"{golden.name} differs"


def test_w80_has_30_accounts() -> None:
    """Wazo v87 common.py: 'W80DM': 30 SIP accounts. Slot 1 and slot 30, two different lines."""
    model = FAMILY.models["yealink-w80"]
    full = sample_device(model.id, model.slots, model.slots)
    data = replace(full, mac=MAC, lines={1: full.lines[1], 30: full.lines[30]})
    keys = keys_of(render(data)[f"{MAC}.cfg"])
    for slot in (1, 30):
        line = data.lines[slot]
        assert keys[f"account.{slot}.enable"] == "1"
        assert keys[f"account.{slot}.user_name"] == line.user
        assert keys[f"account.{slot}.password"] == line.password
        assert keys[f"handset.{slot}.incoming_lines"] == str(slot)
    assert keys["account.1.password"] != keys["account.30.password"]
    assert keys["account.2.enable"] == "0" and keys["account.2.password"] == "%NULL%"
    assert not any(key.startswith("account.31.") for key in keys)
