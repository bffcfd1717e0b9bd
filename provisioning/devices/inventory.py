"""Devices and their line slots: the domain operations shared by the CLI, the API and the pages.

Each operation that changes what a device's files would contain bumps the device's config
revision in the same transaction. The database constraints (see `db.models`) are the last word
on slots; the checks here exist to give clear errors, and a race that slips past them still ends
in an IntegrityError mapped to the same error.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from provisioning.accounts import get_account, get_line, store_many
from provisioning.audit import SYSTEM, Actor, event, record, record_many
from provisioning.crypto import Cipher, new_device_token, token_hash
from provisioning.db.models import Device, LineSlot, Model, UnknownDevice
from provisioning.devices.catalog import Catalog
from provisioning.devices.mac import InvalidMac as BadMac
from provisioning.devices.mac import normalize_mac
from provisioning.errors import (
    DeviceExists,
    DeviceHasNoAccount,
    InvalidInput,
    InvalidMac,
    LineHasPhone,
    NoFreeSlot,
    NotFound,
    SlotTaken,
    UnknownModel,
    WrongAccount,
)
from provisioning.push.changes import devices_changed
from provisioning.views import device_summary

if TYPE_CHECKING:  # render.refusals reads devices through modules that import this one
    from provisioning.render.refusals import FilesCheck


def parse_mac(text: str) -> str:
    try:
        return normalize_mac(text)
    except BadMac as exc:
        raise InvalidMac(str(exc), field="mac") from None


async def sync_models(session: AsyncSession, catalog: Catalog) -> None:
    """Make the models table match the families' TOML (the TOML is the source of truth)."""
    existing = {m.id: m for m in (await session.scalars(select(Model))).all()}
    for model in catalog.models.values():
        row = existing.get(model.id)
        if row is None:
            row = Model(id=model.id)
            session.add(row)
        row.vendor = model.vendor
        row.family = model.family
        row.label = model.label
        row.slots = model.slots
        row.orderable = model.orderable
        row.price_cents = model.price_cents
    await session.flush()


def new_device(
    catalog: Catalog, cipher: Cipher, mac: str, model_id: str, account_id: int | None
) -> tuple[Device, str]:
    """A device checked and built with its URL token (returned; kept hashed and encrypted),
    not yet in a session. The account is the caller's to check (`account_id` None: stock, or an
    account the caller stores first and then sets)."""
    mac = parse_mac(mac)
    model = catalog.model(model_id)
    if model is None:
        raise UnknownModel(f"unknown model {model_id[:64]!r}", field="model")
    token = new_device_token()
    device = Device(
        mac=mac,
        model_id=model.id,
        slot_count=model.slots,
        account_id=account_id,
        state="assigned" if account_id is not None else "stock",
        token_hash=token_hash(token),
        token_enc=cipher.encrypt(token),
    )
    return device, token


async def add_device(
    session: AsyncSession,
    catalog: Catalog,
    cipher: Cipher,
    mac: str,
    model_id: str,
    account_id: int | None,
    *,
    actor: Actor = SYSTEM,
) -> tuple[Device, str]:
    """Register a device; returns it with its URL token (shown once here, kept encrypted)."""
    device, token = new_device(catalog, cipher, mac, model_id, account_id)
    mac = device.mac
    if account_id is not None:
        await get_account(session, account_id)
    session.add(device)
    try:
        await session.flush()
    except IntegrityError:
        raise DeviceExists(f"a device with MAC {mac} already exists", field="mac") from None
    await session.execute(delete(UnknownDevice).where(UnknownDevice.mac == mac))
    await record(
        session, actor, "device.create", "device", mac,
        account_id=account_id, device_mac=mac, after=device_summary(device),
    )  # fmt: skip
    return device, token


# Rows per statement of the bulk functions (well under every driver's parameter limit).
CHUNK = 1000


_DEVICE_COLUMNS = (
    "mac",
    "model_id",
    "slot_count",
    "account_id",
    "state",
    "token_hash",
    "token_enc",
)


async def insert_devices(
    session: AsyncSession, created: Sequence[Device], *, actor: Actor = SYSTEM
) -> None:
    """Store devices built by `new_device` (their accounts stored and set; their ids set), as
    `add_device` does one: off the unknown devices' list, each in the audit trail; in a few
    statements (a bulk import or claim). A MAC that exists is the IntegrityError of the insert:
    the caller checked."""
    stored = await store_many(session, created, _DEVICE_COLUMNS, ("mac",))
    for device, row in zip(created, stored, strict=True):
        # What the insert stored (its default), not a change: nothing to flush or push.
        set_committed_value(device, "config_revision", row[1])
    macs = [d.mac for d in created]
    for start in range(0, len(macs), CHUNK):
        chunk = macs[start : start + CHUNK]
        await session.execute(delete(UnknownDevice).where(UnknownDevice.mac.in_(chunk)))
    await record_many(
        session,
        [
            event(
                actor,
                "device.create",
                "device",
                d.mac,
                account_id=d.account_id,
                device_mac=d.mac,
                after=device_summary(d),
            )
            for d in created
        ],
    )


async def get_device(session: AsyncSession, mac: str, *, lock: bool = False) -> Device:
    mac = parse_mac(mac)
    query = (
        select(Device)
        .where(Device.mac == mac)
        .options(selectinload(Device.slots).selectinload(LineSlot.line))
    )
    if lock:
        # Serialises slot changes of one device on PostgreSQL; SQLite transactions are
        # already serialised by BEGIN IMMEDIATE.
        query = query.with_for_update()
    device = (await session.scalars(query)).one_or_none()
    if device is None:
        raise NotFound(f"device {mac} not found")
    return device


def devices_query(
    *,
    account_id: int | None = None,
    model_id: str | None = None,
    state: str | None = None,
    seen_since: datetime | None = None,
) -> Select[Device]:
    query = (
        select(Device)
        .order_by(Device.id)
        .options(selectinload(Device.slots).selectinload(LineSlot.line))
    )
    if account_id is not None:
        query = query.where(Device.account_id == account_id)
    if model_id is not None:
        query = query.where(Device.model_id == model_id)
    if state is not None:
        query = query.where(Device.state == state)
    if seen_since is not None:
        query = query.where(Device.last_seen_at >= seen_since)
    return query


async def list_devices(
    session: AsyncSession, *, account_id: int | None = None, model_id: str | None = None
) -> list[Device]:
    query = devices_query(account_id=account_id, model_id=model_id)
    return list((await session.scalars(query)).all())


def provisioning_url(base_url: str, cipher: Cipher, device: Device) -> str:
    return f"{base_url}/{cipher.decrypt(device.token_enc)}/"


def choose_slot(mac: str, slot_count: int, taken: Collection[int], slot: int | None) -> int:
    """The slot a line goes in: `slot` if it is free, else the first free one."""
    if slot is None:
        free = [n for n in range(1, slot_count + 1) if n not in taken]
        if not free:
            raise NoFreeSlot(f"device {mac} has no free slot")
        return free[0]
    if not 1 <= slot <= slot_count:
        raise InvalidInput(f"slot: device {mac} has slots 1 to {slot_count}", field="slot")
    if slot in taken:
        raise SlotTaken(f"slot {slot} of device {mac} is taken")
    return slot


async def assign_line(
    session: AsyncSession,
    mac: str,
    line_id: int,
    slot: int | None = None,
    *,
    actor: Actor = SYSTEM,
    files: FilesCheck | None = None,
) -> LineSlot:
    """Put a line in a slot of a device (the first free slot unless one is given). With `files`
    (the API, the CLI and the pages give it), a line the device's files could not carry (a
    template's `refuse`) is refused with FilesRefused before anything is written."""
    device = await get_device(session, mac, lock=True)
    line = await get_line(session, line_id)
    if device.account_id is None:
        raise DeviceHasNoAccount(f"device {device.mac} belongs to no account")
    if line.account_id != device.account_id:
        raise WrongAccount(f"line {line_id} and device {device.mac} belong to different accounts")
    holder = await session.scalar(select(LineSlot).where(LineSlot.line_id == line_id))
    if holder is not None:
        raise LineHasPhone(f"line {line_id} is already on a phone")
    taken = set(
        (await session.scalars(select(LineSlot.slot).where(LineSlot.device_id == device.id))).all()
    )
    slot = choose_slot(device.mac, device.slot_count, taken, slot)
    if files is not None:
        change = f"line {line_id} cannot go in slot {slot} of device {device.mac}"
        await files.refuse(session, device.id, {slot: files.line(line)}, change)
    assignment = LineSlot(
        device_id=device.id,
        slot=slot,
        line_id=line_id,
        account_id=device.account_id,
        slot_count=device.slot_count,
    )
    mac = device.mac  # a failed flush expires the object: no lazy load after it
    session.add(assignment)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race the checks above could not see (another instance, no row lock).
        raise SlotTaken(f"slot {slot} of device {mac} or line {line_id} was just taken") from None
    await devices_changed(session, Device.id == device.id, "assign")
    await record(
        session, actor, "device.assign", "device", device.mac,
        account_id=device.account_id, device_mac=device.mac,
        after={"line_id": line_id, "slot": slot},
    )  # fmt: skip
    return assignment


@dataclass(frozen=True)
class Assignment:
    """A line for a slot of a device, as `assign_lines` takes it: chosen by the caller with
    `choose_slot` against the device's slots, the line on no phone, of the device's account."""

    device_id: int
    mac: str
    slot: int
    line_id: int
    account_id: int
    slot_count: int


async def assign_lines(
    session: AsyncSession, assignments: Sequence[Assignment], reason: str, *, actor: Actor = SYSTEM
) -> int:
    """Put many lines in slots at once (a bulk import): each in the audit trail as
    `assign_line` records it, but one config revision and one push per device, not one per
    line. The devices are locked first (PostgreSQL; SQLite serialises writers): no other
    transaction changes their slots meanwhile, and a slot or line taken since the caller looked
    is the IntegrityError of the insert. Returns the number of pushes queued."""
    device_ids = sorted({a.device_id for a in assignments})
    for start in range(0, len(device_ids), CHUNK):
        chunk = device_ids[start : start + CHUNK]
        await session.execute(select(Device.id).where(Device.id.in_(chunk)).with_for_update())
    rows = [
        {
            "device_id": a.device_id,
            "slot": a.slot,
            "line_id": a.line_id,
            "account_id": a.account_id,
            "slot_count": a.slot_count,
        }
        for a in assignments
    ]
    for start in range(0, len(rows), CHUNK):
        await session.execute(insert(LineSlot), rows[start : start + CHUNK])
    pushes = 0
    for start in range(0, len(device_ids), CHUNK):
        chunk = device_ids[start : start + CHUNK]
        pushes += len(await devices_changed(session, Device.id.in_(chunk), reason))
    await record_many(
        session,
        [
            event(
                actor,
                "device.assign",
                "device",
                a.mac,
                account_id=a.account_id,
                device_mac=a.mac,
                after={"line_id": a.line_id, "slot": a.slot},
            )
            for a in assignments
        ],
    )
    return pushes


async def unassign_line(
    session: AsyncSession, mac: str, line_id: int, *, actor: Actor = SYSTEM
) -> int:
    """Take a line off a device; returns the slot it occupied (now written disabled)."""
    device = await get_device(session, mac, lock=True)
    assignment = await session.scalar(
        select(LineSlot).where(LineSlot.device_id == device.id, LineSlot.line_id == line_id)
    )
    if assignment is None:
        raise NotFound(f"line {line_id} is not on device {device.mac}")
    slot = assignment.slot
    await session.delete(assignment)
    await session.flush()
    await devices_changed(session, Device.id == device.id, "unassign")
    await record(
        session, actor, "device.unassign", "device", device.mac,
        account_id=device.account_id, device_mac=device.mac,
        before={"line_id": line_id, "slot": slot},
    )  # fmt: skip
    return slot


async def count_devices(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Device)) or 0)
