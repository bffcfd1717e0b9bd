"""Settings from the environment and a TOML file: errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning.crypto import generate_key
from provisioning.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.poll_interval == 300
    assert settings.allow_mac_only is False
    assert settings.base_url == "http://127.0.0.1:8080"


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


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PROVISIONING_POLL_INTERVAL", "600"),  # beyond the 5-minute promise
        ("PROVISIONING_POLL_INTERVAL", "often"),
        ("PROVISIONING_PORT", "70000"),
        ("PROVISIONING_SECRET_KEY", "not-a-key"),
        ("PROVISIONING_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("PROVISIONING_ALLOW_MAC_ONLY", "perhaps"),
        ("PROVISIONING_DATABASE_URL", "mysql://x"),
        ("PROVISIONING_DEFAULT_REGISTRAR", "host:port"),
        ("PROVISIONING_TEMPLATES_DIR", "/no/such/folder"),
        ("PROVISIONING_NO_SUCH_SETTING", "1"),
    ],
)
def test_errors_name_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({key: value})
    assert key in str(info.value)
    if key == "PROVISIONING_SECRET_KEY":
        assert value not in str(info.value)


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
