"""Operators' pages: orders to ship (late first), shipping by MAC and tracking number (the
provisioning URL shown once), returns to receive, unknown devices (claim one), a device's
sightings and masked config, pushes pending and overdue."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, Order, utcnow
from provisioning.devices.catalog import Catalog
from provisioning.devices.unknown import UnknownFacts, record_unknown
from provisioning.orders import orders, returns
from provisioning.orders.carriers import load_carriers
from provisioning.settings import Settings
from tests.conftest import YEALINK_UA, World
from tests.web.kit import OPERATOR, Browser, ManagerWorld, make_manager_world


@pytest.fixture
async def mw(sessions: SessionFactory, world: World) -> ManagerWorld:
    return await make_manager_world(sessions, world)


@pytest.fixture
async def ops(client: TestClient, mw: ManagerWorld) -> Browser:
    browser = Browser(client)
    status, _ = await browser.sign_in(*OPERATOR)
    assert status == 200
    return browser


async def _order(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, line_id: int
) -> int:
    async with sessions() as session, session.begin():
        order, _ = await orders.place_order(
            session, settings, catalog, load_carriers(),
            orders.OrderRequest(
                line_id=line_id, model_id="yealink-t46u", carrier="dhl",
                address={"street": "12 rue de la Paix", "postcode": "75002", "town": "Paris"},
            ),
            accept_contract=True,
        )  # fmt: skip
        return order.id


async def test_ship_an_order_by_its_mac(
    ops: Browser, mw: ManagerWorld, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    order_id = await _order(sessions, settings, catalog, mw.free_line)
    late_id = await _order(sessions, settings, catalog, mw.world.other_line_id)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Order).where(Order.id == late_id).values(ship_by=utcnow() - timedelta(hours=2))
        )
    status, page = await ops.get("/manager/ops/orders")
    assert status == 200 and "en retard" in page
    assert page.index(f"/manager/ops/orders/{late_id}") < page.index(
        f"/manager/ops/orders/{order_id}"
    )
    status, page = await ops.get(f"/manager/ops/orders/{order_id}")
    assert status == 200 and "12 rue de la Paix" in page
    # A wrong MAC, then a wrong tracking number: the error, the form kept, nothing shipped.
    status, page = await ops.post(f"/manager/ops/orders/{order_id}", {"mac": "not-a-mac"})
    assert status == 422 and "Ce n&#39;est pas une adresse MAC" in page and "not-a-mac" in page
    status, page = await ops.post(
        f"/manager/ops/orders/{order_id}", {"mac": "00:15:65:00:00:42", "tracking": "??"}
    )
    assert status == 422 and "Veuillez vérifier le numéro de suivi." in page
    assert "tracking: 4 to 64" not in page
    status, page = await ops.post(
        f"/manager/ops/orders/{order_id}",
        {"mac": "00:15:65:00:00:42", "tracking": "JJD000111222333444555"},
    )
    assert status == 200 and f"Commande n°{order_id} expédiée" in page
    url = re.search(r'id="provisioning-url">([^<]+)<', page).group(1)  # type: ignore[union-attr]
    assert url.startswith("http://phones.test:8080/") and url.endswith("/")
    # Shipping twice is refused.
    status, page = await ops.post(f"/manager/ops/orders/{order_id}", {"mac": "00:15:65:00:00:43"})
    assert status in (200, 409) and "Expédier" in page
    async with sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None and order.state == "shipped" and order.mac == "001565000042"


async def test_receive_a_return(
    client: TestClient, ops: Browser, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        row, _ = await returns.request_return(session, mw.world.linphone_mac)
        reference = row.reference
    status, page = await ops.get("/manager/ops/returns")
    assert reference in page
    status, page = await ops.post(f"/manager/ops/returns/{reference}/receive")
    assert status == 200 and f"Retour {reference} réceptionné" in page
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == mw.world.linphone_mac))
        assert device is not None and device.state == "returned" and device.account_id is None
    status, page = await ops.post(f"/manager/ops/returns/{reference}/receive")
    assert status == 409


async def test_claim_an_unknown_device(
    ops: Browser, mw: ManagerWorld, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        await record_unknown(
            session,
            UnknownFacts("805ec0aabbcc", "yealink", "T54W", utcnow(), "203.0.113.9",
                         "Yealink SIP-T54W 96.86.0.1 80:5e:c0:aa:bb:cc", "805ec0aabbcc.cfg"),
        )  # fmt: skip
    status, page = await ops.get("/manager/ops/unknown")
    assert status == 200 and "805ec0aabbcc" in page and "203.0.113.9" in page
    status, page = await ops.post(
        "/manager/ops/unknown/805ec0aabbcc/claim", {"model": "nope", "account_id": ""}
    )
    assert status == 422 and "Veuillez choisir un modèle" in page
    status, page = await ops.post(
        "/manager/ops/unknown/805ec0aabbcc/claim",
        {"model": "yealink-t54w", "account_id": str(mw.world.account_id)},
    )
    assert status == 200 and "Appareil 80:5E:C0:AA:BB:CC enregistré" in page
    status, page = await ops.get("/manager/ops/unknown")
    assert "805ec0aabbcc" not in page


async def test_device_page_shows_sightings_and_a_masked_config(
    client: TestClient, ops: Browser, mw: ManagerWorld
) -> None:
    resp = await client.get(
        f"/{mw.world.yealink_token}/{mw.world.yealink_mac}.cfg",
        headers={"User-Agent": YEALINK_UA},
    )
    assert resp.status == 200
    status, page = await ops.get(f"/manager/ops/devices/{mw.world.yealink_mac}")
    assert status == 200 and "Passages" in page and f"{mw.world.yealink_mac}.cfg" in page
    assert "secret-1" not in page and "secret-2" not in page  # the SIP passwords
    assert "Configuration (secrets masqués)" in page
    status, _ = await ops.get("/manager/ops/devices/001565999999")
    assert status == 404
    status, _ = await ops.get("/manager/ops/devices?mac=00-15-65-4A-A9-37")
    assert status == 200


async def test_pushes_pending_and_overdue(
    client: TestClient, ops: Browser, mw: ManagerWorld
) -> None:
    status, page = await ops.get("/manager/ops/pushes")
    assert status == 200 and "Mises à jour" in page
    assert mw.world.yealink_mac in page  # the assignments of the world are pending


async def test_a_file_a_template_refuses_is_said_not_a_500(
    client: TestClient,
    ops: Browser,
    mw: ManagerWorld,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
) -> None:
    """A Gigaset N510 cannot carry a double quote in a credential (its template refuses): the
    operator's device page and the API's preview say which file and why, no 500, no secret."""
    from provisioning import accounts, tokens
    from provisioning.crypto import Cipher
    from provisioning.devices import inventory

    mac = "7c2f80a1b2c3"
    async with sessions() as session, session.begin():
        cipher = Cipher(settings.secret_key)
        line = await accounts.create_line(
            session, settings, cipher, mw.world.account_id, "+33123456799",
            password='pa"ss-word-9',
        )  # fmt: skip
        await inventory.add_device(
            session, catalog, cipher, mac, "gigaset-n510", mw.world.account_id
        )
        await inventory.assign_line(session, mac, line.id)
        _, operator = await tokens.create_token(session, "operator", name="ops")
    status, page = await ops.get(f"/manager/ops/devices/{mac}")
    assert status == 200
    assert "double quote" in page and 'pa"ss' not in page and "pa&#34;ss" not in page
    resp = await client.get(
        f"/api/v1/devices/{mac}/config", headers={"Authorization": f"Bearer {operator}"}
    )
    assert resp.status == 409 and resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert "double quote" in problem["detail"] and "pa" + '"ss' not in problem["detail"]
