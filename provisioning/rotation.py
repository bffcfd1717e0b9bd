"""Key rotation for secrets at rest: with PROVISIONING_SECRET_KEY="new,old", every stored secret
is re-encrypted with the new key, after which the old key can be dropped."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.crypto import Cipher
from provisioning.db.models import Device, Line


async def rotate_secrets(
    session: AsyncSession, cipher: Cipher, *, actor: audit.Actor = audit.SYSTEM
) -> dict[str, int]:
    counts = {"lines": 0, "devices": 0}
    for line in (await session.scalars(select(Line).execution_options(yield_per=500))).all():
        line.password_enc = cipher.rotate(line.password_enc)
        counts["lines"] += 1
    for device in (await session.scalars(select(Device).execution_options(yield_per=500))).all():
        device.token_enc = cipher.rotate(device.token_enc)
        counts["devices"] += 1
    await session.flush()
    await audit.record(session, actor, "secrets.rotate", "secrets", "all", after=counts)
    return counts
