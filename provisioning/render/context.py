"""The data a template sees: plain values only (no ORM objects inside the sandbox), the same
names for every family, documented here in one place.

    server.base_url       URL of this server as phones reach it
    server.scheme, server.host, server.port   the same URL in parts
    server.url            provisioning URL of this device (carries its token)
    server.poll_interval  seconds between re-checks (<= 300: the backstop of every push)
    server.poll_minutes   the same in whole minutes (at least 1)
    server.username, server.password   the device's HTTP digest credential for fetching its
                          files ("" when it has none; see `provisioning device rotate`)
    device.mac            12 hex digits, lowercase; device.mac_upper, device.mac_colon
    device.model, device.label, device.slots, device.revision
    device.code           the model's vendor id or name (family.toml `code`), or ""
    device.firmware_url   URL of the newest firmware image for the model in firmware/, or ""
    account.name, account.timezone (IANA), account.utc_offset ("+1", standard time),
    account.utc_offset_seconds (3600), account.utc_offset_minutes (60),
    account.timezone_name (vendor's name from family.toml [timezones], or ""),
    account.language (code), account.language_name (vendor's name from [languages])
    lines                 one entry per slot 1..slots; unused slots have enabled = false
      .slot .enabled .label .display_name .user .auth_user .password .number
      .registrar_host .registrar_port .transport ("udp", "tcp", "tls")
      .registrar_uri_host   the host as written joined to a port or in a SIP URI: an IPv6
                          address in brackets (`[2001:db8::10]`), else registrar_host; a key
                          for the host alone takes registrar_host (bare)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from provisioning.devices.catalog import Family, Model
from provisioning.devices.mac import colon_mac
from provisioning.sip.address import SipAddress


@dataclass(frozen=True)
class LineData:
    number: str
    user: str
    auth_user: str
    password: str
    display_name: str
    registrar_host: str
    registrar_port: int
    transport: str


@dataclass(frozen=True)
class DeviceData:
    """What rendering needs about one device, decrypted, detached from the database."""

    id: int
    mac: str
    model_id: str
    revision: int
    token: str
    account_name: str
    timezone: str
    language: str
    lines: dict[int, LineData]
    # Operator settings merged into the per-device files (see render.overrides).
    overrides: dict[str, str] = field(default_factory=dict)
    # HTTP digest credential the phone fetches its files with (security.credentials).
    http_username: str = ""
    http_password: str = ""


def utc_offset_minutes(timezone: str) -> int:
    """Standard-time (winter) offset in minutes, as phones without tz databases want it."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    offsets = []
    for month in (1, 7):
        delta = datetime(2025, month, 1, tzinfo=zone).utcoffset()
        offsets.append(delta.total_seconds() if delta else 0.0)
    return int(min(offsets) // 60)


def utc_offset(timezone: str) -> str:
    """`+1` for Europe/Paris, `-3:30` for America/St_Johns."""
    minutes = utc_offset_minutes(timezone)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours}" if not rest else f"{sign}{hours}:{rest:02d}"


def build_context(
    device: DeviceData,
    family: Family,
    model: Model,
    *,
    base_url: str,
    poll_interval: int,
    firmware_url: str = "",
) -> dict[str, Any]:
    lines = []
    for slot in range(1, model.slots + 1):
        line = device.lines.get(slot)
        if line is None:
            lines.append(_disabled(slot))
            continue
        lines.append(
            {
                "slot": slot,
                "enabled": True,
                "label": line.number,
                "display_name": line.display_name or line.number,
                "user": line.user,
                "auth_user": line.auth_user,
                "password": line.password,
                "number": line.number,
                "registrar_host": line.registrar_host,
                "registrar_port": line.registrar_port,
                # `2001:db8::10:5070` would name another address: joined, v6 takes brackets.
                "registrar_uri_host": SipAddress(line.registrar_host).uri_host,
                "transport": line.transport,
            }
        )
    url = urlsplit(base_url)
    offset = utc_offset_minutes(device.timezone)
    return {
        "server": {
            "base_url": base_url,
            "scheme": url.scheme,
            "host": url.hostname or "",
            "port": url.port or (443 if url.scheme == "https" else 80),
            "url": f"{base_url}/{device.token}/",
            "poll_interval": poll_interval,
            "poll_minutes": max(1, poll_interval // 60),
            "username": device.http_username,
            "password": device.http_password,
        },
        "device": {
            "mac": device.mac,
            "mac_upper": device.mac.upper(),
            "mac_colon": colon_mac(device.mac),
            "model": model.id,
            "label": model.label,
            "slots": model.slots,
            "revision": device.revision,
            "code": model.code or "",
            "firmware_url": firmware_url,
        },
        "account": {
            "name": device.account_name,
            "timezone": device.timezone,
            "utc_offset": utc_offset(device.timezone),
            "utc_offset_seconds": offset * 60,
            "utc_offset_minutes": offset,
            "timezone_name": family.timezones.get(device.timezone, ""),
            "language": device.language,
            "language_name": family.languages.get(device.language, ""),
        },
        "lines": lines,
    }


def _disabled(slot: int) -> dict[str, Any]:
    return {
        "slot": slot,
        "enabled": False,
        "label": "",
        "display_name": "",
        "user": "",
        "auth_user": "",
        "password": "",
        "number": "",
        "registrar_host": "",
        "registrar_port": "",
        "registrar_uri_host": "",
        "transport": "udp",
    }
