"""Each family's own keys for two different lines (different users, auth ids, passwords,
registrars, ports and transports), read through the strictest parser of the format
(tests/families/strict.py), per format variant: slot 1 must hold line 1, slot 2 line 2, with the
vendor's own spelling of the transport. The generic test (tests/test_families.py) checks the
same for any family without naming keys; this one names them, from each REFERENCES.md."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace

import pytest

from provisioning.devices.catalog import load_catalog
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import LINE_1, LINE_2, parse_key_value, parse_xml, two_lines

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "0015654aa937"

# What each slot must carry: user, auth id, password, registrar host, port, transport as the
# vendor writes it for LINE_1 (UDP) and LINE_2 (TLS).
Slot = tuple[str, str, str, str, str, str]


def files(data: DeviceData) -> dict[str, bytes]:
    return {
        name: render_file(RENDERER, SETTINGS, data, spec).body
        for name, spec in device_files(CATALOG, data.model_id, data.mac)
        if spec.lines
    }


def one_text(root: ET.Element, path: str) -> str:
    found = root.findall(path)
    assert len(found) == 1, f"{path}: {len(found)} elements"
    return found[0].text or ""


def one_attr(root: ET.Element, path: str, name: str) -> str:
    found = root.findall(path)
    assert len(found) == 1, f"{path}: {len(found)} elements"
    return found[0].attrib[name]


# -- Per family: the slot's values read from the strictly parsed files. --------------------------


def yealink(data: DeviceData, slot: int) -> Slot:
    config = parse_key_value(files(data)[f"{data.mac}.cfg"])
    assert config[f"account.{slot}.enable"] == "1"
    return (
        config[f"account.{slot}.user_name"],
        config[f"account.{slot}.auth_name"],
        config[f"account.{slot}.password"],
        config[f"account.{slot}.sip_server.1.address"],
        config[f"account.{slot}.sip_server.1.port"],
        config[f"account.{slot}.sip_server.1.transport_type"],
    )


def polycom(data: DeviceData, slot: int) -> Slot:
    root = parse_xml(files(data)[f"{data.mac}-phone.cfg"])
    assert root.tag == "polycomConfig"
    (reg,) = [el for el in root.iter("reg") if f"reg.{slot}.address" in el.attrib]
    value = reg.attrib
    assert value[f"reg.{slot}.server.1.register"] == "1"
    return (
        value[f"reg.{slot}.address"],
        value[f"reg.{slot}.auth.userId"],
        value[f"reg.{slot}.auth.password"],
        value[f"reg.{slot}.server.1.address"],
        value[f"reg.{slot}.server.1.port"],
        value[f"reg.{slot}.server.1.transport"],
    )


def snom(data: DeviceData, slot: int) -> Slot:
    code = CATALOG.families["snom"].models[data.model_id].code
    root = parse_xml(files(data)[f"snom{code}-{data.mac.upper()}.htm"])
    assert root.tag == "settings"

    def get(key: str) -> str:
        return one_text(root, f"phone-settings/{key}[@idx='{slot}']")

    assert get("user_active") == "on"
    host, _, port = get("user_host").rpartition(":")
    outbound = get("user_outbound")
    assert outbound.startswith(f"{host}:{port};transport=")
    transport = outbound.rsplit("=", 1)[1]
    return (get("user_name"), get("user_pname"), get("user_pass"), host, port, transport)


def fanvil(data: DeviceData, slot: int) -> Slot:
    root = parse_xml(files(data)[f"{data.mac}.cfg"])
    if root.tag == "sysConf":
        line = f"sip/line[@index='{slot}']"
        assert one_text(root, f"{line}/EnableReg") == "1"
        keys = ("PhoneNumber", "RegisterUser", "RegisterPswd", "RegisterAddr", "RegisterPort")
    else:
        assert root.tag == "VOIP_CONFIG_FILE"
        line = f"SIP_CONFIG_MODULE/SIP_Line_List/SIP_Line_List_Entry[ID='SIP{slot}']"
        assert one_text(root, f"{line}/Enable_Reg") == "1"
        keys = ("Phone_Number", "Register_User", "Register_Pswd", "Register_Addr", "Register_Port")
    user, auth, password, host, port = (one_text(root, f"{line}/{k}") for k in keys)
    return (user, auth, password, host, port, one_text(root, f"{line}/Transport"))


def cisco(data: DeviceData, slot: int) -> Slot:
    values = []
    for name in (f"spa{data.mac}.xml", f"{data.mac}.xml"):  # SPA and MPP MAC files
        root = parse_xml(files(data)[name])
        assert root.tag == "flat-profile"
        assert one_text(root, f"Line_Enable_{slot}_") == "Yes"
        assert one_text(root, f"Use_Auth_ID_{slot}_") == "Yes"
        host, _, port = one_text(root, f"Proxy_{slot}_").rpartition(":")
        values.append(
            (
                one_text(root, f"User_ID_{slot}_"),
                one_text(root, f"Auth_ID_{slot}_"),
                one_text(root, f"Password_{slot}_"),
                host,
                port,
                one_text(root, f"SIP_Transport_{slot}_"),
            )
        )
    assert values[0] == values[1]
    return values[0]


# Grandstream desk phones: per account (user, auth id, password, server, transport).
GS_DESK = {1: ("P35", "P36", "P34", "P47", "P130"), 2: ("P404", "P405", "P406", "P402", "P448")}


def grandstream(data: DeviceData, slot: int) -> Slot:
    root = parse_xml(files(data)[f"cfg{data.mac}.xml"])
    assert root.tag == "gs_provision"
    assert one_text(root, "mac") == data.mac
    config = root.find("config")
    assert config is not None
    if data.model_id.startswith("grandstream-dp7"):
        # DECT: account i + 1 at P4060+i / P4090+i / P4120+i, its profile at P4150+i.
        i = slot - 1
        profile = int(one_text(config, f"P{4150 + i}"))
        server, transport = [("P47", "P130"), ("P747", "P830"), ("P547", "P530")][profile]
        user, auth, password = (one_text(config, f"P{base + i}") for base in (4060, 4090, 4120))
    else:
        user_k, auth_k, password_k, server, transport = GS_DESK[slot]
        user, auth, password = (one_text(config, k) for k in (user_k, auth_k, password_k))
    host, _, port = one_text(config, server).rpartition(":")
    return (user, auth, password, host, port, one_text(config, transport))


def gigaset(data: DeviceData, slot: int) -> Slot:
    root = parse_xml(files(data)[f"{data.mac.upper()}.xml"])
    if root.tag == "ProviderFrame":  # N510: quoted strings, hex numbers, no transport key
        items = {i.attrib["ID"]: i.attrib["value"] for i in root.iter("SYMB_ITEM")}
        sfx = "" if slot == 1 else f"_{slot}"
        assert items[f"BS_IP_Data1.ucB_SIP_ACCOUNT_IS_ACTIVE_{slot}"] == "0x1"
        user, auth, password, host = (
            items[key].strip('"')
            for key in (
                f"BS_IP_Data1.aucS_SIP_USER_ID{sfx}",
                f"BS_IP_Data3.aucS_SIP_LOGIN_ID{sfx}",
                f"BS_IP_Data1.aucS_SIP_PASSWORD{sfx}",
                f"BS_IP_Data1.aucS_SIP_REGISTRAR{sfx}",
            )
        )
        port = str(int(items[f"BS_IP_Data1.uiI_SIP_REGISTRAR_PORT{sfx}"], 16))
        return (user, auth, password, host, port, "")
    assert root.tag == "provisioning"  # Nx70: accounts point at a provider (registrar)
    params = {p.attrib["name"]: p.attrib["value"] for p in root.iter("param")}
    account = f"SipAccount.{slot:05d}"
    provider = f"SipProvider.{params[f'{account}.ProviderId']}"
    return (
        params[f"{account}.UserName"],
        params[f"{account}.AuthName"],
        params[f"{account}.AuthPassword"],
        params[f"{provider}.RegServerAddress"],
        params[f"{provider}.RegServerPort"],
        params[f"{provider}.TransportProtocol"],
    )


LPCONFIG = "{http://www.linphone.org/xsds/lpconfig.xsd}"


def lpconfig_structure(root: ET.Element) -> None:
    """The shape lpconfig.xsd gives xml2lpc documents (no XSD validator is installed: the shape
    is checked by hand): `config` of named `section`s of named `entry`s holding text, with an
    optional boolean `overwrite`; a section or an entry named twice is ambiguous."""
    assert root.tag == f"{LPCONFIG}config"
    sections = [s.attrib["name"] for s in root]
    assert len(sections) == len(set(sections)), "a section is named twice"
    for section in root:
        assert section.tag == f"{LPCONFIG}section" and set(section.attrib) == {"name"}
        assert not (section.text or "").strip()
        names = [e.attrib["name"] for e in section]
        assert len(names) == len(set(names)), f"{section.attrib['name']}: an entry twice"
        for entry in section:
            assert entry.tag == f"{LPCONFIG}entry" and len(entry) == 0
            assert set(entry.attrib) <= {"name", "overwrite"}
            assert entry.get("overwrite", "false") in ("true", "false")


def linphone(data: DeviceData, slot: int) -> Slot:
    (body,) = set(files(data).values())  # linphone.xml and linphone-<mac>.xml are the same
    root = parse_xml(body)
    lpconfig_structure(root)

    def entry(section: str, name: str) -> str:
        return one_text(
            root, f"{LPCONFIG}section[@name='{section}']/{LPCONFIG}entry[@name='{name}']"
        )

    proxy = entry(f"proxy_{slot - 1}", "reg_proxy")  # sip:host:port;transport=x
    assert proxy.startswith("sip:")
    address, _, transport = proxy[4:].partition(";transport=")
    host, _, port = address.rpartition(":")
    auth = f"auth_info_{slot - 1}"
    assert entry(auth, "domain") == host
    user = entry(auth, "username")
    assert entry(f"proxy_{slot - 1}", "reg_identity").endswith(f"<sip:{user}@{host}>")
    return (user, entry(auth, "userid"), entry(auth, "passwd"), host, port, transport)


# family -> (extractor, models covering each format variant, transport of LINE_1 and LINE_2)
CASES: dict[str, tuple[Callable[[DeviceData, int], Slot], list[str], tuple[str, str]]] = {
    "yealink": (yealink, ["yealink-t54w", "yealink-w60b", "yealink-t31g"], ("0", "2")),
    "polycom": (polycom, ["polycom-vvx600"], ("UDPOnly", "TLS")),
    "snom": (snom, ["snom-d785", "snom-320", "snom-d862"], ("udp", "tls")),
    "fanvil": (fanvil, ["fanvil-x5u", "fanvil-v65", "fanvil-i53w", "fanvil-w620w"], ("0", "3")),
    "fanvil-old": (fanvil, ["fanvil-x4", "fanvil-x3s"], ("0", "2")),
    "cisco": (cisco, ["cisco-spa508g", "cisco-cp7841"], ("UDP", "TLS")),
    "grandstream": (
        grandstream,
        ["grandstream-gxp2120", "grandstream-grp2616", "grandstream-gxp1405", "grandstream-ht802"],
        ("0", "2"),
    ),
    "grandstream-dect": (grandstream, ["grandstream-dp750", "grandstream-dp752"], ("0", "2")),
    "gigaset": (gigaset, ["gigaset-n510"], ("", "")),
    "gigaset-nx70": (gigaset, ["gigaset-n670", "gigaset-n870"], ("1", "3")),
    "linphone": (linphone, ["linphone-softphone"], ("udp", "tls")),
}
PARAMS = [(case, model) for case, (_, models, _) in CASES.items() for model in models]


@pytest.mark.parametrize(("case", "model_id"), PARAMS)
def test_slot_1_and_slot_2_hold_their_own_line(case: str, model_id: str) -> None:
    extract, _, (transport_1, transport_2) = CASES[case]
    data = two_lines(CATALOG, model_id, MAC)
    for slot, line, transport in ((1, LINE_1, transport_1), (2, LINE_2, transport_2)):
        expected = (
            line.user,
            line.auth_user,
            line.password,
            line.registrar_host,
            str(line.registrar_port),
            transport,
        )
        assert extract(data, slot) == expected, f"{model_id} slot {slot}"


@pytest.mark.parametrize(("case", "model_id"), PARAMS)
def test_swapped_lines_swap_slots(case: str, model_id: str) -> None:
    """The slot, not the order of the data, decides where a line goes."""
    extract, _, (transport_1, transport_2) = CASES[case]
    data = two_lines(CATALOG, model_id, MAC)
    swapped = replace(data, lines={1: LINE_2, 2: LINE_1})
    assert extract(swapped, 1)[:5] == extract(data, 2)[:5]
    assert extract(swapped, 2)[:5] == extract(data, 1)[:5]
    assert (extract(swapped, 1)[5], extract(swapped, 2)[5]) == (transport_2, transport_1)


def test_every_family_of_this_file_is_covered() -> None:
    """A model id above that left the catalog would make a case test nothing."""
    for _, models, _ in CASES.values():
        for model_id in models:
            assert CATALOG.model(model_id) is not None, model_id
