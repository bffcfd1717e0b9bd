"""A change a device's files could not carry is refused when it is made, and changes nothing:
putting a line on a device, changing the password or the display name of a line a device
carries. Through the real app (the API, the association route) and the real `provisioning`
command. The refusing template: Aastra's, which cannot carry a `#` (it starts a comment
anywhere on the line), a stable case of `refuse(...)`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from provisioning import accounts, tokens
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Account, AuditEvent, Device, Line, LineHandover, LineSlot, Order
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.orders import orders
from provisioning.orders.carriers import load_carriers
from provisioning.settings import Settings
from tests.conftest import World
from tests.test_cli import Cli
from tests.web.kit import ALICE, OPERATOR, Browser, make_manager_world

AASTRA_MAC = "00085d2374aa"
AASTRA = "aastra-6731i"
HASH_PASSWORD = "pw#SECRET"


@dataclass
class Setup:
    operator: str
    hash_line: int  # a free line of the account whose password holds a `#`
    held_line: int  # a line with a plain password, on the Aastra, slot 1


@pytest.fixture
async def setup(
    world: World, sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> Setup:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
        await inventory.add_device(session, catalog, cipher, AASTRA_MAC, AASTRA, world.account_id)
        hashed = await accounts.create_line(
            session, settings, cipher, world.account_id, "+33100000091", password=HASH_PASSWORD
        )
        held = await accounts.create_line(
            session, settings, cipher, world.account_id, "+33100000092", password="plain-pw"
        )
        await inventory.assign_line(session, AASTRA_MAC, held.id)
    return Setup(operator, hashed.id, held.id)


async def call(
    client: TestClient, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    resp = await client.request(
        method, "/api/v1" + path, headers={"Authorization": f"Bearer {token}"}, json=body
    )
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


async def state(sessions: SessionFactory, settings: Settings) -> dict[str, Any]:
    """What a refused change must leave as it was: the Aastra's revision and slots, every
    line's password and display name, the number of audit events."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == AASTRA_MAC))
        assert device is not None
        slots = (
            await session.execute(
                select(LineSlot.slot, LineSlot.line_id).where(LineSlot.device_id == device.id)
            )
        ).all()
        lines = (await session.scalars(select(Line).order_by(Line.id))).all()
        events = await session.scalar(select(func.count()).select_from(AuditEvent))
        return {
            "revision": device.config_revision,
            "slots": sorted(slots),
            "lines": [(li.id, cipher.decrypt(li.password_enc), li.display_name) for li in lines],
            "events": events,
        }


def assert_refused(status: int, problem: Any, *parts: str) -> None:
    assert status == 409, problem
    assert problem["type"].endswith("/files-refused")
    detail = problem["detail"]
    for part in parts:
        assert part in detail, detail
    # Says which file, which slot and why (the template's refuse), never the value.
    assert "mac.cfg.j2" in detail and "contains a #" in detail
    assert "SECRET" not in detail


async def test_api_assign_is_refused_and_changes_nothing(
    client: TestClient, setup: Setup, sessions: SessionFactory, settings: Settings, world: World
) -> None:
    before = await state(sessions, settings)
    status, problem = await call(
        client, setup.operator, "POST", f"/devices/{AASTRA_MAC}/lines", {"line_id": setup.hash_line}
    )
    assert_refused(status, problem, f"line {setup.hash_line} cannot go in slot 2", AASTRA_MAC)
    assert await state(sessions, settings) == before
    # The same line on a phone whose format carries a `#`: assigned.
    status, body = await call(
        client,
        setup.operator,
        "POST",
        f"/devices/{world.yealink_mac}/lines",
        {"line_id": setup.hash_line},
    )
    assert status == 201, body


async def test_api_association_is_refused_and_changes_nothing(
    client: TestClient, setup: Setup, sessions: SessionFactory, settings: Settings
) -> None:
    """The route the customer pages share (push.associations.associate)."""
    before = await state(sessions, settings)
    status, problem = await call(
        client,
        setup.operator,
        "POST",
        "/associations",
        {"line_id": setup.hash_line, "mac": AASTRA_MAC},
    )
    assert_refused(status, problem, f"line {setup.hash_line}")
    assert await state(sessions, settings) == before


@pytest.mark.parametrize(
    ("body", "what"),
    [({"password": "new#SECRET"}, "password"), ({"display_name": "A#SECRET"}, "display name")],
)
async def test_api_line_change_is_refused_when_its_phone_cannot_carry_it(
    client: TestClient,
    setup: Setup,
    sessions: SessionFactory,
    settings: Settings,
    body: dict[str, str],
    what: str,
) -> None:
    before = await state(sessions, settings)
    status, problem = await call(client, setup.operator, "PATCH", f"/lines/{setup.held_line}", body)
    assert_refused(status, problem, f"the new {what} of line {setup.held_line}", AASTRA_MAC)
    assert await state(sessions, settings) == before
    # Both at once: the display name is fine, the password is not; the request changes nothing.
    both = {"display_name": "Reception", "password": "new#SECRET"}
    status, problem = await call(client, setup.operator, "PATCH", f"/lines/{setup.held_line}", both)
    assert_refused(status, problem, "the new password")
    assert await state(sessions, settings) == before
    # A line on no phone, or on a phone that carries it, changes as before.
    for line_id in (setup.hash_line, setup.held_line):
        ok = {"password": "fine#pw"} if line_id == setup.hash_line else {"password": "fine-pw"}
        status, view = await call(client, setup.operator, "PATCH", f"/lines/{line_id}", ok)
        assert status == 200, view
    after = await state(sessions, settings)
    assert after["revision"] == before["revision"] + 1  # the held line's new password
    assert (setup.held_line, "fine-pw", "") in after["lines"]


async def test_customer_page_association_is_refused_and_changes_nothing(
    client: TestClient, setup: Setup, sessions: SessionFactory, settings: Settings, world: World
) -> None:
    """The customer's own pages: the same refusal, said in the reader's language."""
    await make_manager_world(sessions, world)
    alice = Browser(client)
    assert (await alice.sign_in(*ALICE))[0] == 200
    before = await state(sessions, settings)
    status, page = await alice.post(
        f"/manager/lines/{setup.hash_line}/associate", {"mac": AASTRA_MAC}
    )
    assert status == 409
    assert "Ce téléphone ne peut pas recevoir cette ligne telle quelle" in page
    assert "SECRET" not in page
    assert await state(sessions, settings) == before


@pytest.fixture
def cli(settings: Settings, sessions: SessionFactory, tmp_path: Path) -> Cli:
    return Cli(settings, tmp_path)


async def test_cli_assign_and_password_are_refused_and_change_nothing(
    cli: Cli, setup: Setup, sessions: SessionFactory, settings: Settings, world: World
) -> None:
    before = await state(sessions, settings)
    result = cli.run("device", "assign", AASTRA_MAC, str(setup.hash_line), ok=False)
    assert result.returncode != 0 and result.stdout == ""
    message = result.stderr.strip()
    assert message.startswith(f"error: line {setup.hash_line} cannot go in slot 2 of device")
    assert "contains a #" in message and "SECRET" not in message
    assert "Traceback" not in result.stderr
    result = cli.run("line", "password", str(setup.held_line), "--password", "new#SECRET", ok=False)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message.startswith(f"error: the new password of line {setup.held_line} cannot be")
    assert "contains a #" in message and "SECRET" not in message
    assert await state(sessions, settings) == before
    # What the phone gets is what it got: the old password, one line.
    rendered = cli.run("render", AASTRA_MAC, f"{AASTRA_MAC.upper()}.cfg").stdout
    assert "plain-pw" in rendered and "#SECRET" not in rendered
    # Allowed changes still go through.
    assert cli.json("line", "password", str(setup.held_line), "--password", "other-pw")["changed"]
    assigned = cli.json("device", "assign", AASTRA_MAC, str(world.line_ids[2]))
    assert assigned["slot"] == 2


async def test_cli_shipping_an_order_is_refused_before_the_parcel_is_booked(
    cli: Cli,
    setup: Setup,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
) -> None:
    """An order's line goes on the phone at shipment (orders.fulfilment.ship_order). Only
    Yealink models are orderable in the shipped catalog, and they refuse nothing: the order is
    placed for one, then moved to an Aastra, as an operator's own catalog could sell it."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == world.account_id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
        request = orders.OrderRequest(setup.hash_line, "yealink-t46u", "dhl")
        order, _ = await orders.place_order(
            session, settings, catalog, load_carriers(), request, accept_contract=True
        )
        await session.execute(update(Order).where(Order.id == order.id).values(model_id=AASTRA))
        order_id = order.id
    before = await state(sessions, settings)
    new_mac = "00085d2374bb"
    result = cli.run("order", "ship", str(order_id), new_mac, ok=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: line {setup.hash_line} cannot go in slot 1 of")
    assert "contains a #" in result.stderr and "SECRET" not in result.stderr
    assert await state(sessions, settings) == before
    async with sessions() as session:
        assert await session.scalar(select(Device).where(Device.mac == new_mac)) is None
        shipped = await session.get(Order, order_id)
        assert shipped is not None and shipped.state == "validated" and shipped.tracking is None


async def _replacement_for_an_aastra(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World, line_id: int
) -> int:
    """A replacement of the Yealink (whose format carries a `#`), once `line_id` is on it,
    placed for an orderable model and moved to an Aastra, as in the test above."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == world.account_id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
        await inventory.assign_line(session, world.yealink_mac, line_id)
        request = orders.OrderRequest(line_id, "yealink-t46u", "dhl", kind="replacement")
        order, _ = await orders.place_order(
            session, settings, catalog, load_carriers(), request, accept_contract=True
        )
        assert order.replaced_mac == world.yealink_mac
        await session.execute(update(Order).where(Order.id == order.id).values(model_id=AASTRA))
        return order.id


async def shipping_state(sessions: SessionFactory, order_id: int, mac: str) -> dict[str, Any]:
    async with sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return {
            "order": (order.state, order.tracking, order.device_id),
            "device": await session.scalar(select(Device.id).where(Device.mac == mac)),
            "handovers": await session.scalar(select(func.count()).select_from(LineHandover)),
            "events": await session.scalar(select(func.count()).select_from(AuditEvent)),
        }


async def test_cli_shipping_a_replacement_is_refused_when_the_new_model_cannot_carry_its_lines(
    cli: Cli,
    setup: Setup,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
) -> None:
    """A replacement takes over the old phone's lines at its first fetch (orders.handover): a
    line the new model's files cannot carry is refused at shipping, before the parcel is booked,
    not answered 503 to the new phone from its first boot on."""
    order_id = await _replacement_for_an_aastra(sessions, settings, catalog, world, setup.hash_line)
    new_mac = "00085d2374bc"
    before = await shipping_state(sessions, order_id, new_mac)
    assert before["order"] == ("validated", None, None) and before["device"] is None
    result = cli.run("order", "ship", str(order_id), new_mac, ok=False)
    assert result.returncode != 0 and result.stdout == "" and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith(
        f"error: the lines of {world.yealink_mac} cannot move to device {new_mac} (a {AASTRA})"
    ), message
    assert "mac.cfg.j2" in message and "contains a #" in message and "SECRET" not in message
    assert await shipping_state(sessions, order_id, new_mac) == before
    # Once the line's password fits the new model, the same scan ships.
    async with sessions() as session, session.begin():
        await accounts.set_line_password(
            session, Cipher(settings.secret_key), setup.hash_line, "plain-again"
        )
    shipped = cli.json("order", "ship", str(order_id), new_mac)
    assert shipped["order"]["state"] == "shipped"
    after = await shipping_state(sessions, order_id, new_mac)
    assert after["device"] is not None and after["handovers"] == 3  # lines 1, 2 and this one


async def test_operator_page_shipping_a_replacement_is_refused(
    client: TestClient,
    setup: Setup,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
) -> None:
    """The warehouse's page (web.operator.ship) gives the same refusal, translated."""
    await make_manager_world(sessions, world)
    order_id = await _replacement_for_an_aastra(sessions, settings, catalog, world, setup.hash_line)
    ops = Browser(client)
    assert (await ops.sign_in(*OPERATOR))[0] == 200
    new_mac = "00085d2374bd"
    before = await shipping_state(sessions, order_id, new_mac)
    status, page = await ops.post(
        f"/manager/ops/orders/{order_id}", {"mac": new_mac, "tracking": "JJD000111222333444555"}
    )
    assert status == 409, page
    assert "Ce téléphone ne peut pas recevoir cette ligne telle quelle" in page
    assert "SECRET" not in page
    assert await shipping_state(sessions, order_id, new_mac) == before


async def test_api_shipping_a_replacement_is_refused_when_the_new_model_cannot_carry_its_lines(
    client: TestClient,
    setup: Setup,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
) -> None:
    """`POST /orders/{id}/shipments` gives the CLI's and the page's refusal, as a problem."""
    order_id = await _replacement_for_an_aastra(sessions, settings, catalog, world, setup.hash_line)
    new_mac = "00085d2374be"
    before = await shipping_state(sessions, order_id, new_mac)
    body = {"mac": new_mac, "tracking": "JJD000111222333444556"}
    status, problem = await call(
        client, setup.operator, "POST", f"/orders/{order_id}/shipments", body
    )
    assert_refused(status, problem, f"cannot move to device {new_mac}")
    assert await shipping_state(sessions, order_id, new_mac) == before


async def _line_on_a_shipped_replacement(
    cli: Cli,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
    number: str,
    new_mac: str,
) -> Line:
    """A new line with a plain password on the Yealink, whose replacement (an Aastra,
    `new_mac`) is shipped: the line waits there for the Aastra's first fetch."""
    async with sessions() as session, session.begin():
        moving = await accounts.create_line(
            session, settings, Cipher(settings.secret_key), world.account_id, number,
            password="plain-pw",
        )  # fmt: skip
    order_id = await _replacement_for_an_aastra(sessions, settings, catalog, world, moving.id)
    assert cli.json("order", "ship", str(order_id), new_mac)["order"]["state"] == "shipped"
    return moving


async def test_line_change_is_refused_when_the_replacement_on_its_way_cannot_carry_it(
    client: TestClient,
    cli: Cli,
    setup: Setup,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
) -> None:
    """Once a replacement is shipped, its line waits on the old phone until the new one's first
    fetch (orders.handover); a password or display name the old model takes and the new one
    cannot is refused then too, not answered 503 to the new phone at its first boot."""
    cipher = Cipher(settings.secret_key)
    new_mac = "00085d2374be"
    moving = await _line_on_a_shipped_replacement(
        cli, sessions, settings, catalog, world, "+33100000093", new_mac
    )

    async def line_now() -> tuple[str, str, int]:
        async with sessions() as session:
            line = await session.get(Line, moving.id)
            assert line is not None
            old = await session.scalar(
                select(Device.config_revision).where(Device.mac == world.yealink_mac)
            )
            assert old is not None
            return cipher.decrypt(line.password_enc), line.display_name, old

    before = await line_now()
    for body, what in (
        ({"password": "new#SECRET"}, "password"),
        ({"display_name": "A#SECRET"}, "display name"),
    ):
        status, problem = await call(client, setup.operator, "PATCH", f"/lines/{moving.id}", body)
        assert_refused(status, problem, f"the new {what} of line {moving.id}", new_mac)
        assert await line_now() == before
    # What both models carry goes through, and the old phone, which has the line now, moves on.
    status, view = await call(
        client, setup.operator, "PATCH", f"/lines/{moving.id}", {"password": "fine-pw"}
    )
    assert status == 200, view
    password, _, revision = await line_now()
    assert password == "fine-pw" and revision == before[2] + 1


async def test_a_handover_that_will_not_happen_refuses_nothing(
    client: TestClient,
    cli: Cli,
    setup: Setup,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
) -> None:
    """A line put on another phone after its replacement shipped stays there at the
    replacement's first fetch (orders.handover): the replacement's model has no say in the
    line's changes any more."""
    cipher = Cipher(settings.secret_key)
    moving = await _line_on_a_shipped_replacement(
        cli, sessions, settings, catalog, world, "+33100000094", "00085d2374bf"
    )
    other = "805ec0aabb01"
    async with sessions() as session, session.begin():
        await inventory.add_device(
            session, catalog, cipher, other, "yealink-t46u", world.account_id
        )
        await inventory.unassign_line(session, world.yealink_mac, moving.id)
        await inventory.assign_line(session, other, moving.id)
    status, view = await call(
        client, setup.operator, "PATCH", f"/lines/{moving.id}", {"password": "new#pw"}
    )
    assert status == 200, view
    async with sessions() as session:
        line = await session.get(Line, moving.id)
        assert line is not None and cipher.decrypt(line.password_enc) == "new#pw"
