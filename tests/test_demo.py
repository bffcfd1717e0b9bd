"""Demo data (`provisioning serve --demo`): seeded through the checked domain functions, so its
phones' files are ones the phones can read (render.refusals), and idempotent."""

from __future__ import annotations

from sqlalchemy import func, select

from provisioning import demo
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, LineSlot
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.render.refusals import FilesCheck
from provisioning.settings import Settings


async def test_demo_phones_files_are_not_refused_and_a_second_seed_changes_nothing(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, cipher: Cipher
) -> None:
    async with sessions() as session, session.begin():
        shown = await demo.seed(session, settings, catalog, cipher)
    assert [d.mac for d in shown] == [demo.YEALINK_MAC, demo.LINPHONE_MAC]
    check = FilesCheck.for_settings(catalog, settings, cipher)
    async with sessions() as session:
        for mac in (demo.YEALINK_MAC, demo.LINPHONE_MAC):
            device = await inventory.get_device(session, mac)
            assert len(device.slots) == 1
            # Every file of the phone renders as its stored lines are: nothing refused.
            assert await check.refusal(session, device.id, {}) is None
        before = (
            await session.scalar(select(func.count()).select_from(Device)),
            await session.scalar(select(func.count()).select_from(LineSlot)),
        )
    async with sessions() as session, session.begin():
        await demo.seed(session, settings, catalog, cipher)
    async with sessions() as session:
        after = (
            await session.scalar(select(func.count()).select_from(Device)),
            await session.scalar(select(func.count()).select_from(LineSlot)),
        )
    assert after == before == (2, 2)
