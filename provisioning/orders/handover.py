"""A shipped phone's first fetch: its order is delivered and, for a replacement, the lines of
the phone it replaces move to it — in one transaction, before its files are rendered, so the
very first config it gets carries them. The old phone's next config has those slots disabled
(a line sits in one slot only, so two phones never register it) and, carrying no line any more,
it becomes "to be returned" with a return reference.

The phone endpoint calls `at_first_fetch` for devices never seen before; everything else here is
an ordinary domain operation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.audit import SYSTEM, Actor, record
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, LineHandover, LineSlot, Order, utcnow
from provisioning.orders.device_changes import bump, lock_device
from provisioning.orders.returns import awaiting_return, open_return
from provisioning.orders.views import order_view


async def complete_delivery(
    session: AsyncSession,
    device_id: int,
    *,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
) -> list[Order]:
    """Mark the device's shipped orders delivered and move the lines of replacements."""
    device = await lock_device(session, device_id)
    orders = (
        await session.scalars(
            select(Order)
            .where(Order.device_id == device_id, Order.state == "shipped")
            .order_by(Order.id)
            .with_for_update()
        )
    ).all()
    now = now or utcnow()
    for order in orders:
        before = order_view(order, now)
        if order.kind == "replacement":
            await _take_over(session, order, device, now=now, actor=actor)
        order.state = "delivered"
        order.delivered_at = now
        await session.flush()
        await record(
            session, actor, "order.deliver", "order", order.id,
            account_id=order.account_id, device_mac=device.mac,
            before=before, after=order_view(order, now),
        )  # fmt: skip
    return list(orders)


def _moves(old_device_id: int | None, holder: int | None) -> bool:
    """Whether a handover still moves its line: only from the phone it replaces, or from none;
    a line the customer has put on another phone since stays there."""
    return holder is None or holder == old_device_id


async def handovers_due(session: AsyncSession, line_id: int) -> list[tuple[int, int]]:
    """(new device, slot) of each handover of `line_id` that will still move it at the new
    phone's first fetch, oldest order first."""
    holder = await session.scalar(select(LineSlot.device_id).where(LineSlot.line_id == line_id))
    steps = (
        await session.execute(
            select(LineHandover.new_device_id, LineHandover.slot, LineHandover.old_device_id)
            .where(LineHandover.line_id == line_id)
            .order_by(LineHandover.order_id)
        )
    ).all()
    return [(s.new_device_id, s.slot) for s in steps if _moves(s.old_device_id, holder)]


async def _take_over(
    session: AsyncSession, order: Order, device: Device, *, now: datetime, actor: Actor
) -> None:
    plan = (
        await session.scalars(
            select(LineHandover)
            .where(LineHandover.order_id == order.id)
            .order_by(LineHandover.slot)
        )
    ).all()
    taken = set(
        (await session.scalars(select(LineSlot.slot).where(LineSlot.device_id == device.id))).all()
    )
    moved: list[dict[str, int]] = []
    old_ids: set[int] = set()
    for step in plan:
        current = await session.scalar(select(LineSlot).where(LineSlot.line_id == step.line_id))
        if not _moves(step.old_device_id, current.device_id if current else None):
            continue
        free = [n for n in range(1, device.slot_count + 1) if n not in taken]
        slot = step.slot if step.slot not in taken else (free[0] if free else None)
        if slot is None or device.account_id is None:
            continue
        if current is not None:
            old_ids.add(current.device_id)
            await session.delete(current)
            await session.flush()
        session.add(
            LineSlot(
                device_id=device.id,
                slot=slot,
                line_id=step.line_id,
                account_id=device.account_id,
                slot_count=device.slot_count,
            )
        )
        await session.flush()
        taken.add(slot)
        moved.append({"line_id": step.line_id, "slot": slot})
    await session.execute(delete(LineHandover).where(LineHandover.order_id == order.id))
    if moved:
        await bump(session, device.id)
    for old_id in old_ids:
        await bump(session, old_id)
    await record(
        session, actor, "device.handover", "device", device.mac,
        account_id=device.account_id, device_mac=device.mac,
        after={"order_id": order.id, "from": order.replaced_mac, "lines": moved},
    )  # fmt: skip
    if order.replaced_device_id is None:
        return
    old = await lock_device(session, order.replaced_device_id)
    remaining = await session.scalar(
        select(func.count()).select_from(LineSlot).where(LineSlot.device_id == old.id)
    )
    # A phone still carrying lines (added after the order) is not asked back.
    if remaining or old.account_id is None or old.state in ("stock", "returned", "to_return"):
        return
    if await awaiting_return(session, old.id) is None:
        await open_return(
            session, old, reason="replacement", order_id=order.id, now=now, actor=actor
        )


async def at_first_fetch(sessions: SessionFactory, device_id: int) -> bool:
    """Hook of the phone endpoint for a device never seen before with a shipped order: complete
    its delivery. True when it did (lines moved, new revision: the caller reads the device
    again); False when another request or instance did it first."""
    async with sessions() as session, session.begin():
        return bool(await complete_delivery(session, device_id))
