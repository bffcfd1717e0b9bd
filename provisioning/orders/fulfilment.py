"""Fulfilment at the warehouse: the operator scans the MAC of the phone going into the parcel.

The device is created (or, for a refurbished phone, re-issued) with the ordered model, the
order's account and a new per-device credential, and a new order's line goes into its first
slot, so the phone is provisioned the moment the customer plugs it in. A replacement is tied to
the lines of the phone it replaces; they move to it at its first fetch (see `handover`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from provisioning.audit import SYSTEM, Actor, record
from provisioning.crypto import Cipher
from provisioning.db.models import Device, LineHandover, LineSlot, Order, UnknownDevice, utcnow
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.errors import DeviceExists, InvalidInput, ModelMismatch, OrderNotOpen, TooFewSlots
from provisioning.orders.addresses import DeliveryAddress
from provisioning.orders.carriers import Carriers, ShipmentRequest
from provisioning.orders.device_changes import bump, forget_device_settings, new_credential
from provisioning.orders.orders import get_order
from provisioning.orders.views import order_view
from provisioning.security.policy import restart_first_contact
from provisioning.views import device_summary

if TYPE_CHECKING:  # render.refusals imports modules that import this one
    from provisioning.render.refusals import FilesCheck

_TRACKING = re.compile(r"[A-Za-z0-9-]{4,64}")


@dataclass(frozen=True)
class Shipment:
    order: Order
    device: Device
    token: str
    # (line id, slot on the new phone) for a replacement: what moves at its first fetch.
    handovers: list[tuple[int, int]]


async def ship_order(
    session: AsyncSession,
    catalog: Catalog,
    cipher: Cipher,
    carriers: Carriers,
    order_id: int,
    mac: str,
    *,
    tracking: str | None = None,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
    files: FilesCheck | None = None,
) -> Shipment:
    order = await get_order(session, order_id, lock=True)
    if order.state != "validated":
        raise OrderNotOpen(f"order {order.id} is {order.state}: only a validated order ships")
    mac = inventory.parse_mac(mac)
    if tracking is not None and not _TRACKING.fullmatch(tracking.strip()):
        raise InvalidInput("tracking: 4 to 64 letters, digits or dashes", field="tracking")
    carrier = carriers.get(order.carrier)
    now = now or utcnow()
    before = order_view(order, now)

    existing = await session.scalar(select(Device).where(Device.mac == mac).with_for_update())
    if existing is None:
        device, token = await inventory.add_device(
            session, catalog, cipher, mac, order.model_id, order.account_id, actor=actor
        )
    else:
        token = await _reissue(session, cipher, existing, order, actor=actor)
        device = existing

    handovers: list[tuple[int, int]] = []
    if order.kind == "new":
        if order.line_id is None:
            raise OrderNotOpen(f"the line of order {order.id} no longer exists: cancel the order")
        # With `files`, a line the model's files could not carry is refused here, before
        # the parcel is booked (the caller's transaction undoes the device just added).
        await inventory.assign_line(session, device.mac, order.line_id, actor=actor, files=files)
    else:
        handovers = await _tie_lines(session, order, device, files=files)

    if tracking is None:
        # Last, once nothing can refuse the shipment: booking a parcel is not undone.
        destination = DeliveryAddress(
            order.delivery_name,
            order.delivery_street,
            order.delivery_postcode,
            order.delivery_town,
            order.delivery_country,
        )
        tracking = await carrier.create_shipment(
            ShipmentRequest(order.id, device.mac, destination, order.relay_point_id)
        )
    # The first-contact window runs from shipping, not from when the device row was made.
    await restart_first_contact(session, device.id, now)
    order.state = "shipped"
    order.shipped_at = now
    order.device_id = device.id
    order.mac = device.mac
    order.tracking = tracking.strip()[:64]
    await session.flush()
    await session.refresh(device)
    await record(
        session, actor, "order.ship", "order", order.id,
        account_id=order.account_id, device_mac=device.mac,
        before=before, after={**order_view(order, now), "handovers": handovers},
    )  # fmt: skip
    return Shipment(order, device, token, handovers)


async def _reissue(
    session: AsyncSession, cipher: Cipher, device: Device, order: Order, *, actor: Actor
) -> str:
    """A phone already known (in stock, or refurbished after a return) goes to a new customer:
    a new credential, a new account, nothing of its past but its MAC and model."""
    if device.account_id is not None or device.state not in ("stock", "returned"):
        raise DeviceExists(
            f"device {device.mac} is in service at a customer's: scan another phone", field="mac"
        )
    if device.model_id != order.model_id:
        raise ModelMismatch(
            f"device {device.mac} is a {device.model_id}; order {order.id} is for a "
            f"{order.model_id}",
            field="mac",
        )
    before = device_summary(device)
    await forget_device_settings(session, device)
    await session.execute(delete(LineSlot).where(LineSlot.device_id == device.id))
    token = await new_credential(session, device, cipher)
    device.account_id = order.account_id
    device.state = "assigned"
    # Its first fetch at the new customer's is a first fetch: no sighting of its past life.
    device.last_seen_at = None
    device.last_ip = None
    device.last_user_agent = None
    device.last_firmware = None
    device.last_revision_served = None
    await session.flush()
    await bump(session, device.id)
    await session.execute(delete(UnknownDevice).where(UnknownDevice.mac == device.mac))
    await session.refresh(device)
    await record(
        session, actor, "device.reissue", "device", device.mac,
        account_id=order.account_id, device_mac=device.mac,
        before=before, after=device_summary(device),
    )  # fmt: skip
    return token


async def _tie_lines(
    session: AsyncSession, order: Order, device: Device, *, files: FilesCheck | None = None
) -> list[tuple[int, int]]:
    """Plan the move of the replaced phone's lines to the new one, keeping slot numbers when
    they exist on the new model. With `files`, lines the new model's files could not carry (a
    `#` on an Aastra, a `"` on a Gigaset N510) are refused here, like too few slots: the move
    itself happens at the phone's first fetch, too late to tell anyone but the phone (a 503)."""
    if order.replaced_device_id is None:
        return []
    rows = (
        await session.scalars(
            select(LineSlot)
            .where(LineSlot.device_id == order.replaced_device_id)
            .order_by(LineSlot.slot)
            .options(selectinload(LineSlot.line))
        )
    ).all()
    if len(rows) > device.slot_count:
        raise TooFewSlots(
            f"the phone being replaced now carries {len(rows)} lines, more than the "
            f"{device.slot_count} slots of a {device.model_id}: cancel the order",
            field="mac",
        )
    keep = all(row.slot <= device.slot_count for row in rows)
    plan = [(row.line_id, row.slot if keep else n) for n, row in enumerate(rows, 1)]
    if files is not None and plan:
        change = (
            f"the lines of {order.replaced_mac} cannot move to device {device.mac} "
            f"(a {device.model_id})"
        )
        moved = {slot: files.line(row.line) for row, (_, slot) in zip(rows, plan, strict=True)}
        await files.refuse(session, device.id, moved, change)
    session.add_all(
        LineHandover(
            order_id=order.id,
            line_id=line_id,
            new_device_id=device.id,
            old_device_id=order.replaced_device_id,
            slot=slot,
        )
        for line_id, slot in plan
    )
    await session.flush()
    return plan
