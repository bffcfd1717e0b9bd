"""From the warehouse to the customer's desk, through the real phone endpoint: a shipped phone's
first boot, a replacement taking over the lines of the old phone (which then gets them
disabled), a return and the re-shipment of the same phone to another account."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from provisioning import audit, overrides
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Account, Device, DeviceBinding, DeviceReturn, Order
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.devices.mac import colon_mac
from provisioning.errors import DeviceExists, InvalidInput, ModelMismatch, OrderNotOpen
from provisioning.orders import fulfilment, orders, returns
from provisioning.orders.carriers import Carriers, load_carriers
from provisioning.security.credentials import digest_secrets, rotate_credential
from provisioning.settings import Settings
from tests.conftest import World

NEW_MAC = "001565a0a001"


def user_agent(model: str, mac: str) -> str:
    return f"Yealink SIP-{model} 108.86.0.20 {colon_mac(mac)}"


async def fetch(client: TestClient, token: str, file: str, agent: str) -> tuple[int, str, Any]:
    resp = await client.get(f"/{token}/{file}", headers={"User-Agent": agent})
    return resp.status, await resp.text(), resp


@pytest.fixture
def carriers() -> Carriers:
    return load_carriers()


@pytest.fixture
async def alice(sessions: SessionFactory, world: World) -> World:
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == world.account_id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
    return world


async def order_and_ship(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    cipher: Cipher,
    carriers: Carriers,
    request: orders.OrderRequest,
    mac: str,
) -> fulfilment.Shipment:
    async with sessions() as session, session.begin():
        order, _ = await orders.place_order(
            session, settings, catalog, carriers, request, accept_contract=True
        )
    async with sessions() as session, session.begin():
        return await fulfilment.ship_order(session, catalog, cipher, carriers, order.id, mac)


async def digest_secrets_of(
    sessions: SessionFactory, cipher: Cipher, mac: str
) -> list[tuple[str, str]]:
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == mac))
        assert device is not None
        return list(await digest_secrets(session, cipher, device.id))


async def state_of(sessions: SessionFactory, mac: str) -> tuple[str, int | None]:
    async with sessions() as session:
        device = await inventory.get_device(session, mac)
        return device.state, device.account_id


async def test_a_shipped_phone_is_provisioned_at_its_first_boot(
    client: TestClient,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    cipher: Cipher,
    carriers: Carriers,
    alice: World,
) -> None:
    line = alice.line_ids[2]
    request = orders.OrderRequest(line_id=line, model_id="yealink-t46u", carrier="dhl")
    shipment = await order_and_ship(sessions, settings, catalog, cipher, carriers, request, NEW_MAC)
    assert shipment.order.state == "shipped" and shipment.order.mac == NEW_MAC
    assert shipment.order.tracking and shipment.order.tracking.startswith("JJD")
    assert (shipment.device.model_id, shipment.device.account_id) == (
        "yealink-t46u",
        alice.account_id,
    )
    async with sessions() as session:
        device = await inventory.get_device(session, NEW_MAC)
        assert [(s.slot, s.line_id) for s in device.slots] == [(1, line)]
        # The first-contact window (issue 9) runs from the shipment.
        binding = await session.get(DeviceBinding, device.id)
        assert binding is not None and binding.bound_to is None
        assert binding.window_from == shipment.order.shipped_at

    agent = user_agent("T46U", NEW_MAC)
    status, boot, _ = await fetch(client, shipment.token, f"{NEW_MAC}.boot", agent)
    assert status == 200 and f'include:config "{NEW_MAC}.cfg"' in boot
    status, body, _ = await fetch(client, shipment.token, f"{NEW_MAC}.cfg", agent)
    assert status == 200
    assert "account.1.enable = 1" in body
    assert "account.1.user_name = 33123456703" in body
    assert "account.1.password = secret-3" in body
    assert "account.2.enable = 0" in body
    assert f"static.auto_provision.server.url = http://phones.test:8080/{shipment.token}/" in body
    async with sessions() as session:
        order = await orders.get_order(session, shipment.order.id)
        assert order.state == "delivered" and order.delivered_at is not None
    assert await state_of(sessions, NEW_MAC) == ("active", alice.account_id)


async def test_a_replacement_takes_over_the_lines_at_its_first_fetch(
    client: TestClient,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    cipher: Cipher,
    carriers: Carriers,
    alice: World,
) -> None:
    old_agent = user_agent("T46U", alice.yealink_mac)
    old_file = f"{alice.yealink_mac}.cfg"
    status, before, _ = await fetch(client, alice.yealink_token, old_file, old_agent)
    assert "account.1.password = secret-1" in before and "account.2.password = secret-2" in before

    request = orders.OrderRequest(
        line_id=alice.line_ids[0], model_id="yealink-t48u", carrier="dhl", kind="replacement"
    )
    shipment = await order_and_ship(sessions, settings, catalog, cipher, carriers, request, NEW_MAC)
    assert shipment.handovers == [(alice.line_ids[0], 1), (alice.line_ids[1], 2)]

    # Shipped, not plugged in: the old phone keeps its lines, the new one has none yet.
    status, still, _ = await fetch(client, alice.yealink_token, old_file, old_agent)
    assert "account.1.password = secret-1" in still
    async with sessions() as session:
        assert (await inventory.get_device(session, NEW_MAC)).slots == []

    new_agent = user_agent("T48U", NEW_MAC)
    status, first, _ = await fetch(client, shipment.token, f"{NEW_MAC}.cfg", new_agent)
    assert status == 200
    assert "account.1.user_name = 33123456701" in first and "account.1.password = secret-1" in first
    assert "account.2.user_name = 33123456702" in first and "account.2.password = secret-2" in first
    assert "account.3.enable = 0" in first

    # The old phone's next fetch: those slots disabled, no credential left behind.
    status, after, _ = await fetch(client, alice.yealink_token, old_file, old_agent)
    assert status == 200
    assert "account.1.enable = 0" in after and "account.2.enable = 0" in after
    assert "secret-1" not in after and "secret-2" not in after

    assert await state_of(sessions, alice.yealink_mac) == ("to_return", alice.account_id)
    async with sessions() as session:
        order = await orders.get_order(session, shipment.order.id)
        assert order.state == "delivered"
        pending = await returns.list_returns(session, account_id=alice.account_id)
        assert [(r.mac, r.reason, r.order_id, r.state) for r in pending] == [
            (alice.yealink_mac, "replacement", order.id, "awaiting")
        ]
        new = await inventory.get_device(session, NEW_MAC)
        assert [(s.slot, s.line_id) for s in new.slots] == [
            (1, alice.line_ids[0]),
            (2, alice.line_ids[1]),
        ]
        events = [e.action for e in await audit.list_events(session, device_mac=NEW_MAC)]
        assert "device.handover" in events and "order.deliver" in events

    # Later fetches of the new phone: the same lines, nothing moves twice.
    status, again, _ = await fetch(client, shipment.token, f"{NEW_MAC}.cfg", new_agent)
    assert "account.2.password = secret-2" in again


async def test_return_then_reshipment_to_another_account(
    client: TestClient,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    cipher: Cipher,
    carriers: Carriers,
    world: World,
) -> None:
    mac, agent = world.yealink_mac, user_agent("T46U", world.yealink_mac)
    file = f"{mac}.cfg"
    async with sessions() as session, session.begin():
        await overrides.set_override(
            session, catalog, "device", mac, "custom.alice_marker", "alice-only"
        )
    status, alice_cfg, _ = await fetch(client, world.yealink_token, file, agent)
    assert "secret-1" in alice_cfg and "alice-only" in alice_cfg
    # Alice's phone also got a new URL (the old one good for an hour more) and a digest
    # password: none of it may open the phone's files once it has changed hands.
    async with sessions() as session, session.begin():
        rotated = await rotate_credential(session, cipher, mac, "token", overlap=3600)
        await rotate_credential(session, cipher, mac, "digest", overlap=0)
    assert rotated.token is not None
    status, alice_cfg, _ = await fetch(client, world.yealink_token, file, agent)
    assert status == 200  # within its overlap
    alice_password = (await digest_secrets_of(sessions, cipher, mac))[0][1]
    assert alice_password in alice_cfg

    async with sessions() as session, session.begin():
        ret, created = await returns.request_return(session, mac)
    assert created and ret.reference.startswith("RT-") and ret.state == "awaiting"
    async with sessions() as session, session.begin():
        again, created_again = await returns.request_return(session, mac)
    assert (again.reference, created_again) == (ret.reference, False)
    # Lines released at once: the phone's next config disables them.
    status, released, _ = await fetch(client, world.yealink_token, file, agent)
    assert status == 200 and "account.1.enable = 0" in released and "secret-1" not in released
    assert await state_of(sessions, mac) == ("to_return", world.account_id)

    async with sessions() as session, session.begin():
        received = await returns.receive_return(session, cipher, ret.reference.lower())
    assert received.state == "received" and received.received_at is not None
    assert await state_of(sessions, mac) == ("returned", None)

    unknown = await client.get(f"/{'x' * 32}/{file}", headers={"User-Agent": agent})
    for token in (world.yealink_token, rotated.token):
        old = await client.get(f"/{token}/{file}", headers={"User-Agent": agent})
        assert (old.status, await old.read()) == (unknown.status, await unknown.read())
        assert old.status == 404
        assert set(old.headers) - {"Date", "Server"} == set(unknown.headers) - {"Date", "Server"}
    assert await digest_secrets_of(sessions, cipher, mac) == []

    # Refurbished, the same phone goes to Bob, who collects it at a pick-up point.
    request = orders.OrderRequest(
        line_id=world.other_line_id,
        model_id="yealink-t46u",
        carrier="mondial-relay",
        relay_point_id="S75011-02",
    )
    shipment = await order_and_ship(sessions, settings, catalog, cipher, carriers, request, mac)
    assert shipment.token != world.yealink_token and shipment.device.id is not None
    assert shipment.order.tracking and shipment.order.tracking.isdigit()
    async with sessions() as session:
        device = await session.get(Device, shipment.device.id)
        assert device is not None and device.last_seen_at is None
        assert device.account_id == world.other_account_id

    status, bob_cfg, _ = await fetch(client, shipment.token, file, agent)
    assert status == 200
    assert "account.1.user_name = 33999999999" in bob_cfg and "bob-secret" in bob_cfg
    for alice_thing in ("secret-1", "secret-2", "33123456701", "alice-only", "Alice"):
        assert alice_thing not in bob_cfg
    assert alice_password not in bob_cfg
    for token in (world.yealink_token, rotated.token):
        old = await client.get(f"/{token}/{file}", headers={"User-Agent": agent})
        assert (old.status, await old.read()) == (404, b"")
    assert await state_of(sessions, mac) == ("active", world.other_account_id)


async def test_what_the_warehouse_cannot_ship(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    cipher: Cipher,
    carriers: Carriers,
    alice: World,
) -> None:
    request = orders.OrderRequest(line_id=alice.line_ids[2], model_id="yealink-t46u", carrier="dhl")
    async with sessions() as session, session.begin():
        order, _ = await orders.place_order(
            session, settings, catalog, carriers, request, accept_contract=True
        )

    async def ship(mac: str, **kwargs: Any) -> fulfilment.Shipment:
        async with sessions() as session, session.begin():
            return await fulfilment.ship_order(
                session, catalog, cipher, carriers, order.id, mac, **kwargs
            )

    with pytest.raises(DeviceExists, match="in service"):
        await ship(alice.yealink_mac)  # a phone at a customer's
    with pytest.raises(InvalidInput) as caught:
        await ship(NEW_MAC, tracking="no spaces allowed")
    assert caught.value.field == "tracking"
    # A returned softphone is not a T46U.
    async with sessions() as session, session.begin():
        ret, _ = await returns.request_return(session, alice.linphone_mac)
        await returns.receive_return(session, cipher, alice.linphone_mac)
    with pytest.raises(ModelMismatch):
        await ship(alice.linphone_mac)
    shipped = await ship(NEW_MAC, tracking="JJD000111222333444555")
    assert shipped.order.tracking == "JJD000111222333444555"
    with pytest.raises(OrderNotOpen):
        await ship("001565a0a002")
    async with sessions() as session:
        stored = await session.scalar(select(Order).where(Order.id == order.id))
        assert stored is not None and stored.state == "shipped"
        assert (
            await session.scalar(select(DeviceReturn).where(DeviceReturn.id == ret.id))
        ) is not None
