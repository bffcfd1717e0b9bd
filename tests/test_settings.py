"""Settings from the environment and a TOML file: errors name the key, every setting is checked,
and the README's table is the declarations'."""

from __future__ import annotations

import ast
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest

from provisioning.crypto import generate_key
from provisioning.settings import (
    PROJECT_ROOT,
    README,
    SETTINGS,
    TABLE_END,
    TABLE_START,
    Registrar,
    Settings,
    SettingsError,
    settings_table,
)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.poll_interval == 300
    assert settings.allow_mac_only is False
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings == Settings()


def test_values_from_env() -> None:
    key = generate_key()
    settings = Settings.from_env(
        {
            "PROVISIONING_SECRET_KEY": f"{key},{generate_key()}",
            "PROVISIONING_POLL_INTERVAL": "120",
            "PROVISIONING_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
            "PROVISIONING_ALLOW_MAC_ONLY": "yes",
            "PROVISIONING_DEFAULT_REGISTRAR": "sip.example.net:5080",
            "PROVISIONING_PUBLIC_URL": "https://prov.example.net/",
            "HOME": "/ignored",
        }
    )
    assert settings.secret_key[0] == key and len(settings.secret_key) == 2
    assert settings.poll_interval == 120
    assert "10.1.2.3" in settings.trusted_proxies and "192.0.2.1" in settings.trusted_proxies
    assert settings.allow_mac_only is True
    assert (settings.default_registrar.host, settings.default_registrar.port) == (
        "sip.example.net",
        5080,
    )
    assert settings.base_url == "https://prov.example.net"


def test_an_unknown_setting_is_named() -> None:
    with pytest.raises(SettingsError, match="PROVISIONING_NO_SUCH_SETTING: unknown setting"):
        Settings.from_env({"PROVISIONING_NO_SUCH_SETTING": "1"})


def test_toml_file_then_env(tmp_path: Path) -> None:
    config = tmp_path / "provisioning.toml"
    config.write_text('poll_interval = 200\ntrusted_proxies = ["10.0.0.0/8"]\nport = 9000\n')
    settings = Settings.from_env({"PROVISIONING_CONFIG": str(config), "PROVISIONING_PORT": "9001"})
    assert settings.poll_interval == 200
    assert settings.port == 9001
    assert "10.9.9.9" in settings.trusted_proxies
    config.write_text("poll_interval = [")
    with pytest.raises(SettingsError, match="PROVISIONING_CONFIG"):
        Settings.from_env({"PROVISIONING_CONFIG": str(config)})


# -- Every setting: a good value accepted, bad ones refused naming the key. ----------------------
# `{dir}` is an existing directory, `{file}` an existing file; `extra` completes a good value that
# needs another setting (a certificate needs its key).

KEY = generate_key()
TLS = {"tls_cert": "{file}", "tls_key": "{file}"}

# name: (good value, extra settings for it, bad values)
TABLE: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "database_url": ("postgresql+asyncpg://u:p@db/prov", {}, ["mysql://x", ""]),
    "secret_key": (f"{KEY},{generate_key()}", {}, ["not-a-key", f"{KEY},nope"]),
    "secret_key_file": ("{dir}/provisioning.key", {}, ["", "{dir}"]),
    "host": ("prov.example.net", {}, ["not a host", "http://x", "", "10.0.0.256", "a_b"]),
    "port": ("9000", {}, ["0", "70000", "http"]),
    "public_url": (
        "https://prov.example.net/base/",
        {},
        [
            "ftp://x",
            "https://",
            "prov.example.net",
            "https://x/?a=1",
            "https://x y",
            "http://x:99999",
        ],
    ),
    "trusted_proxies": ("10.0.0.0/8, 2001:db8::/32", {}, ["10.0.0.0/33", "nonsense"]),
    "allow_mac_only": ("yes", {}, ["perhaps"]),
    "poll_interval": ("120", {}, ["600", "29", "often"]),
    "templates_dir": ("{dir}", {}, ["/no/such/folder", ""]),
    "templates_override_dir": ("{dir}", {}, ["/no/such/folder", "{file}"]),
    "firmware_dir": ("{dir}", {}, ["{file}"]),
    "default_registrar": ("sip:pbx.example.net:5080", {}, ["::1", "host:port", "sip:", ""]),
    "default_transport": ("tcp", {}, ["sctp", "UDP"]),
    "default_timezone": ("America/New_York", {}, ["Mars/Olympus", "", "europe/paris"]),
    "default_language": ("de", {}, ["fra", "FR", ""]),
    "render_cache_size": ("0", {}, ["-1"]),
    "prerender_rate": ("0", {}, ["-1", "100001", "fast"]),
    "sighting_flush_ms": ("0", {}, ["60001", "-1"]),
    "sighting_history_seconds": ("0", {}, ["-1"]),
    "sighting_refresh_seconds": ("0", {}, ["soon"]),
    "sighting_buffer": ("1", {}, ["0"]),
    "max_inflight": ("1", {}, ["0"]),
    "max_lag_ms": ("10", {}, ["5"]),
    "workers": ("4", {}, ["65"]),
    "push_enabled": ("off", {}, ["maybe"]),
    "push_route": ("direct", {}, ["relay"]),
    "push_proxy": (
        "sip:proxy.example.net;transport=tcp",
        {},
        ["udp:", "tls:proxy.example.net", "::1", "udp:127.0.0.1:5070:1", "[::1]:5070"],
    ),
    "push_direct_port": ("5062", {}, ["0"]),
    "push_rate": ("1", {}, ["0"]),
    "push_sip_host": ("0.0.0.0", {}, ["sip.example.net", "10.0.0.256", ""]),
    "push_sip_port": ("5070", {}, ["65536", "-1"]),
    "push_t1_ms": ("100", {}, ["5"]),
    "vat_rate": ("5.5", {}, ["5.555", "101", "x"]),
    "shipping_countries": ("fr, be", {}, ["FR,XX", ""]),
    "map_tiles": (
        "https://{s}.tile.example.org/{z}/{x}/{y}.png",
        {},
        ["ftp://x/{z}/{x}/{y}", "https://x/{z}/{x}.png", 'https://x/{z}/{x}/{y}"', "tiles"],
    ),
    "map_attribution": ("© OpenStreetMap contributors", {}, ["", "a\nb", "x" * 201]),
    "contract_file": ("{file}", {}, ["/nonexistent.html", "{dir}"]),
    "contract_url": (
        "https://operator.example/contrat-2026.html",
        {},
        ["ftp://x", "contrat", "https://x/a b"],
    ),
    "contract_version": ("2026-12", {}, ["-x", "x" * 65, "v 1"]),
    "tls_cert": ("{file}", {"tls_key": "{file}"}, ["/nonexistent.pem", "{dir}"]),
    "tls_key": ("{file}", {"tls_cert": "{file}"}, ["/nonexistent.pem"]),
    "tls_port": ("443", {}, ["0"]),
    "http": ("public", TLS, ["maybe", "ON"]),
    "client_cas": ("lab={file}, yealink={file}", {}, ["polycom", "Lab={file}", "lab=/no.pem"]),
    "digest": ("true", {}, ["sometimes"]),
    "digest_realm": ("Plug & Phone", {}, ['a"b', "", "x" * 65]),
    "digest_username": ("mac_colon", {}, ["email"]),
    "digest_nonce_seconds": ("60", {}, ["10"]),
    "auth_proofs": ("token+digest", {}, ["token+password", "token+token", ""]),
    "first_contact_binding": ("network", {}, ["city"]),
    "first_contact_days": ("30", {}, ["3651"]),
    "rotation_overlap": ("0", {}, ["-1"]),
    "ban_threshold": ("5", {}, ["0"]),
    "ban_network_threshold": ("50", {}, ["0"]),
    "ban_window": ("60", {}, ["9"]),
    "ban_seconds": ("60", {}, ["0"]),
    "ban_exempt": ("192.0.2.0/24, 2001:db8::/32", {}, ["192.0.2.0/99"]),
    "tftp_listen": ("[::]:69", {}, ["0.0.0.0", "::1:69", "tftp.example.net:69", "10.0.0.1:0"]),
    "tftp_networks": ("192.0.2.0/24", {}, ["192.0.2.0/33", "everyone"]),
    "log_format": ("json", {}, ["xml"]),
    "metrics": ("false", {}, ["maybe"]),
    "access_log": ("0", {}, ["2"]),
    "phone_lane": ("no", {}, ["nah"]),
    "head_timeout": ("30", {}, ["0", "601"]),
}


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    file = tmp_path / "file.pem"
    file.write_text("-----BEGIN CERTIFICATE-----\n")
    return {"{dir}": str(tmp_path), "{file}": str(file)}


def _fill(text: str, places: dict[str, str]) -> str:
    for mark, value in places.items():
        text = text.replace(mark, value)
    return text


def test_the_table_covers_every_setting() -> None:
    assert list(TABLE) == [f.name for f in fields(Settings)]


@pytest.mark.parametrize("name", list(TABLE))
def test_a_good_value_is_accepted(name: str, places: dict[str, str]) -> None:
    good, extra, _ = TABLE[name]
    env = {f"PROVISIONING_{k.upper()}": _fill(v, places) for k, v in extra.items()}
    settings = Settings.from_env({**env, f"PROVISIONING_{name.upper()}": _fill(good, places)})
    assert getattr(settings, name) != getattr(Settings(), name)


@pytest.mark.parametrize(
    ("name", "bad"), [(name, bad) for name, (_, _, bads) in TABLE.items() for bad in bads]
)
def test_a_bad_value_stops_the_program_naming_the_key(
    name: str, bad: str, places: dict[str, str]
) -> None:
    key = f"PROVISIONING_{name.upper()}"
    with pytest.raises(SettingsError) as info:
        Settings.from_env({key: _fill(bad, places)})
    assert key in str(info.value)
    if name == "secret_key":
        assert "nope" not in str(info.value)  # not even the wrong key is echoed


def test_every_default_is_a_value_its_parser_accepts() -> None:
    # What the README shows as a default is the default, and within its own bounds.
    defaults = Settings()
    for f in fields(Settings):
        value = getattr(defaults, f.name)
        if isinstance(value, bool | int | str | Decimal | Registrar) and value != "":
            text = str(value).lower() if isinstance(value, bool) else str(value)
            parsed = SETTINGS[f.name].parse(f"PROVISIONING_{f.name.upper()}", text)
            assert parsed == value, f.name


# -- SIP registrars and proxies. -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "transport", "shown"),
    [
        ("sip.example.net", "sip.example.net", 5060, None, "sip.example.net:5060"),
        ("sip.example.net:5080", "sip.example.net", 5080, None, "sip.example.net:5080"),
        ("10.0.0.1", "10.0.0.1", 5060, None, "10.0.0.1:5060"),
        ("udp:127.0.0.1:5070", "127.0.0.1", 5070, "udp", "127.0.0.1:5070"),
        ("tcp:pbx.example.net", "pbx.example.net", 5060, "tcp", "pbx.example.net:5060"),
        ("tls:pbx.example.net", "pbx.example.net", 5061, "tls", "pbx.example.net:5061"),
        ("TCP:pbx:5062", "pbx", 5062, "tcp", "pbx:5062"),
        ("sip:pbx.example.net", "pbx.example.net", 5060, None, "pbx.example.net:5060"),
        ("sip:pbx.example.net:5080", "pbx.example.net", 5080, None, "pbx.example.net:5080"),
        (
            "sip:pbx.example.net;transport=tcp",
            "pbx.example.net",
            5060,
            "tcp",
            "pbx.example.net:5060",
        ),
        ("SIP:pbx:5080;Transport=TLS", "pbx", 5080, "tls", "pbx:5080"),
        ("[::1]:5060", "::1", 5060, None, "[::1]:5060"),
        ("[::1]", "::1", 5060, None, "[::1]:5060"),
        ("tcp:[2001:db8::1]:5070", "2001:db8::1", 5070, "tcp", "[2001:db8::1]:5070"),
        ("sip:[2001:db8::1];transport=udp", "2001:db8::1", 5060, "udp", "[2001:db8::1]:5060"),
        (" sip.example.net ", "sip.example.net", 5060, None, "sip.example.net:5060"),
    ],
)
def test_registrar_forms(
    text: str, host: str, port: int, transport: str | None, shown: str
) -> None:
    registrar = Registrar.parse("PROVISIONING_PUSH_PROXY", text)
    assert (registrar.host, registrar.port, registrar.transport) == (host, port, transport)
    assert str(registrar) == shown
    assert Settings.from_mapping({"default_registrar": text}).default_registrar == registrar


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("::1", "brackets"),
        ("2001:db8::1", "brackets"),
        ("sip:", "host is empty"),
        (":5060", "host is empty"),
        ("udp:", "host is empty"),
        ("sip.example.net 5060", "no spaces"),
        ("sip:pbx ;transport=tcp", "no spaces"),
        ("pbx:0", "1 to 65535"),
        ("pbx:70000", "1 to 65535"),
        ("pbx:", "1 to 65535"),
        ("sctp:pbx:5060", "unknown scheme or transport 'sctp'"),
        ("sip:pbx;transport=sctp", "unknown transport 'sctp'"),
        ("sip:pbx;lr", "unknown URI parameter"),
        ("sips:pbx", "'sips' a known prefix"),
        ("udp:sip:pbx", "'sip' a known prefix"),
        ("pbx:port", "'port' is not a port"),
        ("sip:alice@pbx", "neither a host name"),
        ("10.0.0.256", "neither a host name"),
        ("pbx..example.net", "neither a host name"),
        ("[1.2.3.4]:5060", "IPv6 address in brackets"),
        ("[::1]5060", ":PORT after the ]"),
        ('pbx"<script>', "neither a host name"),
    ],
)
def test_other_registrar_forms_are_refused(text: str, why: str) -> None:
    for key in ("PROVISIONING_DEFAULT_REGISTRAR", "PROVISIONING_PUSH_PROXY"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({key: text})
        message = str(info.value)
        assert message.startswith(f"{key}: ")
        assert "sip:HOST[:PORT][;transport=udp|tcp|tls]" in message  # the accepted forms
    with pytest.raises(SettingsError, match=why):
        Registrar.parse("KEY", text)


def test_the_udp_prefix_is_not_taken_for_a_host() -> None:
    # It was: host `udp:127.0.0.1`, and every NOTIFY ended "unresolved".
    proxy = Settings.from_env({"PROVISIONING_PUSH_PROXY": "udp:127.0.0.1:5070"}).push_proxy
    assert proxy == Registrar("127.0.0.1", 5070, "udp")
    assert Settings.from_env({"PROVISIONING_PUSH_PROXY": ""}).push_proxy is None


def test_pushes_do_not_go_over_tls() -> None:
    with pytest.raises(SettingsError, match="PROVISIONING_PUSH_PROXY: transport tls"):
        Settings.from_env({"PROVISIONING_PUSH_PROXY": "sip:proxy;transport=tls"})


def test_the_default_registrar_s_transport_is_the_lines_transport() -> None:
    settings = Settings.from_env({"PROVISIONING_DEFAULT_REGISTRAR": "tcp:pbx.example.net"})
    assert settings.default_transport == "tcp"
    agreeing = {"PROVISIONING_DEFAULT_REGISTRAR": "sip:pbx;transport=tls"}
    assert Settings.from_env({**agreeing, "PROVISIONING_DEFAULT_TRANSPORT": "tls"})
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {"PROVISIONING_DEFAULT_REGISTRAR": "tcp:pbx", "PROVISIONING_DEFAULT_TRANSPORT": "udp"}
        )
    assert "PROVISIONING_DEFAULT_REGISTRAR" in str(info.value)
    assert "PROVISIONING_DEFAULT_TRANSPORT" in str(info.value)


def test_registrar_is_still_made_by_host_and_port() -> None:
    assert Registrar("sip.example.net") == Registrar("sip.example.net", 5060)
    assert str(Registrar("sip.example.net", 5080)) == "sip.example.net:5080"
    assert Settings.from_env({}).default_registrar == Registrar("sip.example.net")


def test_an_ipv6_host_is_bracketed_in_the_base_url() -> None:
    assert Settings.from_env({"PROVISIONING_HOST": "::1"}).base_url == "http://[::1]:8080"


# -- One source of truth: the README's table. ----------------------------------------------------


def test_the_readme_table_is_generated_from_the_declarations() -> None:
    readme = README.read_text()
    assert readme.count(TABLE_START) == 1 and readme.count(TABLE_END) == 1
    written = readme.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"
    assert written == settings_table(), (
        "README.md's settings table differs from provisioning/settings.py: run "
        "`python -m provisioning.settings --update-readme` (it rewrites the table between the "
        "settings-table markers only)"
    )


def test_every_setting_has_one_row() -> None:
    rows = settings_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [f.name.upper() for f in fields(Settings)]
    for row in rows:
        # A `|` in a description would make a fourth column.
        assert row.replace("\\|", "").count("|") == 4, row


# -- Settings are the bottom of the house. -------------------------------------------------------


def _project_imports(module: str) -> set[str]:
    """provisioning.* modules `module` imports anywhere (inside functions too)."""
    path = PROJECT_ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PROJECT_ROOT / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == "provisioning")
    return found - {"provisioning"}


def test_nothing_settings_imports_imports_settings_back() -> None:
    seen: set[str] = set()
    todo = sorted(_project_imports("provisioning.settings"))
    # The proofs grammar and the reading of SIP addresses, both shared with the domain.
    assert todo == ["provisioning.proofs", "provisioning.sip.address"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        imported = _project_imports(module)
        assert "provisioning.settings" not in imported, module
        todo.extend(imported)


def test_the_proofs_grammar_is_still_where_its_callers_look() -> None:
    from provisioning import proofs
    from provisioning.orders.addresses import POSTCODES
    from provisioning.phones.auth import PolicyError, Proof, Proofs, parse_proofs
    from provisioning.settings import POSTCODES as declared

    assert (Proof, Proofs, PolicyError, parse_proofs) == (
        proofs.Proof,
        proofs.Proofs,
        proofs.PolicyError,
        proofs.parse_proofs,
    )
    assert POSTCODES is declared
