"""Jitsi Desktop: the properties file read back as java.util.Properties.load() reads it, the
accounts of two different lines, the provisioning URL and credential, what Jitsi cannot do."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.devices.identify import match_file, parse_user_agent
from provisioning.render.check import SAMPLE_TOKEN, sample_device
from provisioning.render.context import DeviceData
from provisioning.render.environment import Renderer, RenderError
from provisioning.render.files import device_files, render_file
from provisioning.settings import PROJECT_ROOT, Settings
from tests.families.strict import ALICE_AND_BOB

CATALOG = load_catalog(PROJECT_ROOT / "templates" / "devices")
FAMILY = CATALOG.families["jitsi"]
SETTINGS = Settings(public_url="http://prov.example.net", secret_key=())
ACC = "net.java.sip.communicator.impl.protocol.sip.acc"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    """Properties.load's escapes: \\uXXXX, \\t \\n \\r \\f, and `\\x` for any other x."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        assert i + 1 < len(text), "a backslash ends the line (a continuation we never write)"
        nxt = text[i + 1]
        if nxt == "u":
            digits = text[i + 2 : i + 6]
            assert len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits)
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
    # Java strings are UTF-16: a pair of \u escapes makes one character beyond the BMP.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


def load_properties(body: bytes) -> dict[str, str]:
    """A strict reading of the Properties grammar as Jitsi applies it: ASCII only (it reads
    ISO-8859-1; anything else is escaped), comments `#`/`!`, `key = value`, no key twice."""
    text = body.decode("ascii")  # strict: a raw non-ASCII byte would be mis-read by Jitsi
    props: dict[str, str] = {}
    for line in text.split("\n"):
        stripped = line.lstrip(" \t\f")
        if not stripped or stripped[0] in "#!":
            continue
        key_end = next((i for i, c in enumerate(stripped) if c in " \t\f=:"), len(stripped))
        key = stripped[:key_end]
        assert "\\" not in key, line
        rest = stripped[key_end:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        assert key not in props, f"{key} set twice"
        props[key] = _unescape(rest)
    return props


def render(data: DeviceData, catalog: Catalog = CATALOG, settings: Settings = SETTINGS) -> bytes:
    ((name, spec),) = device_files(catalog, data.model_id, data.mac)
    assert name == "jitsi.properties"
    return render_file(Renderer(catalog), settings, data, spec).body


def two_slot_catalog() -> Catalog:
    """The shipped model has Wazo's one line; Jitsi itself keeps any number of accN accounts,
    so the template must keep two lines apart when a model is given two slots."""
    model = replace(FAMILY.models["jitsi-desktop"], slots=2)
    return Catalog({"jitsi": replace(FAMILY, models={model.id: model})})


def two_lines() -> DeviceData:
    base = sample_device("jitsi-desktop", 2, 0)
    lines = dict(ALICE_AND_BOB)
    return replace(base, lines=lines)


def test_user_agent() -> None:
    # The one example the reference gives: Wazo plugins/wazo_jitsi/v1/entry.py.
    info = parse_user_agent(CATALOG, "Jitsi/1.0-beta1-nightly.build.3408")
    assert info is not None and info.family is FAMILY
    assert info.model is not None and info.model.id == "jitsi-desktop"
    assert info.firmware == "1.0-beta1-nightly.build.3408"
    assert info.mac is None


def test_file_name_and_catalog() -> None:
    (match,) = [m for m in match_file(CATALOG, "jitsi.properties") if m.family is FAMILY]
    assert match.mac is None and match.spec.lines and match.spec.secret
    assert [m.slots for m in FAMILY.models.values()] == [1]  # Wazo plugin-info
    assert FAMILY.notify_event is None  # no SIP event makes Jitsi fetch again


def test_two_lines_on_two_registrars() -> None:
    props = load_properties(render(two_lines(), two_slot_catalog()))
    # Slot 1: its registrar, UDP, its auth id.
    assert props[f"{ACC}1"] == "acc1"
    assert props[f"{ACC}1.ACCOUNT_UID"] == "SIP:alice@pbx-a.example.net"
    assert props[f"{ACC}1.USER_ID"] == "alice@pbx-a.example.net"
    assert props[f"{ACC}1.AUTHORIZATION_NAME"] == "auth-alice"
    assert props[f"{ACC}1.PASSWORD"] == "pw-1"
    assert props[f"{ACC}1.DISPLAY_NAME"] == "Alice"
    assert props[f"{ACC}1.SERVER_ADDRESS"] == "pbx-a.example.net"
    assert props[f"{ACC}1.SERVER_PORT"] == "5060"
    assert props[f"{ACC}1.PROXY_AUTO_CONFIG"] == "false"
    assert props[f"{ACC}1.PROXY_ADDRESS"] == "pbx-a.example.net"
    assert props[f"{ACC}1.PROXY_PORT"] == "5060"
    assert props[f"{ACC}1.PREFERRED_TRANSPORT"] == "UDP"
    # Slot 2: another registrar and port, TLS, another auth id.
    assert props[f"{ACC}2"] == "acc2"
    assert props[f"{ACC}2.ACCOUNT_UID"] == "SIP:bob@pbx-b.example.org"
    assert props[f"{ACC}2.AUTHORIZATION_NAME"] == "auth-bob"
    assert props[f"{ACC}2.PASSWORD"] == "pw-2"
    assert props[f"{ACC}2.SERVER_ADDRESS"] == "pbx-b.example.org"
    assert props[f"{ACC}2.SERVER_PORT"] == "5061"
    assert props[f"{ACC}2.PROXY_ADDRESS"] == "pbx-b.example.org"
    assert props[f"{ACC}2.PROXY_PORT"] == "5061"
    assert props[f"{ACC}2.PREFERRED_TRANSPORT"] == "TLS"


def test_shipped_model_writes_one_account() -> None:
    data = replace(two_lines(), lines={1: two_lines().lines[1]})
    props = load_properties(render(data))
    assert props[f"{ACC}1.SERVER_ADDRESS"] == "pbx-a.example.net"
    assert not any(key.startswith(f"{ACC}2") for key in props)


def test_unused_slot_removes_the_account() -> None:
    data = replace(two_lines(), lines={2: two_lines().lines[2]})
    props = load_properties(render(data, two_slot_catalog()))
    # `${null}` is Jitsi's "remove this property" (ProvisioningServiceImpl.processProperty).
    assert props[f"{ACC}1"] == "${null}"
    assert props[f"{ACC}1.PASSWORD"] == "${null}"
    assert props[f"{ACC}2"] == "acc2"


@pytest.mark.parametrize(
    "value",
    ['Zo\u00e9 "L\'<Admin>" & Co', "back\\slash", "${null}", " lead", "a=b:c #!", "\U0001f600"],
)
def test_values_come_back_exactly(value: str) -> None:
    """Non-ASCII, backslashes, Jitsi's own `${null}`, a leading blank: Jitsi reads the value
    written, never something else."""
    data = two_lines()
    lines = {1: replace(data.lines[1], display_name=value, password=value)}
    body = render(replace(data, lines=lines))
    props = load_properties(body)
    assert props[f"{ACC}1.DISPLAY_NAME"] == value
    assert props[f"{ACC}1.PASSWORD"] == value


@pytest.mark.parametrize("bad", ["x\ny", "x\rb", "tab\there", "nul\x00", "\u2028sep"])
def test_control_characters_refused(bad: str) -> None:
    data = two_lines()
    with pytest.raises(RenderError):
        render(replace(data, lines={1: replace(data.lines[1], display_name=bad)}))


def test_provisioning_url_credential_and_language() -> None:
    data = replace(two_lines(), http_username="jitsi-1", http_password="digest$pw")
    props = load_properties(render(data))
    prov = "net.java.sip.communicator.plugin.provisioning."
    assert props[prov + "URL"] == f"http://prov.example.net/{SAMPLE_TOKEN}/jitsi.properties"
    assert props[prov + "auth.USERNAME"] == "jitsi-1"
    assert props[prov + "auth.PASSWORD"] == "digest$pw"
    assert props["net.java.sip.communicator.service.resources.DefaultLocale"] == "fr"
    # Without a credential, none is written (Jitsi keeps what it has).
    assert not any("auth." in key for key in load_properties(render(two_lines())))


UA = {"User-Agent": "Jitsi/1.0-beta1-nightly.build.3408"}  # Wazo's example
# A softphone has no MAC: the inventory keeps a locally administered one for it.
SOFT_MAC = "020000c0ffee"


async def _jitsi_device(sessions: SessionFactory, settings: Settings, catalog: Catalog) -> str:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Jitsi owner")
        line = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000001", password="pw-one",
            auth_username="auth-one", registrar="tls:pbx-a.example.net:5061",
        )  # fmt: skip
        _, token = await inventory.add_device(
            session, catalog, cipher, SOFT_MAC, "jitsi-desktop", account.id
        )
        await inventory.assign_line(session, SOFT_MAC, line.id)
    return token


async def test_the_file_through_the_server(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    """The real app and database: the file asked for with Jitsi's User-Agent and the token."""
    token = await _jitsi_device(sessions, settings, catalog)
    resp = await client.get(f"/{token}/jitsi.properties", headers=UA)
    assert resp.status == 200
    props = load_properties(await resp.read())
    assert props[f"{ACC}1.SERVER_ADDRESS"] == "pbx-a.example.net"
    assert props[f"{ACC}1.SERVER_PORT"] == "5061"
    assert props[f"{ACC}1.PREFERRED_TRANSPORT"] == "TLS"
    assert props[f"{ACC}1.AUTHORIZATION_NAME"] == "auth-one"
    assert props[f"{ACC}1.PASSWORD"] == "pw-one"
    url = f"http://phones.test:8080/{token}/jitsi.properties"
    assert props["net.java.sip.communicator.plugin.provisioning.URL"] == url


async def test_jitsi_asks_with_post(
    client: TestClient, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    token = await _jitsi_device(sessions, settings, catalog)
    # What Jitsi sends for a URL without a query: a form POST with an empty body.
    resp = await client.post(
        f"/{token}/jitsi.properties",
        headers={**UA, "Content-Type": "application/x-www-form-urlencoded"},
        data=b"",
    )
    assert resp.status == 200
