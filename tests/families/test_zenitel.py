"""Zenitel IP stations: the underscore MAC file name, the INI file read through the strict parser
(` key=value` under `[section]`), two lines on two registrars with different auth ids and
transports (one slot: two stations), an unused slot written blank, IPv6 and non-default ports,
the re-check interval, refusals. The fetch over TFTP is tests/test_tftp.py's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from provisioning.devices.catalog import CatalogError, load_catalog
from provisioning.devices.identify import match_file
from provisioning.devices.mac import normalize_mac
from provisioning.devices.models_table import file_names
from provisioning.render.check import sample_device
from provisioning.render.context import DeviceData, LineData
from provisioning.render.environment import Renderer, RenderError
from provisioning.render.files import device_files, render_file
from provisioning.render.validate import validate
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_1, LINE_2, FormatError, parse_ini_indented

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["zenitel"]
MODEL = FAMILY.models["zenitel-ip_station"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0013cb010203"  # Zenitel's prefix 00:13:CB (Wazo dhcpd_update/zenitel.conf)
FILE = "ipst_config_00_13_cb_01_02_03.cfg"


def station(line: LineData | None, mac: str = MAC) -> DeviceData:
    data = replace(sample_device(MODEL.id, MODEL.slots, 0), mac=mac)
    return replace(data, lines={1: line} if line else {})


def rendered(data: DeviceData, settings: Settings = SETTINGS) -> bytes:
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    assert name == f"ipst_config_{'_'.join(data.mac[i : i + 2] for i in range(0, 12, 2))}.cfg"
    body = render_file(RENDERER, settings, data, spec).body
    assert validate(spec.format, body) == []
    return body


def render(data: DeviceData, settings: Settings = SETTINGS) -> dict[str, str]:
    return parse_ini_indented(rendered(data, settings))


def test_file_name_with_underscores_and_catalog() -> None:
    (match,) = match_file(CATALOG, FILE)
    assert match.family is FAMILY and match.mac == MAC
    assert match.spec.lines and match.spec.secret and match.spec.tftp
    # Matched in any case (Wazo's regex takes `\w\w`); generated lower case.
    (upper,) = match_file(CATALOG, "ipst_config_00_13_CB_01_02_03.cfg")
    assert upper.mac == MAC
    assert FAMILY.file_names(MAC, MODEL) == [FILE]
    assert file_names(FAMILY, MODEL) == "`ipst_config_<aa_bb_cc_dd_ee_ff>.cfg`"
    # The shared file names no device: not served (REFERENCES.md), and nothing else is TFTP.
    assert match_file(CATALOG, "ipst_config.cfg") == []
    assert match_file(CATALOG, "ipst_config_00_13_cb_01_02.cfg") == []
    assert match_file(CATALOG, "ipst_config_00_13_cb_01_02_0g.cfg") == []
    tftp = {f.name for f in CATALOG for spec in f.files if spec.tftp}
    assert tftp == {"zenitel"}
    assert (MODEL.slots, MODEL.unwritten, MODEL.confirmed) == (1, ("transport",), False)
    assert FAMILY.notify_event is None and FAMILY.ua_patterns == ()
    assert normalize_mac("00_13_CB_01_02_03") == MAC


def test_a_pattern_naming_the_mac_twice_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "twice"
    folder.mkdir()
    (folder / "f.j2").write_text("[s]\n x=1\n")
    (folder / "family.toml").write_text(
        '[family]\nvendor = "V"\nformat = "ini_indented"\n'
        '[[files]]\nname = "{mac}_{mac_underscore}.cfg"\ntemplate = "f.j2"\nlines = true\n'
        '[models.m]\nlabel = "M"\nslots = 1\n'
    )
    with pytest.raises(CatalogError, match="names the MAC more than once"):
        load_catalog(tmp_path)


def test_two_lines_on_two_registrars() -> None:
    """One slot per station: the two lines on two stations, each read back whole."""
    alice, bob = render(station(LINE_1)), render(station(LINE_2, "0013cb0a0b0c"))
    assert alice == {
        "general/auto_update_interval": "5",
        "sip/nick_name": "Alice",
        "sip/sip_id": "alice-u1",
        "sip/sip_domain": "pbx-a.example.net",  # port 5060: the host alone, as Wazo writes it
        "sip/sip_domain2": "",
        "sip/auth_user": "auth-alice-a1",
        "sip/auth_pwd": "pw-alice-p1",
    }
    assert bob["sip/sip_id"] == "bob-u2" and bob["sip/auth_user"] == "auth-bob-a2"
    assert bob["sip/auth_pwd"] == "pw-bob-p2" and bob["sip/nick_name"] == "Bob"
    assert bob["sip/sip_domain"] == "pbx-b.example.org:5071"  # no port key: host:port
    assert set(alice) == set(bob)


def test_transport_is_unwritten() -> None:
    """No key for it: a TLS line and a UDP line give the same bytes (declared `unwritten`)."""
    assert rendered(station(replace(LINE_2, transport="udp"))) == rendered(station(LINE_2))
    assert rendered(station(replace(LINE_2, transport="tcp"))) == rendered(station(LINE_2))


def test_an_unused_slot_is_written_blank() -> None:
    cfg = render(station(None))
    sip = {k: v for k, v in cfg.items() if k.startswith("sip/")}
    assert sip and all(value == "" for value in sip.values())
    assert set(sip) == {k for k in render(station(LINE_1)) if k.startswith("sip/")}


def test_ipv6_registrar() -> None:
    v6 = replace(LINE_1, registrar_host="2001:db8::10", registrar_port=5070)
    assert render(station(v6))["sip/sip_domain"] == "[2001:db8::10]:5070"
    bare = replace(v6, registrar_port=5060)
    assert render(station(bare))["sip/sip_domain"] == "2001:db8::10"


def test_re_check_interval_follows_poll_interval() -> None:
    settings = replace(SETTINGS, poll_interval=120)
    assert render(station(LINE_1), settings)["general/auto_update_interval"] == "2"


@pytest.mark.parametrize("password", ["pw\nauth_pwd=x", "pw\r", "pw\x00"])
def test_a_line_break_in_a_value_is_refused(password: str) -> None:
    with pytest.raises(RenderError):
        rendered(station(replace(LINE_1, password=password)))


def test_separators_in_values_stay_values() -> None:
    """The value is the rest of the line: `=`, `[`, `#` and spaces change no setting."""
    odd = replace(LINE_1, display_name="[sip] x=y # z", password=" a=b ")
    cfg = render(station(odd))
    assert cfg["sip/nick_name"] == "[sip] x=y # z" and cfg["sip/auth_pwd"] == " a=b "
    assert set(cfg) == set(render(station(LINE_1)))


@pytest.mark.parametrize(
    "body",
    [b"[sip]\nsip_id=x\n", b"[sip]\n# comment\n", b"sip_id=x\n", b"[sip]\n sip_id=x\n sip_id=y\n"],
)
def test_the_strict_parser_refuses_what_the_station_format_is_not(body: bytes) -> None:
    with pytest.raises(FormatError):
        parse_ini_indented(body)
