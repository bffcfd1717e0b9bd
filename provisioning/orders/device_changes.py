"""Changes to devices that orders and returns make. Each one that changes what a device's files
would contain bumps the device's config revision in the same transaction."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.crypto import Cipher, new_device_token, token_hash
from provisioning.db.models import Device, LineSlot, SettingOverride
from provisioning.push.changes import devices_changed
from provisioning.security.credentials import expire_credentials


async def bump(session: AsyncSession, device_id: int, reason: str = "order") -> None:
    # Through the one place that also queues the push that must reach the phone.
    await devices_changed(session, Device.id == device_id, reason)


async def lock_device(session: AsyncSession, device_id: int) -> Device:
    query = select(Device).where(Device.id == device_id).with_for_update()
    # populate_existing: the row as locked, not as an earlier statement of this session saw it.
    return (await session.scalars(query.execution_options(populate_existing=True))).one()


async def release_lines(session: AsyncSession, device: Device) -> list[dict[str, int]]:
    """Take every line off the device (its next config has those slots disabled)."""
    rows = (
        await session.scalars(
            select(LineSlot).where(LineSlot.device_id == device.id).order_by(LineSlot.slot)
        )
    ).all()
    released = [{"slot": row.slot, "line_id": row.line_id} for row in rows]
    if released:
        await session.execute(delete(LineSlot).where(LineSlot.device_id == device.id))
        await bump(session, device.id)
    return released


async def forget_device_settings(session: AsyncSession, device: Device) -> None:
    """Operator overrides made for this device's last customer do not follow it to the next."""
    await session.execute(
        delete(SettingOverride).where(
            SettingOverride.scope == "device", SettingOverride.target == device.mac
        )
    )


async def new_credential(session: AsyncSession, device: Device, cipher: Cipher) -> str:
    """Give the device a new URL token: the old one answers like an unknown device from now
    on, and so do a token still in its rotation overlap and the digest passwords its last
    customer's phone carried (a phone that changes hands keeps nothing that opened its files).
    Returns the new token (the caller decides whether anyone ever sees it)."""
    await expire_credentials(session, device.id)
    token = new_device_token()
    device.token_hash = token_hash(token)
    device.token_enc = cipher.encrypt(token)
    return token
