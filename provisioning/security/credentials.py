"""A device's provisioning credentials besides its URL token: the digest password (username =
the MAC), and rotation with overlap for both.

A rotation makes a new credential current at once (the next config the phone fetches carries it:
its URL token in the provisioning URL, its digest password in the vendor's HTTP credentials) and
keeps the previous one valid for an overlap window, so a phone that fetches with the old one,
or reboots in between, is never locked out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.crypto import Cipher, new_device_token, token_hash
from provisioning.db.models import Device, DeviceCredential, utcnow
from provisioning.devices.inventory import get_device
from provisioning.devices.mac import colon_mac
from provisioning.errors import InvalidInput
from provisioning.push.changes import devices_changed

KINDS = ("token", "digest")
PASSWORD_BYTES = 18  # 144 random bits, 24 URL-safe characters: fits every phone's field


def digest_username(mac: str, shape: str) -> str:
    """The digest username of a device: its MAC, spelled as the setting says."""
    if shape == "mac_upper":
        return mac.upper()
    if shape == "mac_colon":
        return colon_mac(mac)
    return mac


@dataclass(frozen=True)
class Rotation:
    mac: str
    kind: str
    token: str | None  # the new URL token (shown once), for a token rotation
    username: str | None  # the digest username, for a digest rotation
    previous_valid_until: datetime | None  # None: there was no previous credential

    def view(self, base_url: str) -> dict[str, Any]:
        """What the CLI and the API show; the token only as the provisioning URL, this once."""
        until = self.previous_valid_until
        data: dict[str, Any] = {
            "mac": self.mac,
            "kind": self.kind,
            "previous_valid_until": until.isoformat() if until else None,
        }
        if self.token is not None:
            data["url"] = f"{base_url}/{self.token}/"
        if self.username is not None:
            data["username"] = self.username
        return data


def _valid(now: datetime) -> Any:
    return or_(DeviceCredential.expires_at.is_(None), DeviceCredential.expires_at > now)


async def expire_credentials(session: AsyncSession, device_id: int) -> None:
    """Every credential of the device still valid stops opening its files now (the phone
    changes hands: rotated-out tokens in their overlap and digest passwords included)."""
    now = utcnow()
    await session.execute(
        update(DeviceCredential)
        .where(DeviceCredential.device_id == device_id, _valid(now))
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


async def digest_secrets(
    session: AsyncSession, cipher: Cipher, device_id: int
) -> list[tuple[str, str]]:
    """(username, password) of every digest credential valid now, newest first."""
    rows = await session.execute(
        select(DeviceCredential.username, DeviceCredential.secret_enc)
        .where(
            DeviceCredential.device_id == device_id,
            DeviceCredential.kind == "digest",
            _valid(utcnow()),
        )
        .order_by(DeviceCredential.id.desc())
    )
    return [(username or "", cipher.decrypt(secret)) for username, secret in rows.all()]


async def current_digest(
    session: AsyncSession, cipher: Cipher, device_id: int
) -> tuple[str, str] | None:
    """The digest credential written into the device's config (the newest, never expiring)."""
    row = (
        await session.execute(
            select(DeviceCredential.username, DeviceCredential.secret_enc)
            .where(
                DeviceCredential.device_id == device_id,
                DeviceCredential.kind == "digest",
                DeviceCredential.expires_at.is_(None),
            )
            .order_by(DeviceCredential.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return row[0] or "", cipher.decrypt(row[1])


async def mac_of_previous_token(session: AsyncSession, hashed: str) -> str | None:
    """The device a rotated-out token still opens (during its overlap), by the token's hash."""
    return await session.scalar(
        select(Device.mac)
        .join(DeviceCredential, DeviceCredential.device_id == Device.id)
        .where(
            DeviceCredential.kind == "token",
            DeviceCredential.secret_hash == hashed,
            DeviceCredential.expires_at > utcnow(),
        )
        .limit(1)
    )


async def rotate_credential(
    session: AsyncSession,
    cipher: Cipher,
    mac: str,
    kind: str,
    *,
    overlap: int,
    username_shape: str = "mac",
    actor: audit.Actor = audit.SYSTEM,
) -> Rotation:
    """Give the device a new `kind` credential (the first digest password is issued the same
    way); the previous one stays valid for `overlap` seconds. The config revision is bumped so
    the next fetch renders the new credential."""
    if kind not in KINDS:
        raise InvalidInput("kind: token or digest", field="kind")
    if not 0 <= overlap <= 365 * 86_400:
        raise InvalidInput("overlap: 0 to 31536000 seconds", field="overlap")
    device = await get_device(session, mac, lock=True)
    now = utcnow()
    until = now + timedelta(seconds=overlap)
    token = username = None
    previous_until: datetime | None = None
    if kind == "token":
        token = new_device_token()
        session.add(
            DeviceCredential(
                device_id=device.id,
                kind="token",
                secret_hash=device.token_hash,
                secret_enc=device.token_enc,
                expires_at=until,
            )
        )
        device.token_hash = token_hash(token)
        device.token_enc = cipher.encrypt(token)
        previous_until = until
    else:
        result = await session.execute(
            update(DeviceCredential)
            .where(
                DeviceCredential.device_id == device.id,
                DeviceCredential.kind == "digest",
                DeviceCredential.expires_at.is_(None),
            )
            .values(expires_at=until)
            .execution_options(synchronize_session=False)
        )
        previous_until = until if getattr(result, "rowcount", 0) else None
        username = digest_username(device.mac, username_shape)
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        session.add(
            DeviceCredential(
                device_id=device.id,
                kind="digest",
                username=username,
                secret_enc=cipher.encrypt(password),
            )
        )
    await session.flush()
    # The new credential is in the next config: pushed like every other change, so that a
    # phone fetches it within the overlap instead of at its next poll (locked out after it).
    await devices_changed(session, Device.id == device.id, f"rotate-{kind}")
    await session.refresh(device, ["config_revision"])
    await audit.record(
        session, actor, "device.credential.rotate", "device", device.mac,
        account_id=device.account_id, device_mac=device.mac,
        after={"kind": kind, "previous_valid_until": previous_until},
    )  # fmt: skip
    return Rotation(
        mac=device.mac,
        kind=kind,
        token=token,
        username=username,
        previous_valid_until=previous_until,
    )


async def credentials_view(session: AsyncSession, device_id: int) -> list[dict[str, Any]]:
    """The device's credentials other than its current token: kinds and lifetimes only."""
    rows = (
        await session.scalars(
            select(DeviceCredential)
            .where(DeviceCredential.device_id == device_id, _valid(utcnow()))
            .order_by(DeviceCredential.id)
        )
    ).all()
    return [
        {
            "kind": row.kind,
            "username": row.username,
            "created_at": row.created_at.isoformat(),
            "valid_until": row.expires_at.isoformat() if row.expires_at else None,
        }
        for row in rows
    ]
