"""Grandstream GXP/GRP/DP: real requests, and the P-values per account."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.devices.identify import match_file, parse_user_agent
from provisioning.render.check import SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer, RenderError
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_1, LINE_2, parse_xml
from tests.families.strict import two_lines as strict_two_lines

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["grandstream"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0015654aa937"
FILE = f"cfg{MAC}.xml"
GOLDEN = Path(__file__).parent.parent / "golden" / "grandstream"

# (User-Agent, model id or None, firmware, MAC or None). From vendor-formats.md section 5 and
# Wazo's examples, plus realistic ones of the same shapes.
USER_AGENTS = [
    # Wazo common_ata/common.py and common/common.py (issue 19 models).
    (
        "Grandstream Model HW HT801 V1.1A SW 1.0.17.5 DevId c074ad273a10",
        "grandstream-ht801",
        "1.0.17.5",
        "c074ad273a10",
    ),
    (
        "Grandstream Model HW HT802V2 V1.0A SW 1.0.5.4 DevId ec74d763e419",
        "grandstream-ht802",
        "1.0.5.4",
        "ec74d763e419",
    ),
    # Wazo common/common.py, with its two spaces after the model.
    (
        "Grandstream Model HW GXV3350  V1.3A SW 1.0.1.8 DevId c074ad150b88",
        "grandstream-gxv3350",
        "1.0.1.8",
        "c074ad150b88",
    ),
    (
        "Grandstream Model HW GXP1405 SW 1.0.4.23 DevId 000b8240d55c",
        "grandstream-gxp1405",
        "1.0.4.23",
        "000b8240d55c",
    ),
    (
        "Grandstream Model HW GXP2135 SW 1.0.7.97 DevId 000b828aa872",
        "grandstream-gxp2135",
        "1.0.7.97",
        "000b828aa872",
    ),
    (
        "Grandstream Model HW GXP1628 SW 1.0.4.138 DevId c074ad2bd859",
        "grandstream-gxp1628",
        "1.0.4.138",
        "c074ad2bd859",
    ),
    (
        "Grandstream Model HW GRP2614 SW 1.0.5.15 DevId c074ad0b63ee",
        "grandstream-grp2614",
        "1.0.5.15",
        "c074ad0b63ee",
    ),
    (
        "Grandstream Model HW GXP2170 V1.5A SW 1.0.11.79 DevId c074ad1a2b3c",
        "grandstream-gxp2170",
        "1.0.11.79",
        "c074ad1a2b3c",
    ),
    (
        "Grandstream Model HW GXP2100 SW 1.0.8.6 DevId 000B82123456",
        "grandstream-gxp2100",
        "1.0.8.6",
        "000b82123456",
    ),
    (
        "Grandstream Model HW DP750 SW 1.0.13.0 DevId 000b82aabbcc",
        "grandstream-dp750",
        "1.0.13.0",
        "000b82aabbcc",
    ),
    ("Grandstream Model HW GXP2120 SW 1.0.8.6", "grandstream-gxp2120", "1.0.8.6", None),
    # Grandstream devices outside the catalog: the family is known, the model is not.
    (
        "Grandstream Model HW GXV3240 V1.6B SW 1.0.1.27 DevId 000b82632815",
        None,
        "1.0.1.27",
        "000b82632815",
    ),
    (
        "Grandstream GXP2000 (gxp2000e.bin:1.2.5.3/boot55e.bin:1.1.6.9) DevId 000b822726c8",
        None,
        "1.2.5.3",
        "000b822726c8",
    ),
]


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str | None, firmware: str, mac: str | None) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family.name == "grandstream"
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac == mac


@pytest.mark.parametrize(
    ("name", "mac"),
    [("cfg000b828aa872.xml", "000b828aa872"), ("cfg000B828AA872.xml", "000b828aa872")],
)
def test_file_names(name: str, mac: str) -> None:
    (match,) = [m for m in match_file(CATALOG, name) if m.family is FAMILY]
    assert match.mac == mac


# The binary file, the per-model and the global fallbacks are not served (404 for them).
@pytest.mark.parametrize(
    "name",
    ["cfg000b828aa872", "cfg000b828aa872.bin", "cfggxp2135.xml", "cfg.xml", "cfg000000000000.xml"],
)
def test_not_our_file_names(name: str) -> None:
    assert not [m for m in match_file(CATALOG, name) if m.family is FAMILY]


# Account counts: the references have GXP2100/2110/2120 (vendor-formats), GRP2612-2615
# (FusionPBX grp26xx) and DP750 (FusionPBX dp750); the rest are leads. None above the accounts
# with known P-values (6 on desk phones, 10 on the DECT bases).
SLOTS = {
    "gxp1610": 1, "gxp1615": 1, "gxp1620": 2, "gxp1625": 2, "gxp1628": 2, "gxp1630": 3,
    "gxp2100": 4, "gxp2110": 4, "gxp2120": 6, "gxp2130": 3, "gxp2135": 4, "gxp2140": 4,
    "gxp2160": 6, "gxp2170": 6, "grp2612": 2, "grp2613": 3, "grp2614": 4, "grp2615": 5,
    "grp2616": 6, "dp750": 10, "dp752": 10,
    # Issue 19: Wazo plugin-info `lines`.
    "gxp1100": 2, "gxp1105": 2, "gxp1160": 2, "gxp1165": 2, "gxp1400": 2, "gxp1405": 2,
    "gxp1450": 2, "ht801": 1, "ht802": 2,
    # GXV33xx: 16 in Wazo's plugin-info and FusionPBX gxv3370.
    "gxv3350": 16, "gxv3370": 16, "gxv3380": 16,
}  # fmt: skip
CONFIRMED = {
    "gxp2100", "gxp2110", "gxp2120", "grp2612", "grp2613", "grp2614", "grp2615", "dp750",
    # HT80x: one account per FXS port (Wazo); the GXP11xx/14xx counts are Wazo's only: leads.
    "ht801", "ht802", "gxv3350", "gxv3370", "gxv3380",
}  # fmt: skip


def test_catalog() -> None:
    models = FAMILY.models
    assert {m.id.removeprefix("grandstream-"): m.slots for m in models.values()} == SLOTS
    assert {m.id.removeprefix("grandstream-") for m in models.values() if m.confirmed} == (
        CONFIRMED
    )
    assert FAMILY.notify_event == "resync"


def render(data: DeviceData, settings: Settings = SETTINGS) -> ET.Element:
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    assert name == FILE
    assert spec.secret
    return ET.fromstring(render_file(RENDERER, settings, data, spec).body)


def p(root: ET.Element, key: str) -> str | None:
    """The text of a P-value ("" when empty), None when absent."""
    found = root.findall(f"config/{key}")
    assert len(found) <= 1, f"{key} set twice"
    return (found[0].text or "") if found else None


def two_lines(model_id: str = "grandstream-gxp2120") -> DeviceData:
    model = CATALOG.model(model_id)
    assert model is not None
    return sample_device(model_id, model.slots, 2)


# Per account: active, account name, display name, user, auth id, password, server, transport,
# "Allow SIP Reset" (REFERENCES.md).
KEYS_1_TO_4 = {
    1: ("P271", "P270", "P3", "P35", "P36", "P34", "P47", "P130", "P26015"),
    2: ("P401", "P417", "P407", "P404", "P405", "P406", "P402", "P448", "P26115"),
    3: ("P501", "P517", "P507", "P504", "P505", "P506", "P502", "P548", "P26215"),
    4: ("P601", "P617", "P607", "P604", "P605", "P606", "P602", "P648", "P26315"),
}
# GXP: accounts 5-6 in P17xx / P18xx (GXP2120, FusionPBX gxp21xx).
GXP_KEYS = KEYS_1_TO_4 | {
    5: ("P1701", "P1717", "P1707", "P1704", "P1705", "P1706", "P1702", "P1748", "P26415"),
    6: ("P1801", "P1817", "P1807", "P1804", "P1805", "P1806", "P1802", "P1848", "P26515"),
}
# GRP: account N in P<N+2>xx, account 5 P701..P717 (FusionPBX grp26xx), account 6 P8xx.
GRP_KEYS = KEYS_1_TO_4 | {
    5: ("P701", "P717", "P707", "P704", "P705", "P706", "P702", "P748", "P26415"),
    6: ("P801", "P817", "P807", "P804", "P805", "P806", "P802", "P848", "P26515"),
}
TRANSPORT = {"udp": "0", "tcp": "1", "tls": "2"}


def with_lines(model_id: str, slots: tuple[int, ...]) -> DeviceData:
    """A device of `model_id` with lines in `slots` only (different lines, different values)."""
    model = CATALOG.model(model_id)
    assert model is not None
    full = sample_device(model_id, model.slots, model.slots)
    return replace(full, lines={slot: full.lines[slot] for slot in slots})


def assert_accounts(root: ET.Element, data: DeviceData, keys: dict[int, tuple[str, ...]]) -> None:
    for slot, slot_keys in keys.items():
        active, name, display, user, auth, password, server, transport, reset = slot_keys
        # "Allow SIP Reset" (a NOTIFY could factory-reset the phone) stays off on every account.
        assert p(root, reset) == "0", reset
        line = data.lines.get(slot)
        if line is None:
            assert p(root, active) == "0"
            for key in (name, display, user, auth, password, server):
                assert p(root, key) == "", key
            assert p(root, transport) is None
            continue
        assert p(root, active) == "1"
        assert p(root, name) == line.number
        assert p(root, display) == line.display_name
        assert p(root, user) == line.user
        assert p(root, auth) == line.auth_user
        assert p(root, password) == line.password
        assert p(root, server) == f"{line.registrar_host}:{line.registrar_port}"
        assert p(root, transport) == TRANSPORT[line.transport]


@pytest.mark.parametrize(
    ("model_id", "keys", "slots"),
    [
        ("grandstream-gxp2120", GXP_KEYS, (1, 2)),
        ("grandstream-gxp2120", GXP_KEYS, (2, 5)),
        ("grandstream-gxp2170", GXP_KEYS, (1, 6)),
        ("grandstream-grp2615", {k: v for k, v in GRP_KEYS.items() if k <= 5}, (1, 5)),
        ("grandstream-grp2616", GRP_KEYS, (2, 5)),
        ("grandstream-grp2616", GRP_KEYS, (1, 2, 3, 4, 5, 6)),
    ],
)
def test_desk_accounts(
    model_id: str, keys: dict[int, tuple[str, ...]], slots: tuple[int, ...]
) -> None:
    data = with_lines(model_id, slots)
    root = render(data)
    assert_accounts(root, data, keys)
    # No other series' numbering leaks in: GRP has no P17xx, GXP no P7xx, neither DECT keys.
    other = {"P1701", "P1801"} if "grp" in model_id else {"P701", "P801"}
    for key in other | {"P4060", "P4595", "P747"}:
        assert p(root, key) is None, key


def test_grp2615_has_no_sixth_account() -> None:
    root = render(with_lines("grandstream-grp2615", (1,)))
    for key in ("P801", "P1801", "P1701", "P26515"):
        assert p(root, key) is None, key
    assert p(root, "P701") == "0"


def test_accounts() -> None:
    data = two_lines()
    root = render(data)
    assert root.tag == "gs_provision"
    assert root.findtext("mac") == MAC  # the phone refuses a file naming another MAC
    config = root.find("config")
    assert config is not None and config.get("version") == "1"
    for slot, slot_keys in GXP_KEYS.items():
        active, name, display, user, auth, password, server, transport, _ = slot_keys
        line = data.lines.get(slot)
        if line is None:
            assert p(root, active) == "0"
            for key in (name, display, user, auth, password, server):
                assert p(root, key) == "", key
            assert p(root, transport) is None
            continue
        assert p(root, active) == "1"
        assert p(root, name) == line.number
        assert p(root, display) == line.display_name
        assert p(root, user) == line.user
        assert p(root, auth) == line.auth_user
        assert p(root, password) == line.password
        assert p(root, server) == f"{line.registrar_host}:{line.registrar_port}"
        assert p(root, transport) == TRANSPORT[line.transport]
    # "Allow SIP Reset" stays off, on the keys of accounts 1-6 (P26<N-1>15), none beyond.
    for key in ("P26015", "P26115", "P26215", "P26315", "P26415", "P26515"):
        assert p(root, key) == "0"
    assert p(root, "P26615") is None


def test_seventh_account_fails_loudly() -> None:
    """No P-values are known beyond account 6: a model given 7 slots must not render."""
    model = replace(FAMILY.models["grandstream-gxp2170"], slots=7)
    catalog = Catalog({"grandstream": replace(FAMILY, models={model.id: model})})
    data = sample_device(model.id, 7, 7)
    ((_, spec),) = device_files(catalog, model.id, MAC)
    with pytest.raises(RenderError):
        render_file(Renderer(catalog), SETTINGS, data, spec)


def test_provisioning() -> None:
    root = render(two_lines())
    assert p(root, "P212") == "1"  # HTTP
    assert p(root, "P237") == f"prov.example.net/{SAMPLE_TOKEN}"
    assert p(root, "P234") == "" and p(root, "P235") == ""  # exactly cfg<mac>.xml again
    assert p(root, "P194") == "1"
    # 300 s asked, but the phone's minimum interval is 60 minutes.
    assert p(root, "P193") == "60"
    assert p(root, "P192") is None  # no firmware image: the phone's own setting stays


def test_provisioning_over_https_with_a_path() -> None:
    settings = replace(SETTINGS, public_url="https://example.net:8443/prov/")
    root = render(two_lines(), settings)
    assert p(root, "P212") == "2"
    assert p(root, "P237") == f"example.net:8443/prov/{SAMPLE_TOKEN}"


def test_time_and_language() -> None:
    root = render(two_lines())
    assert p(root, "P64") == "CET-1CEST-2,M3.5.0/02:00:00,M10.5.0/03:00:00"
    assert p(root, "P246") is None
    assert p(root, "P1362") == "fr"


# Grandstream's own time-zone list (FusionPBX grp26xx / gxp2170 / grp2614 templates).
@pytest.mark.parametrize(
    ("timezone", "expected"),
    [
        ("Europe/London", "GMT+0BST-1,M3.5.0/01:00:00,M10.5.0/02:00:00"),
        ("Europe/Lisbon", "WET-0WEST-1,M3.5.0/01:00:00,M10.5.0/02:00:00"),
        ("Europe/Dublin", "GMT+0IST-1,M3.5.0/01:00:00,M10.5.0/02:00:00"),
        ("America/New_York", "EST5EDT"),
        ("America/Chicago", "CST6CDT"),
        ("America/Denver", "MST7MDT"),
        ("America/Phoenix", "MST7"),
        ("America/Los_Angeles", "PST8PDT"),
    ],
)
def test_time_zones_from_grandstreams_list(timezone: str, expected: str) -> None:
    assert p(render(replace(two_lines(), timezone=timezone)), "P64") == expected
    # The DECT bases take the same rule as a self-defined zone.
    dect = render(replace(with_lines("grandstream-dp750", (1,)), timezone=timezone))
    assert p(dect, "P64") == "customize"
    assert p(dect, "P246") == expected


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [("America/St_Johns", "UTC+3:30"), ("Asia/Kolkata", "UTC-5:30"), ("UTC", "UTC0")],
)
def test_time_zone_without_a_rule(timezone: str, expected: str) -> None:
    root = render(replace(two_lines(), timezone=timezone, language="xx"))
    assert p(root, "P64") == expected
    assert p(root, "P1362") is None


def test_firmware(tmp_path: Path) -> None:
    folder = tmp_path / "grandstream"
    folder.mkdir()
    (folder / "gxp2100fw.bin").write_bytes(b"image")
    root = render(two_lines(), replace(SETTINGS, firmware_dir=tmp_path))
    # The phone names the image itself: P192 is the folder, without the scheme.
    assert p(root, "P192") == "prov.example.net/firmware/grandstream"
    assert p(root, "P6767") == "1"
    assert p(root, "P232") == "" and p(root, "P233") == ""
    assert p(root, "P238") == "0"
    # An image of another model does not count.
    other = render(two_lines("grandstream-gxp1628"), replace(SETTINGS, firmware_dir=tmp_path))
    assert p(other, "P192") is None


# DECT bases: accounts i + 1 at P4060+i (user), P4090+i (auth id), P4120+i (password), P4180+i
# (name), P4150+i (profile 0-3), P4595+i (active); profiles hold the registrar (REFERENCES.md).
PROFILE_KEYS = [
    ("P271", "P47", "P48", "P130"),
    ("P401", "P747", "P748", "P830"),
    ("P501", "P547", "P548", "P530"),
    ("P601", "P602", "P603", "P4648"),
]


def dect_account(root: ET.Element, slot: int) -> dict[str, str | None]:
    i = slot - 1
    return {
        "active": p(root, f"P{4595 + i}"),
        "user": p(root, f"P{4060 + i}"),
        "auth": p(root, f"P{4090 + i}"),
        "password": p(root, f"P{4120 + i}"),
        "name": p(root, f"P{4180 + i}"),
        "profile": p(root, f"P{4150 + i}"),
    }


@pytest.mark.parametrize("model_id", ["grandstream-dp750", "grandstream-dp752"])
def test_dect_accounts_share_a_profile(model_id: str) -> None:
    data = with_lines(model_id, (1, 7))
    # One registrar for both lines: one profile, both accounts on it.
    data = replace(data, lines={s: replace(ln, transport="udp") for s, ln in data.lines.items()})
    root = render(data)
    for slot in range(1, 11):
        line = data.lines.get(slot)
        got = dect_account(root, slot)
        if line is None:
            assert got == {"active": "0", "user": "", "auth": "", "password": "", "name": "",
                           "profile": "0"}  # fmt: skip
            continue
        assert got == {
            "active": "1",
            "user": line.user,
            "auth": line.auth_user,
            "password": line.password,
            "name": line.display_name,
            "profile": "0",
        }
    assert [p(root, k) for k in PROFILE_KEYS[0]] == ["1", "sip.example.net:5060", "", "0"]
    for active, server, proxy, transport in PROFILE_KEYS[1:]:
        assert (p(root, active), p(root, server), p(root, proxy)) == ("0", "", "")
        assert p(root, transport) is None
    # No desk-phone account keys on a base, and no 11th account.
    for key in ("P35", "P34", "P3", "P270", "P404", "P406", "P26015", "P4605", "P4070"):
        assert p(root, key) is None, key


def test_dect_registrars_fill_profiles_in_order() -> None:
    data = with_lines("grandstream-dp750", (1, 2, 3, 4, 5))
    hosts = {1: "a.example", 2: "b.example", 3: "a.example", 4: "c.example", 5: "d.example"}
    data = replace(
        data,
        lines={
            s: replace(ln, registrar_host=hosts[s], transport="tls") for s, ln in data.lines.items()
        },
    )
    root = render(data)
    assert [dect_account(root, s)["profile"] for s in range(1, 6)] == ["0", "1", "0", "2", "3"]
    for (active, server, _, transport), host in zip(PROFILE_KEYS, "abcd", strict=True):
        assert (p(root, active), p(root, server), p(root, transport)) == (
            "1", f"{host}.example:5060", "2"
        )  # fmt: skip


def test_dect_fifth_registrar_fails_loudly() -> None:
    data = with_lines("grandstream-dp750", (1, 2, 3, 4, 5))
    data = replace(
        data, lines={s: replace(ln, registrar_host=f"r{s}.example") for s, ln in data.lines.items()}
    )
    ((_, spec),) = device_files(CATALOG, data.model_id, MAC)
    with pytest.raises(RenderError):
        render_file(RENDERER, SETTINGS, data, spec)


def test_dect_eleventh_account_fails_loudly() -> None:
    model = replace(FAMILY.models["grandstream-dp750"], slots=11)
    catalog = Catalog({"grandstream": replace(FAMILY, models={model.id: model})})
    data = sample_device(model.id, 11, 11)
    ((_, spec),) = device_files(catalog, model.id, MAC)
    with pytest.raises(RenderError):
        render_file(Renderer(catalog), SETTINGS, data, spec)


@pytest.mark.parametrize(
    "model_id", ["grandstream-gxp2120", "grandstream-grp2616", "grandstream-dp750"]
)
def test_desk_golden(model_id: str) -> None:
    """The generic golden files show the GXV3350 (most slots: 16); these show the two other desk
    numberings (GXP: accounts 5-6 in P17xx/P18xx; GRP: in P7xx/P8xx) and the DECT base's,
    every account used."""
    model = CATALOG.model(model_id)
    assert model is not None
    data = sample_device(model_id, model.slots, model.slots)
    ((name, spec),) = device_files(CATALOG, model_id, data.mac)
    body = render_file(RENDERER, SETTINGS, data, spec).body.decode("utf-8")
    golden = GOLDEN / f"{model_id}-full--{name}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body, encoding="utf-8")
    assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
    assert body == golden.read_text(encoding="utf-8"), f"{golden.name} differs"


# GXV33xx (Wazo GXV3350.tpl): account N >= 2 at P<N+2>xx up to account 16 (P18xx); no "Allow SIP
# Reset" key. Transport P<N+2>48 as on the GRP (unconfirmed on a GXV: REFERENCES.md).
GXV_KEYS = {1: KEYS_1_TO_4[1][:-1]} | {
    n: tuple(f"P{n + 2}{suffix}" for suffix in ("01", "17", "07", "04", "05", "06", "02", "48"))
    for n in range(2, 17)
}


@pytest.mark.parametrize("slots", [(1, 2), (2, 16), (7, 15)])
def test_gxv_accounts(slots: tuple[int, ...]) -> None:
    data = with_lines("grandstream-gxv3350", slots)
    ((_, spec),) = device_files(CATALOG, data.model_id, data.mac)
    # Read through the strict XML parser of tests/families/strict.py (no DTD, UTF-8, one root).
    root = parse_xml(render_file(RENDERER, SETTINGS, data, spec).body)
    assert GXV_KEYS[16][0] == "P1801" and GXV_KEYS[9][6] == "P1102"
    for slot, (active, name, display, user, auth, password, server, transport) in GXV_KEYS.items():
        line = data.lines.get(slot)
        if line is None:
            assert p(root, active) == "0", active
            for key in (name, display, user, auth, password, server):
                assert p(root, key) == "", key
            assert p(root, transport) is None
            continue
        assert p(root, active) == "1"
        assert p(root, name) == line.number
        assert p(root, display) == line.display_name
        assert p(root, user) == line.user
        assert p(root, auth) == line.auth_user
        assert p(root, password) == line.password
        assert p(root, server) == f"{line.registrar_host}:{line.registrar_port}"
        assert p(root, transport) == TRANSPORT[line.transport]
    # No "Allow SIP Reset" on a GXV (P26<N-1>15 has no room past account 10), no DECT keys.
    config = root.find("config")
    assert config is not None
    assert not [el.tag for el in config if el.tag.startswith("P26") and el.tag.endswith("15")]
    for key in ("P4060", "P4595", "P747"):
        assert p(root, key) is None, key
    # Time zone and language as on the desk phones (GXV3350.tpl: P64, P1362).
    assert p(root, "P64") is not None


def test_gxv_seventeenth_account_fails_loudly() -> None:
    model = replace(FAMILY.models["grandstream-gxv3350"], slots=17)
    catalog = Catalog({"grandstream": replace(FAMILY, models={model.id: model})})
    data = sample_device(model.id, 17, 17)
    ((_, spec),) = device_files(catalog, model.id, MAC)
    with pytest.raises(RenderError):
        render_file(Renderer(catalog), SETTINGS, data, spec)


def test_gxv_two_lines_on_two_registrars() -> None:
    """Slot 1 and slot 2 with different users, auth ids, registrars, ports and transports."""
    data = strict_two_lines(CATALOG, "grandstream-gxv3370", MAC)
    ((_, spec),) = device_files(CATALOG, data.model_id, data.mac)
    root = parse_xml(render_file(RENDERER, SETTINGS, data, spec).body)
    for slot, line in ((1, LINE_1), (2, LINE_2)):
        _, _, _, user, auth, password, server, transport = GXV_KEYS[slot]
        assert p(root, user) == line.user
        assert p(root, auth) == line.auth_user
        assert p(root, password) == line.password
        assert p(root, server) == f"{line.registrar_host}:{line.registrar_port}"
        assert p(root, transport) == TRANSPORT[line.transport]
