"""Giving a phone back: a return reference for the parcel, the phone's lines released at once
(its next config disables them), and, when the warehouse receives it, its credential revoked and
its account's settings forgotten, so that once refurbished it can be shipped to anyone."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.audit import SYSTEM, Actor, record
from provisioning.crypto import Cipher
from provisioning.db.models import (
    RETURN_STATES,
    Device,
    DeviceReturn,
    LineHandover,
    Order,
    utcnow,
)
from provisioning.devices import inventory
from provisioning.devices.mac import InvalidMac, normalize_mac
from provisioning.errors import DeviceNotReturnable, InvalidInput, NotFound, ReturnNotOpen
from provisioning.orders.device_changes import (
    bump,
    forget_device_settings,
    lock_device,
    new_credential,
    release_lines,
)
from provisioning.orders.views import return_view
from provisioning.views import device_summary

# No 0/O, 1/I/L or U: a reference is read aloud and copied by hand onto a parcel.
_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"


def new_reference() -> str:
    part = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"RT-{part[:4]}-{part[4:]}"


async def open_return(
    session: AsyncSession,
    device: Device,
    *,
    reason: str,
    order_id: int | None = None,
    keep_lines: bool = False,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
) -> DeviceReturn:
    """Release the (locked) device's lines (unless `keep_lines`: its replacement takes them
    over) and give it a return reference."""
    assert device.account_id is not None
    before = device_summary(device)
    released = [] if keep_lines else await release_lines(session, device)
    device.state = "to_return"
    await session.flush()
    await session.refresh(device, ["config_revision"])
    reference = new_reference()
    # 30^8 references: a collision is a curiosity, still checked rather than left to chance.
    while await session.scalar(select(DeviceReturn.id).where(DeviceReturn.reference == reference)):
        reference = new_reference()
    row = DeviceReturn(
        reference=reference,
        device_id=device.id,
        mac=device.mac,
        account_id=device.account_id,
        order_id=order_id,
        reason=reason,
        state="awaiting",
        created_at=now or utcnow(),
    )
    session.add(row)
    await session.flush()
    await record(
        session, actor, "device.return", "device", device.mac,
        account_id=device.account_id, device_mac=device.mac,
        before={**before, "slots": released},
        after={**device_summary(device), "return": return_view(row)},
    )  # fmt: skip
    return row


async def awaiting_return(session: AsyncSession, device_id: int) -> DeviceReturn | None:
    return await session.scalar(
        select(DeviceReturn).where(
            DeviceReturn.device_id == device_id, DeviceReturn.state == "awaiting"
        )
    )


async def replacement_on_order(session: AsyncSession, device_id: int) -> Order | None:
    """The order of a phone that is to replace this one, validated or shipped, if any."""
    return await session.scalar(
        select(Order)
        .where(
            Order.replaced_device_id == device_id,
            Order.kind == "replacement",
            Order.state.in_(("validated", "shipped")),
        )
        .order_by(Order.id)
        .limit(1)
    )


async def request_return(
    session: AsyncSession, mac: str, *, now: datetime | None = None, actor: Actor = SYSTEM
) -> tuple[DeviceReturn, bool]:
    """The customer gives the phone back. Returns the return and whether it is new (asking
    twice gives the same reference). A phone with a replacement on order keeps its lines
    until the replacement's first fetch moves them (`handover`): released now, they were lost
    to the replacement, which is planned from the lines of the phone it replaces when it
    ships, and the customer's lines rang nowhere until then."""
    device = await inventory.get_device(session, mac, lock=True)
    existing = await awaiting_return(session, device.id)
    if existing is not None:
        return existing, False
    if device.account_id is None or device.state in ("stock", "returned"):
        raise DeviceNotReturnable(f"device {device.mac} is not in service at a customer's")
    # A replacement returned before its first boot takes over nothing.
    await session.execute(delete(LineHandover).where(LineHandover.new_device_id == device.id))
    replacement = await replacement_on_order(session, device.id)
    row = await open_return(
        session, device, reason="return", keep_lines=replacement is not None, now=now,
        actor=actor,
    )  # fmt: skip
    return row, True


async def find_return(session: AsyncSession, reference_or_mac: str) -> DeviceReturn:
    """By reference (`RT-XXXX-XXXX`), or by MAC: the phone's return under way, else its last."""
    text = reference_or_mac.strip()
    row = await session.scalar(select(DeviceReturn).where(DeviceReturn.reference == text.upper()))
    if row is None:
        try:
            mac = normalize_mac(text)
        except InvalidMac:
            mac = None
        if mac is not None:
            row = await session.scalar(
                select(DeviceReturn)
                .where(DeviceReturn.mac == mac)
                .order_by((DeviceReturn.state == "awaiting").desc(), DeviceReturn.id.desc())
                .limit(1)
            )
    if row is None:
        raise NotFound(f"return {text[:32]} not found")
    return row


async def receive_return(
    session: AsyncSession,
    cipher: Cipher,
    reference_or_mac: str,
    *,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
) -> DeviceReturn:
    """The warehouse has the phone: revoke its credential, forget its account."""
    row = await find_return(session, reference_or_mac)
    if row.state != "awaiting":
        raise ReturnNotOpen(f"return {row.reference} was already received")
    device = await lock_device(session, row.device_id)
    before = device_summary(device)
    released = await release_lines(session, device)
    await forget_device_settings(session, device)
    # Never shown: the phone's old URL now gives a 404.
    await new_credential(session, device, cipher)
    device.account_id = None
    device.state = "returned"
    await session.flush()
    await bump(session, device.id)
    row.state = "received"
    row.received_at = now or utcnow()
    await session.flush()
    await session.refresh(device, ["config_revision"])
    await record(
        session, actor, "return.receive", "return", row.reference,
        account_id=row.account_id, device_mac=row.mac,
        before={**before, "slots": released}, after=device_summary(device),
    )  # fmt: skip
    return row


def returns_query(
    *, account_id: int | None = None, state: str | None = None
) -> Select[DeviceReturn]:
    if state is not None and state not in RETURN_STATES:
        raise InvalidInput(f"state: one of {', '.join(RETURN_STATES)}", field="state")
    query = select(DeviceReturn).order_by(DeviceReturn.id)
    if account_id is not None:
        query = query.where(DeviceReturn.account_id == account_id)
    if state is not None:
        query = query.where(DeviceReturn.state == state)
    return query


async def list_returns(
    session: AsyncSession, *, account_id: int | None = None, state: str | None = None
) -> list[DeviceReturn]:
    return list((await session.scalars(returns_query(account_id=account_id, state=state))).all())
