"""Digium D-series: the file name, the accounts of two different lines, the config server URL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from urllib.parse import unquote, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.devices.identify import match_file
from provisioning.render.check import SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer
from provisioning.render.files import device_files, render_file, spec_for
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import ALICE_AND_BOB

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["digium"]
RENDERER = Renderer(CATALOG)
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
MAC = "000fd3112233"

# Accounts per model: Wazo plugins/wazo_digium/v2_8_1/plugin-info.
SLOTS = {"d40": 2, "d45": 2, "d50": 4, "d60": 4, "d62": 2, "d65": 6, "d70": 6}


def test_catalog() -> None:
    assert {m.id.removeprefix("digium-"): m.slots for m in FAMILY.models.values()} == SLOTS
    assert all(m.confirmed for m in FAMILY.models.values())
    assert FAMILY.notify_event == "check-sync"


def test_file_name() -> None:
    matches = match_file(CATALOG, f"{MAC.upper()}.cfg")
    mine = [m for m in matches if m.family is FAMILY]
    assert [m.mac for m in mine] == [MAC]
    # `<mac>.cfg` is shared with other families: the device's family picks the spec.
    assert spec_for(CATALOG, "digium-d70", matches) is mine[0].spec
    assert not [m for m in match_file(CATALOG, "000000000000.cfg") if m.family is FAMILY]


def test_user_agent_names_the_family_only() -> None:
    """No reference gives a Digium User-Agent string; FusionPBX recognises the vendor by the
    word "digium" in it. The pattern says no more than that: no model, firmware or MAC."""
    (pattern,) = FAMILY.ua_patterns
    assert pattern.pattern == "(?i)digium"
    assert pattern.groupindex == {}


def two_lines(model_id: str = "digium-d50") -> DeviceData:
    """Two lines that differ in everything a phone must keep apart."""
    base = replace(sample_device(model_id, SLOTS[model_id.removeprefix("digium-")], 0), mac=MAC)
    lines = dict(ALICE_AND_BOB)
    return replace(base, lines=lines)


def render(data: DeviceData, settings: Settings = SETTINGS) -> ET.Element:
    ((name, spec),) = device_files(CATALOG, data.model_id, data.mac)
    assert name == f"{data.mac}.cfg"
    assert spec.secret and spec.lines
    return ET.fromstring(render_file(RENDERER, settings, data, spec).body)


def settings_of(root: ET.Element) -> dict[str, str]:
    found = root.findall("setting")
    ids = [s.get("id") for s in found]
    assert len(ids) == len(set(ids)), "a setting is written twice"
    return {str(s.get("id")): str(s.get("value")) for s in found}


def accounts_of(root: ET.Element) -> dict[int, ET.Element]:
    found = root.findall("accounts/account")
    indexes = [int(str(a.get("index"))) for a in found]
    assert len(indexes) == len(set(indexes))
    return dict(zip(indexes, found, strict=True))


def test_two_lines_on_two_registrars() -> None:
    root = render(two_lines())
    assert root.tag == "config"
    by_index = accounts_of(root)
    assert sorted(by_index) == [0, 1, 2, 3]  # every slot of a D50, 0-based
    first, second = by_index[0], by_index[1]
    # Slot 1: index 0, its registrar, UDP, its auth id.
    assert first.get("status") == "1" and first.get("register") == "1"
    assert (first.get("username"), first.get("authname"), first.get("password")) == (
        "alice",
        "auth-alice",
        "pw-1",
    )
    assert first.get("account_id") == "alice" and first.get("line_label") == "1001"
    assert first.get("caller_id") == "Alice"
    (host,) = first.findall("host_primary")
    assert (host.get("server"), host.get("port"), host.get("transport")) == (
        "pbx-a.example.net",
        "5060",
        "udp",
    )
    # Slot 2: index 1, another registrar and port, TLS, another auth id.
    assert second.get("status") == "1"
    assert (second.get("username"), second.get("authname"), second.get("password")) == (
        "bob",
        "auth-bob",
        "pw-2",
    )
    (host,) = second.findall("host_primary")
    assert (host.get("server"), host.get("port"), host.get("transport")) == (
        "pbx-b.example.org",
        "5061",
        "tls",
    )
    assert settings_of(root)["transport_tls_allowed"] == "1"
    # Slots 3 and 4 unused: off, nothing left in them.
    for index in (2, 3):
        account = by_index[index]
        assert account.get("status") == "0"
        assert account.findall("host_primary") == []
        for attribute in ("username", "authname", "password", "account_id"):
            assert account.get(attribute) == ""


@pytest.mark.parametrize("model", sorted(SLOTS))
def test_every_slot_of_every_model(model: str) -> None:
    model_id = f"digium-{model}"
    root = render(sample_device(model_id, SLOTS[model], SLOTS[model]))
    by_index = accounts_of(root)
    assert sorted(by_index) == list(range(SLOTS[model]))
    assert all(a.get("status") == "1" for a in by_index.values())


def test_config_server_url_carries_the_token() -> None:
    values = settings_of(render(two_lines()))
    assert values["config_server_url"] == f"http://prov.example.net/{SAMPLE_TOKEN}/"
    assert values["enable_check_sync"] == "1"
    assert values["send_mac_with_useragent"] == "1"


def test_config_server_url_with_a_digest_credential() -> None:
    data = replace(two_lines(), http_username=MAC, http_password="a/b:c@d")
    settings = replace(SETTINGS, public_url="https://example.net:8443/prov/")
    url = urlsplit(settings_of(render(data, settings))["config_server_url"])
    assert (url.scheme, url.hostname, url.port) == ("https", "example.net", 8443)
    assert url.path == f"/prov/{SAMPLE_TOKEN}/"
    assert unquote(url.username or "") == MAC
    assert unquote(url.password or "") == "a/b:c@d"


def test_time_zone_and_language() -> None:
    values = settings_of(render(two_lines()))  # Europe/Paris, fr
    assert values["time_zone"] == "Europe/Paris"
    assert values["locale"] == "fr_FR"
    other = replace(two_lines(), timezone="America/Chicago", language="en")
    values = settings_of(render(other))
    assert values["time_zone"] == "America/Chicago" and values["locale"] == "en_US"
    assert "locale" not in settings_of(render(replace(two_lines(), language="pt")))


async def two_line_device(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, model_id: str
) -> str:
    """A device of `model_id` in the real database with two lines on two registrars (UDP on
    one, TLS on a non-default port on the other); its token."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Owner")
        first = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="udp:pbx-a.example.net:5060",
        )  # fmt: skip
        second = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000002", password="pw-two",
            auth_username="auth-two", registrar="tls:pbx-b.example.org:5061",
        )  # fmt: skip
        _, token = await inventory.add_device(session, catalog, cipher, MAC, model_id, account.id)
        await inventory.assign_line(session, MAC, first.id)
        await inventory.assign_line(session, MAC, second.id)
    return token


async def test_a_phone_fetches_its_file_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """The real app and database: a D70 asks for `<mac>.cfg` with its token."""
    token = await two_line_device(sessions, settings, catalog, "digium-d70")
    resp = await client.get(f"/{token}/{MAC}.cfg")
    assert resp.status == 200
    root = ET.fromstring(await resp.read())
    by_index = accounts_of(root)
    first, second = by_index[0], by_index[1]
    assert (first.get("authname"), first.get("password")) == ("auth-one", "pw-one")
    assert (second.get("authname"), second.get("password")) == ("auth-two", "pw-two")
    hosts = [a.find("host_primary") for a in (first, second)]
    assert [
        (h.get("server"), h.get("port"), h.get("transport")) for h in hosts if h is not None
    ] == [
        ("pbx-a.example.net", "5060", "udp"),
        ("pbx-b.example.org", "5061", "tls"),
    ]
    assert settings_of(root)["config_server_url"] == f"http://phones.test:8080/{token}/"
