"""Plain views of domain objects, shared by the CLI, the API and the audit trail. None of them
carries a secret: SIP passwords and device tokens are never part of a view."""

from __future__ import annotations

from typing import Any

from provisioning.db.models import Account, Device, Line, SettingOverride, UnknownDevice
from provisioning.sip.address import SipAddress


def account_view(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "address": {
            "street": account.street,
            "postcode": account.postcode,
            "town": account.town,
            "country": account.country,
        },
        "timezone": account.timezone,
        "language": account.language,
    }


def line_view(line: Line, device_mac: str | None = None, slot: int | None = None) -> dict[str, Any]:
    return {
        "id": line.id,
        "account_id": line.account_id,
        "number": line.number,
        "username": line.sip_username,
        "auth_username": line.auth_username,
        "display_name": line.display_name,
        # `[2001:db8::10]:5070` for IPv6: a form `registrar` is given back in (sip/address.py).
        "registrar": str(SipAddress(line.registrar_host, line.registrar_port)),
        "transport": line.transport,
        "device": device_mac,
        "slot": slot,
    }


def device_summary(device: Device) -> dict[str, Any]:
    return {
        "mac": device.mac,
        "model": device.model_id,
        "account_id": device.account_id,
        "state": device.state,
        "config_revision": device.config_revision,
    }


def device_view(device: Device) -> dict[str, Any]:
    """The device with its slots and last sighting (slots and lines must be loaded)."""
    return {
        **device_summary(device),
        "slots": [
            {"slot": s.slot, "line_id": s.line_id, "number": s.line.number} for s in device.slots
        ],
        "last_seen": {
            "at": device.last_seen_at.isoformat() if device.last_seen_at else None,
            "ip": device.last_ip,
            "user_agent": device.last_user_agent,
            "firmware": device.last_firmware,
            "revision_served": device.last_revision_served,
        },
    }


def override_view(row: SettingOverride) -> dict[str, Any]:
    return {"scope": row.scope, "target": row.target, "key": row.key, "value": row.value}


def unknown_view(row: UnknownDevice) -> dict[str, Any]:
    return {
        "mac": row.mac,
        "family": row.family,
        "model_guess": row.ua_model,
        "first_seen": row.first_seen_at.isoformat(),
        "last_seen": row.last_seen_at.isoformat(),
        "ip": row.last_ip,
        "user_agent": row.last_user_agent,
        "file": row.last_file,
        "requests": row.requests,
    }
