"""The slot invariants hold in the database itself: raw SQL that bypasses the Python checks is
refused by the constraints, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, LineSlot, Model
from tests.conftest import World


async def _device(sessions: SessionFactory, mac: str) -> Device:
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == mac))
        assert device is not None
        return device


async def _insert_slot(sessions: SessionFactory, **values: int) -> None:
    async with sessions() as session, session.begin():
        await session.execute(insert(LineSlot).values(**values))


async def test_line_in_at_most_one_slot(sessions: SessionFactory, world: World) -> None:
    y = await _device(sessions, world.yealink_mac)
    with pytest.raises(IntegrityError):
        await _insert_slot(
            sessions,
            device_id=y.id,
            slot=5,
            line_id=world.line_ids[0],
            account_id=world.account_id,
            slot_count=y.slot_count,
        )


async def test_slot_taken(sessions: SessionFactory, world: World) -> None:
    y = await _device(sessions, world.yealink_mac)
    with pytest.raises(IntegrityError):
        await _insert_slot(
            sessions,
            device_id=y.id,
            slot=1,
            line_id=world.line_ids[2],
            account_id=world.account_id,
            slot_count=y.slot_count,
        )


async def test_slot_beyond_the_model(sessions: SessionFactory, world: World) -> None:
    y = await _device(sessions, world.yealink_mac)
    for slot_count, slot in ((y.slot_count, 17), (y.slot_count, 0), (99, 50)):
        # Lying about the slot count does not help: it must match the device's.
        with pytest.raises(IntegrityError):
            await _insert_slot(
                sessions,
                device_id=y.id,
                slot=slot,
                line_id=world.line_ids[2],
                account_id=world.account_id,
                slot_count=slot_count,
            )


async def test_line_of_another_account(sessions: SessionFactory, world: World) -> None:
    y = await _device(sessions, world.yealink_mac)
    for account_id in (world.account_id, world.other_account_id):
        with pytest.raises(IntegrityError):
            await _insert_slot(
                sessions,
                device_id=y.id,
                slot=5,
                line_id=world.other_line_id,
                account_id=account_id,
                slot_count=y.slot_count,
            )


async def test_model_cannot_shrink_below_used_slots(sessions: SessionFactory, world: World) -> None:
    # The T46U in the world has a line in slot 2: it cannot become a one-slot phone.
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await session.execute(update(Model).where(Model.id == "yealink-t46u").values(slots=1))


async def test_device_cannot_leave_its_account_with_lines(
    sessions: SessionFactory, world: World
) -> None:
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await session.execute(
                update(Device)
                .where(Device.mac == world.yealink_mac)
                .values(account_id=world.other_account_id)
            )


async def test_valid_raw_insert_is_accepted(sessions: SessionFactory, world: World) -> None:
    y = await _device(sessions, world.yealink_mac)
    await _insert_slot(
        sessions,
        device_id=y.id,
        slot=16,
        line_id=world.line_ids[2],
        account_id=world.account_id,
        slot_count=y.slot_count,
    )
