"""Recording what a fetch tells about a device (the "sighting")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.models import Device, Sighting
from provisioning.push.changes import mark_applied


@dataclass(frozen=True)
class SightingFacts:
    device_id: int
    seen_at: datetime
    ip: str
    user_agent: str
    firmware: str | None
    file_name: str
    revision: int


async def record_sighting(session: AsyncSession, facts: SightingFacts) -> None:
    await session.execute(
        update(Device)
        .where(Device.id == facts.device_id)
        .values(
            last_seen_at=facts.seen_at,
            last_ip=facts.ip,
            last_user_agent=facts.user_agent,
            last_firmware=facts.firmware,
            last_revision_served=facts.revision,
            state=case((Device.state == "assigned", "active"), else_=Device.state),
        )
        .execution_options(synchronize_session=False)
    )
    # The proof of delivery: pushes this fetch satisfies are applied.
    await mark_applied(session, facts.device_id, facts.revision, facts.seen_at)
    await session.execute(
        insert(Sighting).values(
            device_id=facts.device_id,
            seen_at=facts.seen_at,
            ip=facts.ip,
            user_agent=facts.user_agent,
            firmware=facts.firmware,
            file_name=facts.file_name,
            revision=facts.revision,
        )
    )
