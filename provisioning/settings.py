"""Typed settings from `PROVISIONING_*` environment variables or a TOML file, validated at start.

Every error names the key that is wrong, so an operator can fix it without reading code.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import netaddr

PREFIX = "PROVISIONING_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_POLL_INTERVAL = 300  # the 5-minute promise: polling is the backstop of every push


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the key."""


def _parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{key}: expected true or false, got {raw!r}")


def _parse_int(key: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key}: expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{key}: must be between {low} and {high}, got {value}")
    return value


def _parse_networks(key: str, raw: str) -> netaddr.IPSet:
    cidrs = [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return netaddr.IPSet(cidrs)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise SettingsError(f"{key}: expected a comma-separated list of networks (CIDR)") from None


@dataclass(frozen=True)
class Registrar:
    host: str
    port: int = 5060

    @classmethod
    def parse(cls, key: str, raw: str) -> Registrar:
        host, sep, port = raw.strip().rpartition(":")
        if not sep:
            host, port = raw.strip(), "5060"
        if not host or any(c.isspace() or c in "<>\"';" for c in host):
            raise SettingsError(f"{key}: expected HOST[:PORT], got {raw!r}")
        return cls(host=host, port=_parse_int(key, port, 1, 65535))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///provisioning.sqlite3"
    # Fernet keys, newest first: older keys still decrypt, so keys can be rotated.
    secret_key: tuple[str, ...] = ()
    # Where the embedded set-up keeps its key when PROVISIONING_SECRET_KEY is not set.
    secret_key_file: Path = Path("provisioning.key")
    host: str = "127.0.0.1"
    port: int = 8080
    # Base URL that phones use to reach this server; written into their configs.
    public_url: str = ""
    trusted_proxies: netaddr.IPSet = field(default_factory=netaddr.IPSet)
    # MAC-only access hands out SIP passwords to anyone who guesses a MAC: closed labs only.
    allow_mac_only: bool = False
    poll_interval: int = MAX_POLL_INTERVAL
    templates_dir: Path = PROJECT_ROOT / "templates" / "devices"
    # An operator's template files, `<family>/<template>`, used instead of the shipped ones.
    templates_override_dir: Path | None = None
    firmware_dir: Path = PROJECT_ROOT / "firmware"
    default_registrar: Registrar = Registrar("sip.example.net")
    default_transport: str = "udp"
    default_timezone: str = "Europe/Paris"
    default_language: str = "fr"
    render_cache_size: int = 10_000
    # -- The fetch path under load (README "Boot storms"). --
    # Sightings are written in batches every this many milliseconds (0: one write per fetch).
    sighting_flush_ms: int = 500
    # History rows (`sightings`): a fetch that repeats the last one kept for its device and file
    # (same revision, address, User-Agent, firmware) is kept again only after this many
    # seconds; last-seen facts follow every fetch. 0: a row for every fetch.
    sighting_history_seconds: int = 3600
    # A device's last-seen facts: a fetch that repeats them rewrites them only after this many
    # seconds (a new revision, address, User-Agent or firmware: at the next batch). 0: every
    # fetch.
    sighting_refresh_seconds: int = 60
    # Sightings kept in memory at most while the database cannot take them.
    sighting_buffer: int = 100_000
    # Phone requests one process handles at once; beyond, a 503 with Retry-After at once.
    max_inflight: int = 256
    # The event loop this many milliseconds behind: phone requests are answered 503 until it
    # catches up.
    max_lag_ms: int = 500
    # Server processes sharing the port (SO_REUSEPORT); each has its own cache and push worker.
    workers: int = 1
    # Pushes: check-sync NOTIFYs sent by a worker in each server instance.
    push_enabled: bool = True
    # "proxy": to the line's registrar (or push_proxy), which relays to the phone's contact;
    # "direct": to the address the phone last fetched from, on push_direct_port.
    push_route: str = "proxy"
    push_proxy: Registrar | None = None
    push_direct_port: int = 5060
    # NOTIFYs per second at most, so a bulk change does not start a boot storm.
    push_rate: int = 50
    # Where the NOTIFY sender's UDP socket binds; the host is also what Via and Contact carry.
    push_sip_host: str = "127.0.0.1"
    push_sip_port: int = 0
    # SIP transaction timer T1 in milliseconds (RFC 3261: 500); Timer F is 64 x T1.
    push_t1_ms: int = 500
    # Orders: VAT in percent, added to catalog and shipping prices (both excluding VAT).
    vat_rate: Decimal = Decimal("20")
    # Countries phones are shipped to (ISO 3166 codes whose postcode format is known).
    shipping_countries: tuple[str, ...] = ("FR",)
    # -- Phones proving who they are (README "Security"). --
    # HTTPS served by the server itself: certificate chain and key (PEM files), and its port.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_port: int = 8443
    # Plain HTTP: "on", "off" (HTTPS only) or "public" (only files that carry no secret).
    http: str = "on"
    # CA bundles that vouch for phones' factory certificates: family name (or "lab") -> PEM file.
    client_cas: tuple[tuple[str, Path], ...] = ()
    # HTTP digest: challenge requests that carry no credential; realm; username shape; nonce life.
    digest: bool = False
    digest_realm: str = "provisioning"
    digest_username: str = "mac"
    digest_nonce_seconds: int = 300
    # Proofs every account requires unless it has its own policy, and first-contact defaults.
    auth_proofs: str = "token"
    first_contact_binding: str = "off"
    first_contact_days: int = 0
    # How long the previous credential stays valid after a rotation.
    rotation_overlap: int = 7 * 24 * 3600
    # Scanner defence: misses per address / per network in the window, ban length, never banned.
    ban_threshold: int = 20
    ban_network_threshold: int = 100
    ban_window: int = 300
    ban_seconds: int = 3600
    ban_exempt: netaddr.IPSet = field(default_factory=netaddr.IPSet)
    # -- Operating (deploy/README.md). --
    # "text" or "json" (one object per line, with the request id).
    log_format: str = "text"
    # Prometheus metrics at /metrics.
    metrics: bool = True
    # One access log line per request (tokens masked). Off: refusals, errors and everything
    # else are still logged; only the line per answered request goes.
    access_log: bool = True
    # Plain phone GETs served by the lean phone lane (phones.lane) instead of aiohttp's
    # request machinery; everything else goes to aiohttp either way. Off: aiohttp for all.
    phone_lane: bool = True
    # Seconds a client has to send a whole request head, on both layers (phones.lane): a
    # client trickling one slowly would otherwise hold its connection, and a file descriptor.
    head_timeout: int = 10

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError(
                f"{PREFIX}TLS_CERT, {PREFIX}TLS_KEY: set both (or neither) to serve HTTPS"
            )
        if self.http != "on" and self.tls_cert is None:
            raise SettingsError(f"{PREFIX}HTTP: {self.http} needs {PREFIX}TLS_CERT and _KEY")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        # With HTTPS on, phones are pointed at it: per-device files may be refused over HTTP.
        if self.tls:
            return f"https://{self.host}:{self.tls_port}"
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from a TOML file named by PROVISIONING_CONFIG, overridden by environment."""
        env = os.environ if env is None else env
        raw: dict[str, str] = {}
        config_file = env.get(PREFIX + "CONFIG")
        if config_file:
            raw.update(_read_toml(config_file))
        for key, value in env.items():
            if key.startswith(PREFIX) and key != PREFIX + "CONFIG":
                raw[key[len(PREFIX) :].lower()] = value
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            names = ", ".join(PREFIX + name.upper() for name in unknown)
            raise SettingsError(f"{names}: unknown setting")
        values: dict[str, Any] = {}
        for name, text in raw.items():
            values[name] = _convert(name, str(text))
        return cls(**values)


def _read_toml(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"{PREFIX}CONFIG: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{PREFIX}CONFIG: {path} is not valid TOML: {exc}") from None
    flat: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, list):
            flat[key] = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            flat[key] = "true" if value else "false"
        else:
            flat[key] = str(value)
    return flat


def _convert(name: str, text: str) -> Any:
    key = PREFIX + name.upper()
    if name == "database_url":
        if not text.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise SettingsError(
                f"{key}: expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL"
            )
        return text
    if name == "secret_key":
        return _parse_secret_keys(key, text)
    if name in {"port", "push_direct_port", "tls_port"}:
        return _parse_int(key, text, 1, 65535)
    if name == "push_sip_port":
        return _parse_int(key, text, 0, 65535)
    if name == "push_rate":
        return _parse_int(key, text, 1, 10_000)
    if name == "push_t1_ms":
        return _parse_int(key, text, 10, 5000)
    if name == "push_enabled":
        return _parse_bool(key, text)
    if name == "push_route":
        if text not in {"proxy", "direct"}:
            raise SettingsError(f"{key}: expected proxy or direct, got {text!r}")
        return text
    if name == "push_proxy":
        return Registrar.parse(key, text) if text else None
    if name == "push_sip_host":
        try:
            netaddr.IPAddress(text)
        except (netaddr.AddrFormatError, ValueError):
            raise SettingsError(f"{key}: expected an IP address, got {text!r}") from None
        return text
    if name == "poll_interval":
        return _parse_int(key, text, 30, MAX_POLL_INTERVAL)
    if name == "render_cache_size":
        return _parse_int(key, text, 0, 10_000_000)
    if name == "sighting_flush_ms":
        return _parse_int(key, text, 0, 60_000)
    if name in {"sighting_history_seconds", "sighting_refresh_seconds"}:
        return _parse_int(key, text, 0, 366 * 24 * 3600)
    if name == "sighting_buffer":
        return _parse_int(key, text, 1, 10_000_000)
    if name == "max_inflight":
        return _parse_int(key, text, 1, 1_000_000)
    if name == "max_lag_ms":
        return _parse_int(key, text, 10, 60_000)
    if name == "workers":
        return _parse_int(key, text, 1, 64)
    if name == "head_timeout":
        return _parse_int(key, text, 1, 600)
    if name == "vat_rate":
        return _parse_percent(key, text)
    if name == "shipping_countries":
        return _parse_countries(key, text)
    if name in {"allow_mac_only", "metrics", "access_log", "phone_lane"}:
        return _parse_bool(key, text)
    if name == "log_format":
        if text not in {"text", "json"}:
            raise SettingsError(f"{key}: expected text or json, got {text!r}")
        return text
    if name == "trusted_proxies":
        return _parse_networks(key, text)
    if name == "secret_key_file":
        return Path(text)
    if name in {"templates_dir", "firmware_dir", "templates_override_dir"}:
        path = Path(text)
        if not path.is_dir():
            raise SettingsError(f"{key}: {text} is not a directory")
        return path
    if name in _SECURITY:
        return _convert_security(name, key, text)
    if name == "default_registrar":
        return Registrar.parse(key, text)
    if name == "default_transport":
        if text not in {"udp", "tcp", "tls"}:
            raise SettingsError(f"{key}: expected udp, tcp or tls, got {text!r}")
        return text
    if name == "public_url":
        if not text.startswith(("http://", "https://")):
            raise SettingsError(f"{key}: expected an http:// or https:// URL")
        return text
    return text


_SECURITY = {
    "tls_cert",
    "tls_key",
    "http",
    "client_cas",
    "digest",
    "digest_realm",
    "digest_username",
    "digest_nonce_seconds",
    "auth_proofs",
    "first_contact_binding",
    "first_contact_days",
    "rotation_overlap",
    "ban_threshold",
    "ban_network_threshold",
    "ban_window",
    "ban_seconds",
    "ban_exempt",
}
_CHOICES = {
    "http": ("on", "off", "public"),
    "digest_username": ("mac", "mac_upper", "mac_colon"),
    "first_contact_binding": ("off", "address", "network"),
}
_RANGES = {
    "digest_nonce_seconds": (30, 86_400),
    "first_contact_days": (0, 3650),
    "rotation_overlap": (0, 365 * 86_400),
    "ban_threshold": (1, 1_000_000),
    "ban_network_threshold": (1, 1_000_000),
    "ban_window": (10, 86_400),
    "ban_seconds": (1, 365 * 86_400),
}


def _convert_security(name: str, key: str, text: str) -> Any:
    if name in {"tls_cert", "tls_key"}:
        return _readable_file(key, text)
    if name in _CHOICES:
        if text not in _CHOICES[name]:
            raise SettingsError(f"{key}: expected {' or '.join(_CHOICES[name])}, got {text!r}")
        return text
    if name in _RANGES:
        return _parse_int(key, text, *_RANGES[name])
    if name == "digest":
        return _parse_bool(key, text)
    if name == "digest_realm":
        if not 1 <= len(text) <= 64 or not all(c.isprintable() and c not in '"\\' for c in text):
            raise SettingsError(f"{key}: 1 to 64 printable characters, no quote or backslash")
        return text
    if name == "ban_exempt":
        return _parse_networks(key, text)
    if name == "client_cas":
        return _parse_client_cas(key, text)
    if name == "auth_proofs":
        from provisioning.phones.auth import PolicyError, parse_proofs

        try:
            parse_proofs(text)
        except PolicyError as exc:
            raise SettingsError(f"{key}: {exc}") from None
    return text


def _readable_file(key: str, text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise SettingsError(f"{key}: {text} is not a file")
    return path


def _parse_client_cas(key: str, text: str) -> tuple[tuple[str, Path], ...]:
    entries = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, path = part.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", name.strip()):
            raise SettingsError(f"{key}: expected NAME=PEM-FILE entries (NAME a family or lab)")
        entries.append((name.strip(), _readable_file(key, path.strip())))
    return tuple(entries)


def _parse_secret_keys(key: str, text: str) -> tuple[str, ...]:
    from cryptography.fernet import Fernet

    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    for candidate in keys:
        try:
            Fernet(candidate)
        except ValueError:
            raise SettingsError(
                f"{key}: each key must be a Fernet key (32 url-safe base64-encoded bytes); "
                "create one with `provisioning secret generate`"
            ) from None
    return keys


def _parse_percent(key: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SettingsError(f"{key}: expected a percentage such as 20 or 5.5") from None
    # Basis points are what orders store: two decimals at most.
    if not value.is_finite() or not 0 <= value <= 100 or value != round(value, 2):
        raise SettingsError(f"{key}: a percentage from 0 to 100 with at most two decimals")
    return value


def _parse_countries(key: str, text: str) -> tuple[str, ...]:
    from provisioning.orders.addresses import POSTCODES

    codes = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    unknown = [code for code in codes if code not in POSTCODES]
    if not codes or unknown:
        raise SettingsError(
            f"{key}: comma-separated country codes among {', '.join(sorted(POSTCODES))}"
        )
    return codes
