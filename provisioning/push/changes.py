"""Every change to what a device's files would contain goes through `devices_changed`: the
device's config revision grows and a push records that it must fetch that revision (or a later
one) within five minutes. One place, so no change can skip the push."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.models import Device, Push, utcnow

DEADLINE = timedelta(minutes=5)  # the product's promise


async def devices_changed(
    session: AsyncSession, where: Any, reason: str, *, now: datetime | None = None
) -> list[int]:
    """Bump the revision of the devices `where` selects and queue a push for each; returns the
    push ids."""
    now = now or utcnow()
    await session.execute(
        update(Device)
        .where(where)
        .values(config_revision=Device.config_revision + 1)
        .execution_options(synchronize_session=False)
    )
    rows = select(
        Device.id,
        Device.config_revision,
        literal(reason),
        literal("pending"),
        literal(now),
        literal(now + DEADLINE),
        literal(0),
        literal(now),
    ).where(where)
    result = await session.execute(
        insert(Push)
        .from_select(
            [
                "device_id",
                "target_revision",
                "reason",
                "state",
                "created_at",
                "deadline",
                "attempts",
                "next_attempt_at",
            ],
            rows,
        )
        .returning(Push.id)
    )
    return [row[0] for row in result.all()]


async def mark_applied(
    session: AsyncSession, device_id: int, served_revision: int, now: datetime
) -> None:
    """A fetch delivered `served_revision`: every push it satisfies is applied, now."""
    await session.execute(
        update(Push)
        .where(
            Push.device_id == device_id,
            Push.state.in_(("pending", "notified", "overdue")),
            Push.target_revision <= served_revision,
        )
        .values(state="applied", applied_at=now)
        .execution_options(synchronize_session=False)
    )


async def mark_overdue(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(
        update(Push)
        .where(Push.state.in_(("pending", "notified")), Push.deadline < now)
        .values(state="overdue")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Push.state, func.count()).group_by(Push.state))
    return {state: int(n) for state, n in rows.all()}


async def pushes_in_state(
    session: AsyncSession, states: tuple[str, ...], limit: int = 100
) -> list[Push]:
    """Pushes in these states, newest first (operators' lists of pending and overdue)."""
    query = select(Push).where(Push.state.in_(states)).order_by(Push.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
