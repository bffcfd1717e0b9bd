"""Domain operations on devices and lines, with their errors."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, Line
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.errors import (
    DeviceExists,
    InvalidInput,
    InvalidMac,
    LineExists,
    LineHasPhone,
    NoFreeSlot,
    NotFound,
    SlotTaken,
    UnknownModel,
    WrongAccount,
)
from provisioning.settings import Settings
from tests.conftest import World


async def revision(sessions: SessionFactory, mac: str) -> int:
    async with sessions() as session:
        value = await session.scalar(select(Device.config_revision).where(Device.mac == mac))
        assert value is not None
        return value


async def test_assign_takes_the_first_free_slot(sessions: SessionFactory, world: World) -> None:
    async with sessions() as session, session.begin():
        slot = await inventory.assign_line(session, world.yealink_mac, world.line_ids[2])
    assert slot.slot == 3


async def test_assign_to_a_given_slot(sessions: SessionFactory, world: World) -> None:
    async with sessions() as session, session.begin():
        slot = await inventory.assign_line(session, world.yealink_mac, world.line_ids[2], 16)
    assert slot.slot == 16


@pytest.mark.parametrize(
    ("line_index", "slot", "error"),
    [
        (0, None, LineHasPhone),  # already on this phone
        (2, 1, SlotTaken),
        (2, 17, InvalidInput),
        ("other", None, WrongAccount),
    ],
)
async def test_assign_refusals(
    sessions: SessionFactory, world: World, line_index: int | str, slot: int | None, error: type
) -> None:
    line_id = world.other_line_id if line_index == "other" else world.line_ids[int(line_index)]
    before = await revision(sessions, world.yealink_mac)
    with pytest.raises(error):
        async with sessions() as session, session.begin():
            await inventory.assign_line(session, world.yealink_mac, line_id, slot)
    assert await revision(sessions, world.yealink_mac) == before


async def test_line_on_another_phone(sessions: SessionFactory, world: World) -> None:
    with pytest.raises(LineHasPhone):
        async with sessions() as session, session.begin():
            await inventory.assign_line(session, world.linphone_mac, world.line_ids[0])


async def test_no_free_slot(
    sessions: SessionFactory, world: World, settings: Settings, catalog: Catalog
) -> None:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        await inventory.add_device(
            session, catalog, cipher, "001565000001", "yealink-t19p_e2", world.account_id
        )
        await inventory.assign_line(session, "00:15:65:00:00:01", world.line_ids[2])
    with pytest.raises(NoFreeSlot):
        async with sessions() as session, session.begin():
            line = await accounts.create_line(
                session, settings, cipher, world.account_id, "+33100000000", password="p"
            )
            await inventory.assign_line(session, "001565000001", line.id)


async def test_assign_and_unassign_bump_the_revision(
    sessions: SessionFactory, world: World
) -> None:
    start = await revision(sessions, world.yealink_mac)
    async with sessions() as session, session.begin():
        await inventory.assign_line(session, world.yealink_mac, world.line_ids[2])
    assert await revision(sessions, world.yealink_mac) == start + 1
    async with sessions() as session, session.begin():
        slot = await inventory.unassign_line(session, world.yealink_mac, world.line_ids[2])
    assert slot == 3
    assert await revision(sessions, world.yealink_mac) == start + 2


async def test_password_change_bumps_the_phone_revision_and_is_encrypted(
    sessions: SessionFactory, world: World, cipher: Cipher
) -> None:
    start = await revision(sessions, world.yealink_mac)
    async with sessions() as session, session.begin():
        await accounts.set_line_password(session, cipher, world.line_ids[0], "new-password")
    assert await revision(sessions, world.yealink_mac) == start + 1
    async with sessions() as session:
        line = await session.get(Line, world.line_ids[0])
        assert line is not None
        assert "new-password" not in line.password_enc
        assert cipher.decrypt(line.password_enc) == "new-password"


async def test_unassign_a_line_not_on_the_device(sessions: SessionFactory, world: World) -> None:
    with pytest.raises(NotFound):
        async with sessions() as session, session.begin():
            await inventory.unassign_line(session, world.yealink_mac, world.line_ids[2])


async def test_add_device_errors(
    sessions: SessionFactory, world: World, catalog: Catalog, cipher: Cipher
) -> None:
    cases = [
        ("00:15:65:4A:A9:37", "yealink-t46u", world.account_id, DeviceExists),
        ("not-a-mac", "yealink-t46u", world.account_id, InvalidMac),
        ("001565000002", "yealink-t99", world.account_id, UnknownModel),
        ("001565000002", "yealink-t46u", 99999, NotFound),
    ]
    for mac, model, account_id, error in cases:
        with pytest.raises(error):
            async with sessions() as session, session.begin():
                await inventory.add_device(session, catalog, cipher, mac, model, account_id)


async def test_device_token_is_stored_hashed_and_encrypted(
    sessions: SessionFactory, world: World
) -> None:
    async with sessions() as session:
        device = await inventory.get_device(session, world.yealink_mac)
    assert world.yealink_token not in device.token_hash
    assert world.yealink_token not in device.token_enc


async def test_line_validation(
    sessions: SessionFactory, world: World, settings: Settings, cipher: Cipher
) -> None:
    bad = [
        {"number": "12ab", "password": "p"},
        {"number": "+33100000001", "password": ""},
        {"number": "+33100000001", "password": "p\nq"},
        {"number": "+33100000001", "password": "p", "display_name": "Evil\naccount.1.password = x"},
        {"number": "+33100000001", "password": "p", "username": "a b"},
        {"number": "+33100000001", "password": "p", "registrar": "bad host:5060"},
        {"number": "+33100000001", "password": "p", "registrar": "host:99999"},
        {"number": "+33100000001", "password": "p", "transport": "sctp"},
    ]
    for kwargs in bad:
        number = kwargs.pop("number")
        with pytest.raises(InvalidInput):
            async with sessions() as session, session.begin():
                await accounts.create_line(
                    session, settings, cipher, world.account_id, number, **kwargs
                )
    with pytest.raises(LineExists):
        async with sessions() as session, session.begin():
            await accounts.create_line(
                session, settings, cipher, world.account_id, "+33123456701", password="x"
            )
    async with sessions() as session:
        assert len(await accounts.list_lines(session, world.account_id)) == 3


def test_address_parsing() -> None:
    address = accounts.Address.parse("12 rue de la Paix, 75002 Paris")
    assert (address.street, address.postcode, address.town) == (
        "12 rue de la Paix",
        "75002",
        "Paris",
    )
    for bad in ["no comma here", "12 rue, ", "street,\n75002 Paris"]:
        with pytest.raises(InvalidInput):
            accounts.Address.parse(bad)
