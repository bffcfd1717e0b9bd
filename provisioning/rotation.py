"""Key rotation for secrets at rest: with PROVISIONING_SECRET_KEY="new,old", every stored secret
is re-encrypted with the new key, after which the old key can be dropped."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.crypto import Cipher
from provisioning.db.models import Device, DeviceCredential, Line

BATCH = 500


async def rotate_secrets(
    session: AsyncSession, cipher: Cipher, *, actor: audit.Actor = audit.SYSTEM
) -> dict[str, int]:
    counts = {"lines": 0, "devices": 0}
    # In batches by id, so a million devices never sit in memory at once.
    last = 0
    while lines := (
        await session.scalars(select(Line).where(Line.id > last).order_by(Line.id).limit(BATCH))
    ).all():
        for line in lines:
            line.password_enc = cipher.rotate(line.password_enc)
        counts["lines"] += len(lines)
        last = lines[-1].id
        await session.flush()
        session.expunge_all()
    last = 0
    while devices := (
        await session.scalars(
            select(Device).where(Device.id > last).order_by(Device.id).limit(BATCH)
        )
    ).all():
        for device in devices:
            device.token_enc = cipher.rotate(device.token_enc)
        counts["devices"] += len(devices)
        last = devices[-1].id
        await session.flush()
        session.expunge_all()
    counts["credentials"] = await _rotate_credentials(session, cipher)
    await audit.record(session, actor, "secrets.rotate", "secrets", "all", after=counts)
    return counts


async def _rotate_credentials(session: AsyncSession, cipher: Cipher) -> int:
    """Digest passwords and rotated-out tokens (security.credentials)."""
    count = last = 0
    while rows := (
        await session.scalars(
            select(DeviceCredential)
            .where(DeviceCredential.id > last)
            .order_by(DeviceCredential.id)
            .limit(BATCH)
        )
    ).all():
        for row in rows:
            row.secret_enc = cipher.rotate(row.secret_enc)
        count += len(rows)
        last = rows[-1].id
        await session.flush()
        session.expunge_all()
    return count
