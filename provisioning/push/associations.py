"""Putting a line on a phone the customer already has: candidates, association, status.

The status is the push's: pending -> notified -> applied (the phone fetched the new revision),
or overdue past the five-minute deadline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.accounts import get_line
from provisioning.audit import SYSTEM, Actor
from provisioning.db.models import Association, Device, LineSlot, Push, utcnow
from provisioning.devices import inventory
from provisioning.errors import DeviceLeaving, LineHasPhone, NotFound

if TYPE_CHECKING:  # render.refusals imports modules that import this one
    from provisioning.render.refusals import FilesCheck

# States of a phone on its way back to the warehouse, or back there.
LEAVING = ("to_return", "returned")


@dataclass(frozen=True)
class Candidate:
    device: Device
    free_slots: list[int]
    same_network: bool


async def compatible_devices(
    session: AsyncSession, line_id: int, caller_ip: str | None
) -> list[Candidate]:
    """The account's phones in service with a free slot for this line (never one on its way
    back: `to_return`, `returned`); those last seen from the caller's public IP first (several
    phones behind one NAT share it: a grouping key, not an identity)."""
    line = await get_line(session, line_id)
    if await session.scalar(select(LineSlot.device_id).where(LineSlot.line_id == line_id)):
        raise LineHasPhone(f"line {line_id} is already on a phone")
    devices = (
        await session.scalars(
            select(Device)
            .where(Device.account_id == line.account_id, Device.state.not_in(LEAVING))
            .order_by(Device.id)
        )
    ).all()
    used: dict[int, set[int]] = {}
    rows = await session.execute(
        select(LineSlot.device_id, LineSlot.slot).where(
            LineSlot.device_id.in_([d.id for d in devices])
        )
    )
    for device_id, slot in rows.all():
        used.setdefault(device_id, set()).add(slot)
    candidates = []
    for device in devices:
        free = [n for n in range(1, device.slot_count + 1) if n not in used.get(device.id, set())]
        if free:
            same = caller_ip is not None and device.last_ip == caller_ip
            candidates.append(Candidate(device, free, same))
    never = datetime.min.replace(tzinfo=utcnow().tzinfo)
    candidates.sort(
        key=lambda c: (not c.same_network, -(c.device.last_seen_at or never).timestamp())
    )
    return candidates


async def associate(
    session: AsyncSession,
    line_id: int,
    mac: str,
    *,
    actor: Actor = SYSTEM,
    files: FilesCheck | None = None,
) -> Association:
    """Re-checks everything under the device's lock (the line still without phone, a slot still
    free, with `files` the device's files able to carry the line) through `assign_line`, which
    queues the push."""
    device = await inventory.get_device(session, mac, lock=True)
    if device.state in LEAVING:
        raise DeviceLeaving(f"device {device.mac} is being returned")
    assignment = await inventory.assign_line(session, mac, line_id, actor=actor, files=files)
    push_id = await session.scalar(
        select(func.max(Push.id)).where(
            Push.device_id == assignment.device_id, Push.reason == "assign"
        )
    )
    assert push_id is not None  # assign_line queued it in this transaction
    association = Association(
        line_id=line_id,
        device_id=assignment.device_id,
        account_id=assignment.account_id,
        slot=assignment.slot,
        push_id=push_id,
    )
    session.add(association)
    await session.flush()
    return association


async def get_association(session: AsyncSession, association_id: int) -> Association:
    association = await session.get(Association, association_id)
    if association is None:
        raise NotFound(f"association {association_id} not found")
    return association


async def association_view(session: AsyncSession, association: Association) -> dict[str, Any]:
    push = await session.get(Push, association.push_id)
    device = await session.get(Device, association.device_id)
    assert push is not None and device is not None
    applied = push.applied_at
    return {
        "id": association.id,
        "line_id": association.line_id,
        "mac": device.mac,
        "slot": association.slot,
        "status": push.state,
        "created_at": association.created_at.isoformat(),
        "deadline": push.deadline.isoformat(),
        "notified_at": push.notified_at.isoformat() if push.notified_at else None,
        "applied_at": applied.isoformat() if applied else None,
        "seconds_to_apply": (
            round((applied - push.created_at).total_seconds(), 3) if applied else None
        ),
        "target_revision": push.target_revision,
        "last_result": push.last_result,
    }
