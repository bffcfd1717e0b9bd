"""Gigaset IP DECT bases (N510 IP PRO; N670 / N870 IP PRO): identification from real requests,
and what the rendered `<MAC>.xml` tells each generation (vendor-formats.md section 6)."""

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
FAMILY = CATALOG.families["gigaset"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
GOLDEN = Path(__file__).parent.parent / "golden" / "gigaset"
MAC = "7c2f804df9a9"
N510, N670, N870 = "gigaset-n510", "gigaset-n670", "gigaset-n870"
N720 = "gigaset-n720"

# (User-Agent, model id or None, firmware, MAC or None).
USER_AGENTS = [
    # From the reference.
    ("N510 IP PRO/42.245.00.000.000;7C2F804DF9A9", N510, "42.245.00.000.000", "7c2f804df9a9"),
    ("Gigaset N870 IP PRO/83.V2.11.0+build.a546b91;7C2F80E0D605", N870, "83.V2.11.0", "7c2f80e0d605"),
    # Quoted, with the handset suffix the reference mentions.
    ('"Gigaset N870 IP PRO/83.V2.48.0+build.3c2a5e1;7C2F80E0D605;Handset=3"', N870, "83.V2.48.0", "7c2f80e0d605"),
    ("Gigaset N670 IP PRO/83.V2.39.0+build.f1e2d3c;7C2F80A1B2C3", N670, "83.V2.39.0", "7c2f80a1b2c3"),
    # Older N510 software sends no MAC.
    ("N510 IP PRO/42.258.00.000.000", N510, "42.258.00.000.000", None),
    # Wazo common/common.py (issue 19: the N720).
    ("Gigaset N720 DM PRO/70.089.00.000.000;7C2F80CA21E4", N720, "70.089.00.000.000", "7c2f80ca21e4"),
    ("Gigaset N720 DM PRO/70.108.00.000.000", N720, "70.108.00.000.000", None),
    ("N720-DM-PRO/70.040.00.000.000", N720, "70.040.00.000.000", None),
    # Gigaset bases the catalog does not list: the family is known, the model is not.
    ("Gigaset N870E IP PRO/83.V2.65.0+build.d1d6a22;7C2F80000E01", None, "83.V2.65.0", "7c2f80000e01"),
]  # fmt: skip


@pytest.mark.parametrize(("ua", "model", "firmware", "mac"), USER_AGENTS)
def test_user_agents(ua: str, model: str | None, firmware: str, mac: str | None) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is not None
    assert info.family is FAMILY
    assert (info.model.id if info.model else None) == model
    assert info.firmware == firmware
    assert info.mac == mac


@pytest.mark.parametrize(
    "ua",
    [
        "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37",
        "N510 IP PRO",
        "Gigaset",
        "Mozilla/5.0 (X11; Linux x86_64) N510/1.0",
        "curl/8.5.0",
    ],
)
def test_other_user_agents_are_not_gigaset(ua: str) -> None:
    info = parse_user_agent(CATALOG, ua)
    assert info is None or info.family is not FAMILY


@pytest.mark.parametrize(
    ("name", "mac"),
    [("7C2F804DF9A9.xml", MAC), ("7c2f804df9a9.xml", MAC), ("7C2f804Df9A9.xml", MAC)],
)
def test_file_names(name: str, mac: str) -> None:
    (match,) = [m for m in match_file(CATALOG, name) if m.family is FAMILY]
    assert match.mac == mac


@pytest.mark.parametrize(
    "name", ["000000000000.xml", "7C2F804DF9A9.cfg", "7C2F804DF9A9.xml.bak", "master.bin"]
)
def test_other_file_names_are_not_gigaset(name: str) -> None:
    assert all(m.family is not FAMILY for m in match_file(CATALOG, name))


def test_catalog() -> None:
    models = FAMILY.models
    assert {m.id: m.slots for m in models.values()} == {N510: 6, N670: 20, N870: 250, N720: 100}
    # The reference confirms none of the account counts (the N720's is Wazo's, but its
    # provisioning-server keys are unconfirmed).
    assert not any(m.confirmed for m in models.values())
    assert {m.id: m.code for m in models.values()} == {
        N510: "42",
        N670: "83",
        N870: "83",
        N720: "70",
    }
    assert FAMILY.models[N720].unwritten == ("transport",)
    assert FAMILY.notify_event == "check-sync;reboot=false"
    for model_id in models:
        names = [(name, spec.secret) for name, spec in device_files(CATALOG, model_id, MAC)]
        assert names == [("7C2F804DF9A9.xml", True)]


def device(model_id: str, lines: int = 2, **changes: str) -> DeviceData:
    model = FAMILY.models[model_id]
    return replace(sample_device(model_id, model.slots, lines), mac=MAC, **changes)


def n510(lines: int = 2, **changes: str) -> DeviceData:
    """An N510 whose passwords carry no double quote (the sample's hostile one does, and the
    N510 format refuses it: see test_n510_double_quote_in_a_credential)."""
    data = device(N510, lines, **changes)
    kept = {s: replace(ln, password=ln.password.replace('"', "")) for s, ln in data.lines.items()}
    return replace(data, lines=kept)


def render(data: DeviceData, settings: Settings = SETTINGS) -> str:
    ((_, spec),) = device_files(CATALOG, data.model_id, data.mac)
    return render_file(RENDERER, settings, data, spec).body.decode("utf-8")


# --- N510 IP PRO: <ProviderFrame> of SYMB_ITEMs


def n510_items(text: str) -> tuple[ET.Element, dict[str, str]]:
    root = ET.fromstring(text)
    assert root.tag == "ProviderFrame"
    (provider,) = root
    items: dict[str, str] = {}
    for item in provider.iter("SYMB_ITEM"):
        assert item.get("class") == "symb_item"
        key = item.attrib["ID"]
        assert key not in items, f"{key} set twice"
        items[key] = item.attrib["value"]
    return provider, items


def quoted(value: str) -> str:
    """The N510 writes strings inside double quotes."""
    assert value.startswith('"') and value.endswith('"') and len(value) >= 2, value
    return value[1:-1]


def test_n510_two_lines() -> None:
    data = n510()
    provider, items = n510_items(render(data))
    assert provider.find("MAC_ADDRESS").attrib["value"] == "7C2F804DF9A9"  # type: ignore[union-attr]
    for slot, suffix in ((1, ""), (2, "_2")):
        line = data.lines[slot]
        assert items[f"BS_IP_Data1.ucB_SIP_ACCOUNT_IS_ACTIVE_{slot}"] == "0x1"
        assert quoted(items[f"BS_IP_Data1.aucS_SIP_ACCOUNT_NAME_{slot}"]) == line.number
        # A double quote would end the device's string: the name's are turned into apostrophes.
        display = quoted(items[f"BS_IP_Data1.aucS_SIP_DISPLAYNAME{suffix}"])
        assert display == line.display_name.replace('"', "'")
        assert quoted(items[f"BS_IP_Data1.aucS_SIP_USER_ID{suffix}"]) == line.user
        assert quoted(items[f"BS_IP_Data3.aucS_SIP_LOGIN_ID{suffix}"]) == line.auth_user
        assert quoted(items[f"BS_IP_Data1.aucS_SIP_PASSWORD{suffix}"]) == line.password
        for key in ("DOMAIN", "SERVER", "REGISTRAR"):
            assert quoted(items[f"BS_IP_Data1.aucS_SIP_{key}{suffix}"]) == line.registrar_host
        assert items[f"BS_IP_Data1.uiI_SIP_SERVER_PORT{suffix}"] == "0x13c4"  # 5060
        assert items[f"BS_IP_Data1.uiI_SIP_REGISTRAR_PORT{suffix}"] == "0x13c4"
        mask = hex(1 << (slot - 1))
        assert items[f"BS_Accounts.astAccounts[{slot - 1}].uiSendMask"] == mask
        assert items[f"BS_Accounts.astAccounts[{slot - 1}].uiReceiveMask"] == mask
    assert "BS_IP_Data1.aucS_SIP_USER_ID_1" not in items  # account 1 has no suffix
    for slot in range(3, 7):
        assert items[f"BS_IP_Data1.ucB_SIP_ACCOUNT_IS_ACTIVE_{slot}"] == "0x0"
        assert items[f"BS_IP_Data1.aucS_SIP_ACCOUNT_NAME_{slot}"] == '""'
        for key in ("DISPLAYNAME", "USER_ID", "PASSWORD", "DOMAIN", "SERVER", "REGISTRAR"):
            assert items[f"BS_IP_Data1.aucS_SIP_{key}_{slot}"] == '""'
        assert items[f"BS_IP_Data3.aucS_SIP_LOGIN_ID_{slot}"] == '""'
        assert items[f"BS_Accounts.astAccounts[{slot - 1}].uiSendMask"] == "0x0"
        assert items[f"BS_Accounts.astAccounts[{slot - 1}].uiReceiveMask"] == "0x0"
    assert "BS_IP_Data1.ucB_SIP_ACCOUNT_IS_ACTIVE_7" not in items


def test_n510_polling_timezone_language() -> None:
    _, items = n510_items(render(n510()))
    # No periodic re-check interval key is known for the N510: profile updates are switched on,
    # the check-sync NOTIFY does the rest (family.toml, _n510.xml.j2).
    assert items["BS_IP_Data.ucB_AUTO_UPDATE_PROFILE"] == "0x1"
    assert items["BS_IP_Data1.uiI_TIME_TIMEZONE"] == "0x1b"  # Europe/Paris, GMT+1
    assert items["BS_IP_Data1.ucB_TIME_USE_AUTOMATIC_DST"] == "0x1"
    assert items["BS_IP_Data1.ucI_HTTPLANGUAGE"] == "0x9"  # French
    _, us = n510_items(render(n510(timezone="America/New_York", language="de")))
    assert us["BS_IP_Data1.uiI_TIME_TIMEZONE"] == "0x0d"
    assert us["BS_IP_Data1.ucI_HTTPLANGUAGE"] == "0x2"
    # An offset without a zone number both sources agree on, an unknown language: left alone.
    _, other = n510_items(render(n510(timezone="Asia/Kolkata", language="xx")))
    assert "BS_IP_Data1.uiI_TIME_TIMEZONE" not in other
    assert "BS_IP_Data1.ucB_TIME_USE_AUTOMATIC_DST" not in other
    assert "BS_IP_Data1.ucI_HTTPLANGUAGE" not in other


def test_n510_firmware(tmp_path: Path) -> None:
    settings = Settings(public_url="http://prov.example.net", secret_key=(), firmware_dir=tmp_path)
    provider, _ = n510_items(render(n510(), settings))
    assert provider.find("S_SPECIAL_DATA_SRV") is None
    (tmp_path / "gigaset").mkdir()
    for name in ("N510-42.245.bin", "N510-42.258.bin", "Gigaset-Nx70-V2.65.0-build.d1d6a22.bin"):
        (tmp_path / "gigaset" / name).write_bytes(b"x")
    provider, _ = n510_items(render(n510(), settings))
    server = provider.find("S_SPECIAL_DATA_SRV")
    assert server is not None
    assert server.attrib["class"] == "string"
    url = "http://prov.example.net/firmware/gigaset/N510-42.258.bin"
    assert quoted(server.attrib["value"]) == url


def test_n510_provisioning_url() -> None:
    """The base is given this device's token URL (Wazo's N510 template writes both keys), so its
    later fetches carry the token; without the scheme, as Wazo writes them."""
    provider, items = n510_items(render(n510()))
    server = f"prov.example.net/{SAMPLE_TOKEN}"
    assert quoted(items["BS_IP_Data1.aucS_DATA_SERVER[0]"]) == server
    config = provider.find("S_CONFIGFILE_URL")
    assert config is not None and config.attrib["class"] == "string"
    assert quoted(config.attrib["value"]) == f"{server}/7C2F804DF9A9.xml"
    https = Settings(public_url="https://example.net:8443/prov/", secret_key=())
    provider, items = n510_items(render(n510(), https))
    server = f"example.net:8443/prov/{SAMPLE_TOKEN}"
    assert quoted(items["BS_IP_Data1.aucS_DATA_SERVER[0]"]) == server
    assert quoted(provider.find("S_CONFIGFILE_URL").attrib["value"]) == (  # type: ignore[union-attr]
        f"{server}/7C2F804DF9A9.xml"
    )


@pytest.mark.parametrize("field", ["password", "user", "auth_user", "registrar_host"])
def test_n510_double_quote_in_a_credential(field: str) -> None:
    """No escape of a double quote inside the N510's quoted strings is known: the file is not
    rendered (not sent cut short, not silently left inactive); the error names the slot and
    why, never the value. The phone endpoint answers such a render error 503 and logs it."""
    data = n510()
    lines = dict(data.lines)
    lines[2] = replace(lines[2], **{field: 'pa"ss-SECRET'})
    with pytest.raises(RenderRefused) as info:
        render(replace(data, lines=lines))
    message = str(info.value)
    assert message.startswith("gigaset/device.xml.j2: slot 2: ")
    assert "contains a double quote, which an N510 file cannot carry" in message
    assert "SECRET" not in message and "pa" not in message.split("slot 2:")[1].split()[0]
    # Slot 1 alone renders: the refusal is about slot 2's data, nothing else.
    del lines[2]
    _, items = n510_items(render(replace(data, lines=lines)))
    assert items["BS_IP_Data1.ucB_SIP_ACCOUNT_IS_ACTIVE_1"] == "0x1"


def test_n510_double_quote_in_a_name_is_not_refused() -> None:
    """Names are only shown: their double quotes become apostrophes instead."""
    data = n510()
    lines = {1: replace(data.lines[1], display_name='Zo "Z"', password="pw")}
    _, items = n510_items(render(replace(data, lines=lines)))
    assert items["BS_IP_Data1.aucS_SIP_DISPLAYNAME"] == "\"Zo 'Z'\""


def test_nx70_double_quote_in_a_credential_is_carried() -> None:
    """Nx70 values are plain XML attributes: a double quote is escaped, not refused."""
    data = device(N870)
    lines = {1: replace(data.lines[1], password='pa"ss')}
    _, params = nx70_params(render(replace(data, lines=lines)))
    assert 'pa"ss' in params.values()


HOSTILE_NAMES = ['a"b', "it's", "<b>&amp;</b>", "-->", "]]>", '"; x="', "\u00e9 \u4e2d \U0001f600"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_n510_hostile_display_names(name: str) -> None:
    data = n510()
    lines = {slot: replace(line, display_name=name) for slot, line in data.lines.items()}
    evil = replace(data, lines=lines)
    _, items = n510_items(render(evil))
    _, plain = n510_items(render(data))
    assert list(items) == list(plain)
    for suffix in ("", "_2"):
        value = quoted(items[f"BS_IP_Data1.aucS_SIP_DISPLAYNAME{suffix}"])
        assert '"' not in value
        assert value == name.replace('"', "'")


# --- Nx70 (N670 / N870 IP PRO): <provisioning><nvm><param name value/>


def nx70_params(text: str) -> tuple[ET.Element, dict[str, str]]:
    root = ET.fromstring(text)
    assert root.tag == "provisioning"
    assert (root.get("version"), root.get("productID")) == ("1.1", "e2")
    (nvm,) = root.iter("nvm")
    params: dict[str, str] = {}
    for param in nvm.iter("param"):
        key = param.attrib["name"]
        assert key not in params, f"{key} set twice"
        params[key] = param.attrib["value"]
    return root, params


@pytest.mark.parametrize("model_id", [N670, N870])
def test_nx70_two_lines(model_id: str) -> None:
    data = device(model_id)
    _, params = nx70_params(render(data))
    server_url = f"http://prov.example.net/{SAMPLE_TOKEN}/"
    assert params["Provisioning.global.ProvisioningServer"] == server_url
    for slot, transport in ((1, "2"), (2, "3")):  # the sample's slot 1 is TCP, slot 2 TLS
        line = data.lines[slot]
        account = f"SipAccount.{slot:05d}."
        assert params[account + "DisplayName"] == line.display_name
        assert params[account + "UserName"] == line.user
        assert params[account + "AuthName"] == line.auth_user
        assert params[account + "AuthPassword"] == line.password
        provider = f"SipProvider.{params[account + 'ProviderId']}."
        assert params[provider + "Domain"] == line.registrar_host
        assert params[provider + "RegServerAddress"] == line.registrar_host
        assert params[provider + "RegServerPort"] == str(line.registrar_port)
        assert params[provider + "ProxyServerAddress"] == line.registrar_host
        assert params[provider + "ProxyServerPort"] == str(line.registrar_port)
        assert params[provider + "TransportProtocol"] == transport
    assert params["SipAccount.00001.ProviderId"] != params["SipAccount.00002.ProviderId"]
    slots = FAMILY.models[model_id].slots
    for slot in range(3, slots + 1):
        account = f"SipAccount.{slot:05d}."
        for key in ("DisplayName", "UserName", "AuthName", "AuthPassword"):
            assert params[account + key] == ""
        assert account + "ProviderId" not in params
    assert not any(key.startswith(f"SipAccount.{slots + 1:05d}.") for key in params)


def test_nx70_lines_share_a_provider() -> None:
    data = device(N870, 3)
    lines = {slot: replace(line, transport="udp") for slot, line in data.lines.items()}
    lines[3] = replace(lines[3], registrar_host="pbx2.example.net", registrar_port=5080)
    _, params = nx70_params(render(replace(data, lines=lines)))
    ids = [params[f"SipAccount.{slot:05d}.ProviderId"] for slot in (1, 2, 3)]
    assert ids == ["0", "0", "1"]
    assert not any(key.startswith("SipProvider.2.") for key in params)
    for provider in (0, 1):
        assert params[f"SipProvider.{provider}.TransportProtocol"] == "1"
    assert params["SipProvider.1.RegServerAddress"] == "pbx2.example.net"
    assert params["SipProvider.1.RegServerPort"] == "5080"


def test_nx70_timezone_and_language() -> None:
    _, params = nx70_params(render(device(N670)))
    assert params["DmGlobal.0.TimeZone"] == "Europe/Paris"
    _, other = nx70_params(render(device(N670, timezone="Pacific/Chatham", language="de")))
    assert "DmGlobal.0.TimeZone" not in other  # not a zone the base knows: left alone
    # No language and no periodic re-check key is known for Nx70 (family.toml, _nx70.xml.j2).
    assert not any("Language" in key or "Period" in key for key in other)


def test_nx70_firmware(tmp_path: Path) -> None:
    settings = Settings(public_url="http://prov.example.net", secret_key=(), firmware_dir=tmp_path)
    root, _ = nx70_params(render(device(N870), settings))
    assert root.find("firmware") is None
    (tmp_path / "gigaset").mkdir()
    for name in (
        "Gigaset-Nx70-V2.62.1-build.e2b41a8.bin",
        "Gigaset-Nx70-V2.65.0-build.d1d6a22.bin",
        "N510-42.258.bin",
    ):
        (tmp_path / "gigaset" / name).write_bytes(b"x")
    root, _ = nx70_params(render(device(N870), settings))
    (image,) = root.iter("file")
    assert image.attrib == {
        "version": "2.65.0",
        "url": "http://prov.example.net/firmware/gigaset/Gigaset-Nx70-V2.65.0-build.d1d6a22.bin",
    }


def test_n510_golden() -> None:
    """The generic golden files show the N510 with every slot; this one two lines on another MAC."""
    body = render(n510())
    golden = GOLDEN / "gigaset-n510-2-lines--7C2F804DF9A9.xml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body, encoding="utf-8")
    assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
    assert body == golden.read_text(encoding="utf-8"), f"{golden.name} differs"


def test_nx70_golden() -> None:
    """The Nx70 format (`<provisioning><nvm>`): an N670 with two lines (the generic golden files
    show the N510's `<ProviderFrame>`)."""
    body = render(device(N670))
    golden = GOLDEN / "gigaset-n670-2-lines--7C2F804DF9A9.xml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body, encoding="utf-8")
    assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
    assert body == golden.read_text(encoding="utf-8"), f"{golden.name} differs"


# --- N720 DM PRO: <ProviderFrame> of SYMB_ITEMs, accounts and provider profiles (Wazo N720)


def n720_items(text: str) -> dict[str, str]:
    """Through the strict XML parser of tests/families/strict.py: each SYMB_ITEM once."""
    root = parse_xml(text.encode("utf-8"))
    assert root.tag == "ProviderFrame"
    assert root.get(f"{{{XSI}}}noNamespaceSchemaLocation") == "N720_general.xsd"
    (provider,) = root
    assert provider.find("PROFILE_NAME").attrib == {"class": "string", "value": "N720"}  # type: ignore[union-attr]
    assert provider.find("MAC_ADDRESS").attrib == {"value": MAC.upper()}  # type: ignore[union-attr]
    items: dict[str, str] = {}
    for item in provider.iter("SYMB_ITEM"):
        assert item.get("class") == "symb_item"
        key = item.attrib["ID"]
        assert key not in items, f"{key} set twice"
        items[key] = item.attrib["value"]
    return items


XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACCOUNT = "BS_VOIP_Data.astVoipAccounts[{}]."
PROVIDER = "BS_VOIP_Data.astVoipProviders[{}]."


def n720_slot(items: dict[str, str], slot: int) -> tuple[str, str, str, str, int]:
    """Slot N's user, auth id, password, registrar and port, through its provider profile."""
    a = ACCOUNT.format(slot - 1)
    assert items[a + "ucB_SIP_ACCOUNT_IS_ACTIVE_1"] == "1"
    p = PROVIDER.format(items[a + "ucVoipProviderIndex"])
    assert items[p + "aucSIP_SERVER[%]"] == items[p + "aucSIP_REGISTRAR[%]"]
    assert items[p + "uiSIP_SERVER_PORT"] == items[p + "uiSIP_REGISTRAR_PORT"]
    return (
        quoted(items[a + "aucS_SIP_USER_ID[0]"]),
        quoted(items[a + "aucS_SIP_LOGIN_ID[0]"]),
        quoted(items[a + "aucS_SIP_PASSWORD[0]"]),
        quoted(items[p + "aucSIP_REGISTRAR[%]"]),
        int(items[p + "uiSIP_REGISTRAR_PORT"], 16),
    )


def test_n720_two_lines_with_their_own_registrars() -> None:
    data = two_lines(CATALOG, N720, MAC)
    items = n720_items(render(data))
    for slot, line in ((1, LINE_1), (2, LINE_2)):
        expected = (
            line.user,
            line.auth_user,
            line.password,
            line.registrar_host,
            line.registrar_port,
        )
        assert n720_slot(items, slot) == expected, slot
    # Two registrars, two provider profiles; no third.
    assert items[ACCOUNT.format(0) + "ucVoipProviderIndex"] == "0"
    assert items[ACCOUNT.format(1) + "ucVoipProviderIndex"] == "1"
    assert PROVIDER.format(2) + "aucSIP_SERVER[%]" not in items
    # Slots 3..100 are inactive and emptied; nothing beyond account 100.
    for i in range(2, 100):
        a = ACCOUNT.format(i)
        assert items[a + "ucB_SIP_ACCOUNT_IS_ACTIVE_1"] == "0"
        for key in ("aucS_SIP_USER_ID[0]", "aucS_SIP_LOGIN_ID[0]", "aucS_SIP_PASSWORD[0]"):
            assert items[a + key] == '""', a + key
    assert ACCOUNT.format(100) + "ucB_SIP_ACCOUNT_IS_ACTIVE_1" not in items
    # No transport key: the model declares it unwritten (REFERENCES.md).
    assert not [key for key in items if "TRANSPORT" in key]
    swapped = replace(data, lines={1: LINE_2, 2: LINE_1})
    swapped_items = n720_items(render(swapped))
    assert n720_slot(swapped_items, 1)[:3] == (LINE_2.user, LINE_2.auth_user, LINE_2.password)


def test_n720_lines_on_one_registrar_share_a_profile() -> None:
    data = two_lines(CATALOG, N720, MAC)
    same = replace(
        LINE_2, registrar_host=LINE_1.registrar_host, registrar_port=LINE_1.registrar_port
    )
    items = n720_items(render(replace(data, lines={1: LINE_1, 3: same})))
    assert items[ACCOUNT.format(0) + "ucVoipProviderIndex"] == "0"
    assert items[ACCOUNT.format(2) + "ucVoipProviderIndex"] == "0"
    assert PROVIDER.format(1) + "aucSIP_SERVER[%]" not in items


def test_n720_provisioning_time_and_language() -> None:
    data = two_lines(CATALOG, N720, MAC)
    items = n720_items(render(data))
    text = render(data)
    server = f"prov.example.net/{SAMPLE_TOKEN}"
    assert quoted(items["BS_IP_Data.aucS_DATA_SERVER[0]"]) == server
    assert f'<S_CONFIGFILE_URL class="string" value=\'"{server}/{MAC.upper()}.xml"\'/>' in text
    assert items["BS_IP_Data.ucB_DO_CHECK_FOR_PROFILE_UPDATES"] == "1"
    # Europe/Paris (UTC+1) -> 0x1b with automatic DST, French web UI 0x9 (the N510's tables).
    assert (data.timezone, data.language) == ("Europe/Paris", "fr")
    assert items["BS_IP_Data.uiI_TIME_TIMEZONE"] == "0x1b"
    assert items["BS_IP_Data.ucB_TIME_USE_AUTOMATIC_DST"] == "1"
    assert items["BS_IP_Data.ucI_HTTPLANGUAGE"] == "0x9"


@pytest.mark.parametrize("field", ["user", "auth_user", "password", "registrar_host"])
def test_n720_double_quote_in_a_credential(field: str) -> None:
    data = two_lines(CATALOG, N720, MAC)
    bad = replace(data, lines={1: LINE_1, 2: replace(LINE_2, **{field: 'a"b'})})
    ((_, spec),) = device_files(CATALOG, N720, MAC)
    with pytest.raises(RenderRefused, match=r"slot 2: .* double quote"):
        render_file(RENDERER, SETTINGS, bad, spec)


def test_n720_golden() -> None:
    """The N720's symbols: two lines on two registrars (the generic golden files show the N510)."""
    body = render(two_lines(CATALOG, N720, MAC))
    golden = GOLDEN / "gigaset-n720-2-lines--7C2F804DF9A9.xml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(body, encoding="utf-8")
    assert golden.is_file(), f"missing golden file {golden} (UPDATE_GOLDEN=1 creates it)"
    assert body == golden.read_text(encoding="utf-8"), f"{golden.name} differs"


def test_n720_zone_without_a_code_is_left_alone() -> None:
    data = replace(two_lines(CATALOG, N720, MAC), timezone="Asia/Kolkata", language="xx")
    items = n720_items(render(data))
    assert "BS_IP_Data.uiI_TIME_TIMEZONE" not in items
    assert "BS_IP_Data.ucI_HTTPLANGUAGE" not in items
