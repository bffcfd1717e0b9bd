"""Typed settings from `PROVISIONING_*` environment variables or a TOML file, validated at start.

Every error names the key that is wrong, so an operator can fix it without reading code. Each
setting is declared once, as a field of `Settings`: its default, its parser (bounds included) and
one line for the README, whose settings table is generated from them (`settings_table`; run
`python -m provisioning.settings --update-readme` after changing a setting).

The bottom of the house: this module imports nothing of the project's but the proofs grammar
(`provisioning.proofs`) and the reading of SIP addresses (`provisioning.sip.address`), which
import nothing of the project's at all.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import netaddr

from provisioning.proofs import PolicyError, parse_proofs
from provisioning.sip.address import (
    FORMS,
    TRANSPORTS,
    SipAddress,
    SipAddressError,
    is_hostname,
    parse_sip_address,
)

PREFIX = "PROVISIONING_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_POLL_INTERVAL = 300  # the 5-minute promise: polling is the backstop of every push
README = PROJECT_ROOT / "README.md"
TABLE_START = "<!-- settings-table:start -->"
TABLE_END = "<!-- settings-table:end -->"

# Postcode formats of the countries phones may be shipped to (`shipping_countries`). Here, not in
# `provisioning.orders.addresses` (which uses them and re-exports them), because the setting is
# checked against them and this module must not import upwards.
POSTCODES: dict[str, re.Pattern[str]] = {
    "FR": re.compile(r"[0-9]{5}"),
    "MC": re.compile(r"980[0-9]{2}"),
    "BE": re.compile(r"[1-9][0-9]{3}"),
    "LU": re.compile(r"[0-9]{4}"),
    "CH": re.compile(r"[1-9][0-9]{3}"),
    "DE": re.compile(r"[0-9]{5}"),
    "ES": re.compile(r"(0[1-9]|[1-4][0-9]|5[0-2])[0-9]{3}"),
    "IT": re.compile(r"[0-9]{5}"),
    "NL": re.compile(r"[1-9][0-9]{3} ?[A-Z]{2}"),
}


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the key."""


# -- Parsers: (key, text) -> value, or SettingsError naming the key. ----------------------------

Parser = Callable[[str, str], Any]


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


@dataclass(frozen=True)
class _Int:
    """An integer within bounds; the README row shows them."""

    low: int
    high: int

    def __call__(self, key: str, raw: str) -> int:
        return _parse_int(key, raw, self.low, self.high)


@dataclass(frozen=True)
class _Choice:
    options: tuple[str, ...]

    def __call__(self, key: str, raw: str) -> str:
        if raw not in self.options:
            raise SettingsError(f"{key}: expected {' or '.join(self.options)}, got {raw!r}")
        return raw


def _parse_networks(key: str, raw: str) -> netaddr.IPSet:
    cidrs = [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return netaddr.IPSet(cidrs)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise SettingsError(f"{key}: expected a comma-separated list of networks (CIDR)") from None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_host(key: str, raw: str) -> str:
    if not (_is_ip(raw) or is_hostname(raw)):
        raise SettingsError(f"{key}: expected an IP address or a host name, got {raw[:100]!r}")
    return raw


def _parse_ip(key: str, raw: str) -> str:
    if not _is_ip(raw):
        raise SettingsError(f"{key}: expected an IP address, got {raw[:100]!r}")
    return raw


def _parse_listen(key: str, raw: str) -> tuple[str, int] | None:
    """`HOST:PORT` or `[IPv6]:PORT`, HOST an IP address (what a socket binds to); empty: off."""
    text = raw.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SettingsError(f"{key}: write an IPv6 address in brackets, `[::]:69`")
    if not sep or not _is_ip(host):
        raise SettingsError(f"{key}: expected IP:PORT such as `0.0.0.0:69`, got {raw[:100]!r}")
    return host, _parse_int(key, port, 1, 65535)


def _parse_database_url(key: str, raw: str) -> str:
    if not raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise SettingsError(f"{key}: expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
    return raw


def _parse_public_url(key: str, raw: str) -> str:
    if not raw:
        return ""  # derived from HOST and PORT (or TLS_PORT)
    problem = "expected an http:// or https:// URL with a host, and no query or fragment"
    if any(c.isspace() for c in raw):
        raise SettingsError(f"{key}: {problem}")
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018 -- raises on a port that is not one
    except ValueError:
        raise SettingsError(f"{key}: {problem}") from None
    host = parts.hostname or ""
    # Phones' file names are appended to it: a query or fragment would swallow them.
    if (
        parts.scheme not in ("http", "https")
        or not (_is_ip(host) or is_hostname(host))
        or parts.query
        or parts.fragment
        or "?" in raw
        or "#" in raw
    ):
        raise SettingsError(f"{key}: {problem}")
    return raw


def _parse_tile_url(key: str, raw: str) -> str:
    """A map tile server's URL template, `{z}`, `{x}` and `{y}` in it (Leaflet's form)."""
    if not raw:
        return ""  # no street map: the Manager draws its schematic plan
    problem = (
        "expected an http:// or https:// URL template with {z}, {x} and {y}, e.g. "
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    )
    parts = urlsplit(raw)
    host = (parts.hostname or "").replace("{s}", "a")
    if (
        parts.scheme not in ("http", "https")
        or not (_is_ip(host) or is_hostname(host))
        or any(c.isspace() or c in "\"'<>\\" for c in raw)
        or not all(f"{{{name}}}" in raw for name in ("z", "x", "y"))
    ):
        raise SettingsError(f"{key}: {problem}")
    return raw


def _parse_text_line(key: str, raw: str) -> str:
    if not 1 <= len(raw) <= 200 or not raw.isprintable():
        raise SettingsError(f"{key}: 1 to 200 printable characters")
    return raw


def _parse_contract_url(key: str, raw: str) -> str:
    if not raw:
        return ""
    parts = urlsplit(raw)
    host = parts.hostname or ""
    if (
        parts.scheme not in ("http", "https")
        or not (_is_ip(host) or is_hostname(host))
        or any(c.isspace() or c in "\"'<>\\" for c in raw)
    ):
        raise SettingsError(f"{key}: expected an http:// or https:// URL")
    return raw


def _parse_contract_version(key: str, raw: str) -> str:
    if raw and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", raw):
        raise SettingsError(f"{key}: 1 to 64 letters, digits, '.', '_', ':' or '-'")
    return raw


def _parse_secret_keys(key: str, raw: str) -> tuple[str, ...]:
    from cryptography.fernet import Fernet

    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    for candidate in keys:
        try:
            Fernet(candidate)
        except ValueError:
            raise SettingsError(
                f"{key}: each key must be a Fernet key (32 url-safe base64-encoded bytes); "
                "create one with `provisioning secret generate`"
            ) from None
    return keys


def _parse_key_file(key: str, raw: str) -> Path:
    # Created when missing, so only what can never become the key file is refused here.
    if not raw.strip():
        raise SettingsError(f"{key}: expected the path of a file")
    path = Path(raw)
    if path.is_dir():
        raise SettingsError(f"{key}: {raw} is a directory, expected the path of a file")
    return path


def _parse_directory(key: str, raw: str) -> Path:
    path = Path(raw)
    if not raw or not path.is_dir():
        raise SettingsError(f"{key}: {raw} is not a directory")
    return path


def _parse_optional_directory(key: str, raw: str) -> Path | None:
    return _parse_directory(key, raw) if raw else None


def _readable_file(key: str, raw: str) -> Path:
    path = Path(raw)
    if not raw or not path.is_file():
        raise SettingsError(f"{key}: {raw} is not a file")
    return path


def _parse_optional_file(key: str, raw: str) -> Path | None:
    return _readable_file(key, raw) if raw else None


def _parse_timezone(key: str, raw: str) -> str:
    if raw not in available_timezones():
        raise SettingsError(f"{key}: expected an IANA time zone such as Europe/Paris, got {raw!r}")
    return raw


def _parse_language(key: str, raw: str) -> str:
    # The shape accounts require of their own language (`provisioning.accounts`).
    if not re.fullmatch(r"[a-z]{2}", raw):
        raise SettingsError(f"{key}: expected a two-letter code such as fr, got {raw!r}")
    return raw


def _parse_realm(key: str, raw: str) -> str:
    if not 1 <= len(raw) <= 64 or not all(c.isprintable() and c not in '"\\' for c in raw):
        raise SettingsError(f"{key}: 1 to 64 printable characters, no quote or backslash")
    return raw


def _parse_proofs(key: str, raw: str) -> str:
    # Kept as written: `provisioning.security.policy` parses it into the default policy.
    try:
        parse_proofs(raw)
    except PolicyError as exc:
        raise SettingsError(f"{key}: {exc}") from None
    return raw


def _parse_client_cas(key: str, raw: str) -> tuple[tuple[str, Path], ...]:
    entries = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, path = part.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", name.strip()):
            raise SettingsError(f"{key}: expected NAME=PEM-FILE entries (NAME a family or lab)")
        entries.append((name.strip(), _readable_file(key, path.strip())))
    return tuple(entries)


def _parse_percent(key: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise SettingsError(f"{key}: expected a percentage such as 20 or 5.5") from None
    # Basis points are what orders store: two decimals at most.
    if not value.is_finite() or not 0 <= value <= 100 or value != round(value, 2):
        raise SettingsError(f"{key}: a percentage from 0 to 100 with at most two decimals")
    return value


def _parse_countries(key: str, raw: str) -> tuple[str, ...]:
    codes = tuple(part.strip().upper() for part in raw.split(",") if part.strip())
    unknown = [code for code in codes if code not in POSTCODES]
    if not codes or unknown:
        raise SettingsError(
            f"{key}: comma-separated country codes among {', '.join(sorted(POSTCODES))}"
        )
    return codes


# -- SIP registrars and proxies. -----------------------------------------------------------------

# The reading itself is `provisioning.sip.address`, shared with the lines of `accounts`.
REGISTRAR_FORMS = FORMS


@dataclass(frozen=True)
class Registrar(SipAddress):
    """A SIP registrar or proxy setting: a `SipAddress` whose errors name the setting."""

    @classmethod
    def parse(cls, key: str, raw: str, transports: tuple[str, ...] = TRANSPORTS) -> Registrar:
        """The forms operators write (REGISTRAR_FORMS), or SettingsError naming `key`."""
        try:
            read = parse_sip_address(raw, transports)
        except SipAddressError as exc:
            raise SettingsError(f"{key}: {exc}") from None
        return cls(read.host, read.port, read.transport, read.port_named)


def _parse_registrar(key: str, raw: str) -> Registrar:
    return Registrar.parse(key, raw)


def _parse_push_proxy(key: str, raw: str) -> Registrar | None:
    # The sender speaks UDP and TCP only (a tls line is not pushed either), over IPv4: its
    # socket is bound to PUSH_SIP_HOST. An IPv6 proxy would end every NOTIFY `unresolved`.
    if not raw.strip():
        return None
    proxy = Registrar.parse(key, raw, ("udp", "tcp"))
    if ":" in proxy.host:
        raise SettingsError(
            f"{key}: pushes are sent over IPv4 only: give an IPv4 address or a host name, "
            f"not {proxy.host}"
        )
    return proxy


# -- The declarations. ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """How one setting is read and shown: its parser, its README line, and its default as the
    README shows it when the value itself would mislead (`shown`, markdown)."""

    parse: Parser
    doc: str
    shown: str | None = None


def _declared(parse: Parser, doc: str, shown: str | None = None) -> dict[str, Setting]:
    """A field's metadata: what reads and documents it."""
    return {"setting": Setting(parse, doc, shown)}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default="sqlite+aiosqlite:///provisioning.sqlite3",
        metadata=_declared(_parse_database_url, "or `postgresql+asyncpg://user:pw@host/db`"),
    )
    # Fernet keys, newest first: older keys still decrypt, so keys can be rotated.
    secret_key: tuple[str, ...] = field(
        default=(),
        metadata=_declared(
            _parse_secret_keys,
            "Fernet key(s), comma-separated, newest first (`provisioning secret generate`)",
            "read from `SECRET_KEY_FILE`",
        ),
    )
    # Where the embedded set-up keeps its key when PROVISIONING_SECRET_KEY is not set.
    secret_key_file: Path = field(
        default=Path("provisioning.key"),
        metadata=_declared(_parse_key_file, "created by `db upgrade`/`serve` when no key is set"),
    )
    host: str = field(
        default="127.0.0.1",
        metadata=_declared(_parse_host, "where `serve` listens: an IP address or a host name"),
    )
    port: int = field(
        default=8080, metadata=_declared(_Int(1, 65535), "where `serve` listens for plain HTTP")
    )
    public_url: str = field(
        default="",
        metadata=_declared(
            _parse_public_url, "base URL written into phones' configs", "`http://HOST:PORT`"
        ),
    )
    trusted_proxies: netaddr.IPSet = field(
        default_factory=netaddr.IPSet,
        metadata=_declared(_parse_networks, "CIDRs whose `X-Forwarded-For` is believed"),
    )
    # MAC-only access hands out SIP passwords to anyone who guesses a MAC: closed labs only.
    allow_mac_only: bool = field(
        default=False,
        metadata=_declared(_parse_bool, "serve files by MAC without the device token (labs only)"),
    )
    poll_interval: int = field(
        default=MAX_POLL_INTERVAL,
        metadata=_declared(
            _Int(30, MAX_POLL_INTERVAL),
            "seconds between phones' re-checks: the backstop of every push, 5 minutes at most",
        ),
    )
    templates_dir: Path = field(
        default=PROJECT_ROOT / "templates" / "devices",
        metadata=_declared(_parse_directory, "the shipped device templates"),
    )
    templates_override_dir: Path | None = field(
        default=None,
        metadata=_declared(
            _parse_optional_directory,
            "operator template files, `<family>/<template>`, that win over the shipped ones",
        ),
    )
    firmware_dir: Path = field(
        default=PROJECT_ROOT / "firmware",
        metadata=_declared(
            _parse_directory, "firmware files, served at `/firmware/<path>` with HTTP ranges"
        ),
    )
    default_registrar: Registrar = field(
        default=Registrar("sip.example.net"),
        metadata=_declared(
            _parse_registrar,
            "registrar of new lines: `HOST[:PORT]`, `[IPv6]:PORT`, `udp:`/`tcp:`/`tls:HOST:PORT` "
            "or `sip:HOST[:PORT][;transport=tcp]`",
            "`sip.example.net` (`127.0.0.1:5060` with `--demo`)",
        ),
    )
    default_transport: str = field(
        default="udp",
        metadata=_declared(
            _Choice(TRANSPORTS),
            "transport of new lines: `udp`, `tcp` or `tls` (unset: the one `DEFAULT_REGISTRAR` "
            "names, if any)",
        ),
    )
    default_timezone: str = field(
        default="Europe/Paris",
        metadata=_declared(_parse_timezone, "IANA time zone of new accounts and of the pages"),
    )
    default_language: str = field(
        default="fr",
        metadata=_declared(_parse_language, "two-letter language code of new accounts"),
    )
    render_cache_size: int = field(
        default=10_000,
        metadata=_declared(
            _Int(0, 10_000_000),
            "rendered files kept per process, which bounds its memory (`0`: none)",
        ),
    )
    prerender_rate: int = field(
        default=500,
        metadata=_declared(
            _Int(0, 100_000),
            "devices per second (per process) whose files are rendered in the background after "
            "a change or a new template set and kept in the database, so a phone's first fetch "
            "after a restart renders nothing (`0`: render only when asked)",
        ),
    )
    # -- The fetch path under load (README "Boot storms"). --
    sighting_flush_ms: int = field(
        default=500,
        metadata=_declared(
            _Int(0, 60_000),
            "sightings are written in batches this often, in milliseconds (`0`: one write per "
            "fetch); flushed at clean shutdown",
        ),
    )
    # History rows (`sightings`): a fetch that repeats the last one kept for its device and file
    # (same revision, address, User-Agent, firmware) is kept again only after this many
    # seconds; last-seen facts follow every fetch.
    sighting_history_seconds: int = field(
        default=3600,
        metadata=_declared(
            _Int(0, 366 * 24 * 3600),
            "the same as `SIGHTING_REFRESH_SECONDS` for the history (`sightings` rows), per device "
            "and file (`0`: a row per fetch)",
        ),
    )
    # A device's last-seen facts: a fetch that repeats them rewrites them only after this many
    # seconds (a new revision, address, User-Agent or firmware: at the next batch).
    sighting_refresh_seconds: int = field(
        default=60,
        metadata=_declared(
            _Int(0, 366 * 24 * 3600),
            "a fetch that repeats a device's last-seen facts (revision, address, User-Agent, "
            "firmware) rewrites them only this long after the last write; anything new is written "
            "at the next batch (`0`: every fetch)",
        ),
    )
    sighting_buffer: int = field(
        default=100_000,
        metadata=_declared(
            _Int(1, 10_000_000),
            "sightings kept in memory at most while the database cannot take them",
        ),
    )
    max_inflight: int = field(
        default=256,
        metadata=_declared(
            _Int(1, 1_000_000),
            "phone requests one process handles at once; beyond, `503` + `Retry-After` at once",
        ),
    )
    max_lag_ms: int = field(
        default=500,
        metadata=_declared(
            _Int(10, 60_000),
            "event-loop lag in milliseconds beyond which phones get `503` + `Retry-After` until it "
            "catches up",
        ),
    )
    workers: int = field(
        default=1,
        metadata=_declared(
            _Int(1, 64),
            "server processes sharing the port (`serve --workers N`; SO_REUSEPORT), each with its "
            "own cache and push worker",
        ),
    )
    # -- Pushes: check-sync NOTIFYs (README "Pushing changes to phones"). --
    push_enabled: bool = field(
        default=True,
        metadata=_declared(
            _parse_bool,
            "a worker in each server process sends NOTIFYs when phones' files change (`false`: "
            "polling only)",
        ),
    )
    push_route: str = field(
        default="proxy",
        metadata=_declared(
            _Choice(("proxy", "direct")),
            "`proxy`: NOTIFYs to the line's registrar (or `PUSH_PROXY`), which relays to the "
            "phone; `direct`: to the address the phone last fetched from, on `PUSH_DIRECT_PORT`",
        ),
    )
    push_proxy: Registrar | None = field(
        default=None,
        metadata=_declared(
            _parse_push_proxy,
            "where `proxy` NOTIFYs go instead of the line's registrar: the forms of "
            "`DEFAULT_REGISTRAR`, over `udp` or `tcp` and IPv4 only",
        ),
    )
    push_direct_port: int = field(
        default=5060, metadata=_declared(_Int(1, 65535), "phones' SIP port for `direct` NOTIFYs")
    )
    push_rate: int = field(
        default=50,
        metadata=_declared(
            _Int(1, 10_000),
            "NOTIFYs per second at most, so a bulk change does not start a boot storm",
        ),
    )
    push_sip_host: str = field(
        default="127.0.0.1",
        metadata=_declared(
            _parse_ip,
            "IP address the NOTIFY sender's UDP socket binds to; also what Via and Contact carry",
        ),
    )
    push_sip_port: int = field(
        default=0,
        metadata=_declared(_Int(0, 65535), "port the NOTIFY sender binds to (`0`: any free one)"),
    )
    push_t1_ms: int = field(
        default=500,
        metadata=_declared(
            _Int(10, 5000), "SIP timer T1 in milliseconds (RFC 3261: 500); Timer F is 64 x T1"
        ),
    )
    # -- Orders. --
    vat_rate: Decimal = field(
        default=Decimal("20"),
        metadata=_declared(
            _parse_percent,
            "VAT in percent added to prices (catalog and shipping are excl. VAT), two decimals at "
            "most",
        ),
    )
    shipping_countries: tuple[str, ...] = field(
        default=("FR",),
        metadata=_declared(
            _parse_countries,
            f"countries phones are shipped to, comma-separated ({', '.join(POSTCODES)})",
        ),
    )
    # -- The Manager (README "Web Manager"). --
    map_tiles: str = field(
        default="",
        metadata=_declared(
            _parse_tile_url,
            "street map tiles of the pick-up points' map, `https://HOST/{z}/{x}/{y}.png` (an "
            "OpenStreetMap-compatible server; its host is allowed in the pages' CSP); empty: a "
            "schematic plan drawn by the server, nothing fetched elsewhere",
            "empty",
        ),
    )
    map_attribution: str = field(
        default="© OpenStreetMap",
        metadata=_declared(
            _parse_text_line, "credit shown on the street map, as the tiles' licence asks"
        ),
    )
    contract_file: Path | None = field(
        default=None,
        metadata=_declared(
            _parse_optional_file,
            "the contract customers accept when ordering, an HTML fragment shown at "
            "`/manager/contract` (unset: the model shipped in `provisioning/orders/data/`)",
        ),
    )
    contract_url: str = field(
        default="",
        metadata=_declared(
            _parse_contract_url,
            "the page holding the contract, linked from the order's summary instead of "
            "`CONTRACT_FILE`",
            "empty",
        ),
    )
    contract_version: str = field(
        default="",
        metadata=_declared(
            _parse_contract_version,
            "what each order records as the contract accepted (unset: `sha256-` and 12 hex "
            "digits of the contract's text, or of `CONTRACT_URL`)",
            "empty",
        ),
    )
    # -- Phones proving who they are (README "Security"). --
    tls_cert: Path | None = field(
        default=None,
        metadata=_declared(
            _parse_optional_file,
            "PEM certificate chain: `serve` also listens for HTTPS (TLS 1.2 and 1.3 only); needs "
            "`TLS_KEY`",
        ),
    )
    tls_key: Path | None = field(
        default=None, metadata=_declared(_parse_optional_file, "PEM key of `TLS_CERT`")
    )
    tls_port: int = field(
        default=8443,
        metadata=_declared(
            _Int(1, 65535),
            "where HTTPS listens; with TLS on, `PUBLIC_URL` defaults to `https://HOST:TLS_PORT`",
        ),
    )
    http: str = field(
        default="on",
        metadata=_declared(
            _Choice(("on", "off", "public")),
            "plain HTTP: `on`, `off` (HTTPS only) or `public` (only files with `secret = false`, "
            "firmware; no API)",
        ),
    )
    client_cas: tuple[tuple[str, Path], ...] = field(
        default=(),
        metadata=_declared(
            _parse_client_cas,
            "`family=PEM,...` CA bundles vouching for phones' factory certificates (`lab` for "
            "`certs` ones)",
        ),
    )
    digest: bool = field(
        default=False,
        metadata=_declared(
            _parse_bool,
            "challenge (401) requests that carry no credential, for phones that answer HTTP digest",
        ),
    )
    digest_realm: str = field(
        default="provisioning",
        metadata=_declared(
            _parse_realm, "digest realm: 1 to 64 printable characters, no quote or backslash"
        ),
    )
    digest_username: str = field(
        default="mac",
        metadata=_declared(
            _Choice(("mac", "mac_upper", "mac_colon")),
            "digest username shape: `mac`, `mac_upper` or `mac_colon`",
        ),
    )
    digest_nonce_seconds: int = field(
        default=300, metadata=_declared(_Int(30, 86_400), "lifetime of a digest nonce, in seconds")
    )
    auth_proofs: str = field(
        default="token",
        metadata=_declared(
            _parse_proofs,
            "proofs required unless an account has its own policy: `token`, `digest`, "
            "`certificate`, joined with `+`, `any`, `any-two`",
        ),
    )
    first_contact_binding: str = field(
        default="off",
        metadata=_declared(
            _Choice(("off", "address", "network")),
            "default binding: `off`, `address` or `network` (/24, /64) of the first fetch",
        ),
    )
    first_contact_days: int = field(
        default=0,
        metadata=_declared(_Int(0, 3650), "default first-contact window in days (`0`: none)"),
    )
    rotation_overlap: int = field(
        default=7 * 24 * 3600,
        metadata=_declared(
            _Int(0, 365 * 86_400), "seconds a rotated-out token or password stays valid"
        ),
    )
    # Scanner defence: misses per address / per network in the window, ban length, never banned.
    ban_threshold: int = field(
        default=20,
        metadata=_declared(
            _Int(1, 1_000_000), "misses per address within `BAN_WINDOW` before a ban"
        ),
    )
    ban_network_threshold: int = field(
        default=100,
        metadata=_declared(
            _Int(1, 1_000_000), "misses per network within `BAN_WINDOW` before a ban"
        ),
    )
    ban_window: int = field(
        default=300,
        metadata=_declared(
            _Int(10, 86_400), "sliding window in which misses are counted, in seconds"
        ),
    )
    ban_seconds: int = field(
        default=3600, metadata=_declared(_Int(1, 365 * 86_400), "ban length, in seconds")
    )
    ban_exempt: netaddr.IPSet = field(
        default_factory=netaddr.IPSet,
        metadata=_declared(
            _parse_networks, "CIDRs never counted nor banned (trusted proxies never are)"
        ),
    )
    # -- TFTP (README "TFTP (Zenitel)"): no token, no credential, a MAC is enough. --
    tftp_listen: tuple[str, int] | None = field(
        default=None,
        metadata=_declared(
            _parse_listen,
            "`IP:PORT` (`[IPv6]:PORT`) of a read-only TFTP listener for phones that fetch over "
            'TFTP only (Zenitel), files by MAC without a token: README "TFTP (Zenitel)"',
            "none (off)",
        ),
    )
    tftp_networks: netaddr.IPSet = field(
        default_factory=netaddr.IPSet,
        metadata=_declared(
            _parse_networks,
            "CIDRs allowed to fetch over TFTP; any other source gets no answer (empty: none)",
        ),
    )
    # -- Operating (deploy/README.md). --
    log_format: str = field(
        default="text",
        metadata=_declared(
            _Choice(("text", "json")),
            "`text`, or `json`: one object per log line, with the request id",
        ),
    )
    metrics: bool = field(
        default=True, metadata=_declared(_parse_bool, "Prometheus metrics at `/metrics`")
    )
    # Off: refusals, errors and everything else are still logged; only the line per answered
    # request goes.
    access_log: bool = field(
        default=True,
        metadata=_declared(
            _parse_bool,
            "one line per answered request, tokens masked (refusals and errors are logged either "
            "way)",
        ),
    )
    # Plain phone GETs served by the lean phone lane (phones.lane) instead of aiohttp's
    # request machinery; everything else goes to aiohttp either way.
    phone_lane: bool = field(
        default=True,
        metadata=_declared(
            _parse_bool,
            "phones' plain GETs answered by the lean phone lane; everything else by aiohttp "
            "(`false`: aiohttp for all)",
        ),
    )
    # A client trickling a request head slowly would otherwise hold its connection, and a
    # file descriptor.
    head_timeout: int = field(
        default=10,
        metadata=_declared(
            _Int(1, 600),
            "seconds a client has to send a whole request head (from its first byte; on a "
            "keep-alive connection, from the first byte after the previous request), on the phone "
            "lane and aiohttp alike; slower connections are closed without an answer. Idle "
            "keep-alive connections close after 75 s on both",
        ),
    )

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError(
                f"{PREFIX}TLS_CERT, {PREFIX}TLS_KEY: set both (or neither) to serve HTTPS"
            )
        if self.http != "on" and self.tls_cert is None:
            raise SettingsError(f"{PREFIX}HTTP: {self.http} needs {PREFIX}TLS_CERT and _KEY")
        named = self.default_registrar.transport
        if named is not None and named != self.default_transport:
            raise SettingsError(
                f"{PREFIX}DEFAULT_REGISTRAR, {PREFIX}DEFAULT_TRANSPORT: the registrar says "
                f"{named}, the transport {self.default_transport}; make them agree"
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        # With HTTPS on, phones are pointed at it: per-device files may be refused over HTTP.
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        if self.tls:
            return f"https://{host}:{self.tls_port}"
        return f"http://{host}:{self.port}"

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
        unknown = sorted(set(raw) - set(SETTINGS))
        if unknown:
            names = ", ".join(PREFIX + name.upper() for name in unknown)
            raise SettingsError(f"{names}: unknown setting")
        values: dict[str, Any] = {}
        for name, text in raw.items():
            values[name] = _convert(name, str(text))
        registrar = values.get("default_registrar")
        if registrar is not None and registrar.transport and "default_transport" not in values:
            # `tcp:pbx.example.net` already says how new lines reach it.
            values["default_transport"] = registrar.transport
        return cls(**values)


# Every field's declaration; a field declared without `_declared` metadata fails here, at import.
SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in fields(Settings)}


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
    return SETTINGS[name].parse(PREFIX + name.upper(), text)


# -- The README's settings table. ----------------------------------------------------------------


def _shown_default(f: Field[Any]) -> str:
    """The default as the README shows it, then the bounds of an integer."""
    setting: Setting = f.metadata["setting"]
    shown = setting.shown if setting.shown is not None else _show(f)
    if isinstance(setting.parse, _Int):
        return f"{shown} ({setting.parse.low} to {setting.parse.high})"
    return shown


def _show(f: Field[Any]) -> str:
    value = f.default_factory() if callable(f.default_factory) else f.default
    if value is None or (isinstance(value, str | tuple | netaddr.IPSet) and not value):
        return "none"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Path):
        text = str(value.relative_to(PROJECT_ROOT) if value.is_relative_to(PROJECT_ROOT) else value)
    elif isinstance(value, tuple):
        text = ",".join(str(item) for item in value)
    else:
        text = str(value)
    return f"`{text}`"


def settings_table() -> str:
    """The README's settings table (markdown), one row per setting, from the declarations."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        doc = SETTINGS[f.name].doc
        rows.append(f"| `{f.name.upper()}` | {_shown_default(f)} | {doc} |")
    return "\n".join(rows) + "\n"


def readme_with_table(readme: str) -> str:
    """`readme` with the text between the table markers replaced by `settings_table()`."""
    start = readme.index(TABLE_START) + len(TABLE_START)
    end = readme.index(TABLE_END, start)
    return readme[:start] + "\n" + settings_table() + readme[end:]


if __name__ == "__main__":
    # `python -m provisioning.settings` prints the table; `--update-readme` rewrites it in
    # README.md, between the markers only.
    if sys.argv[1:] == ["--update-readme"]:
        README.write_text(readme_with_table(README.read_text()))
    else:
        sys.stdout.write(settings_table())
