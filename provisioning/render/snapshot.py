"""Loading what rendering needs about one device: one short read transaction, secrets decrypted
only here."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from provisioning.crypto import Cipher
from provisioning.db.models import Account, Device, LineSlot
from provisioning.overrides import overrides_for
from provisioning.render.context import DeviceData, LineData
from provisioning.security.credentials import current_digest
from provisioning.settings import Settings


async def find_device(
    session: AsyncSession, *, mac: str | None = None, token_hash: str | None = None
) -> Device | None:
    """The device with its account, slots and lines (what rendering needs)."""
    query = select(Device).options(
        selectinload(Device.account),
        selectinload(Device.slots).selectinload(LineSlot.line),
    )
    if token_hash is not None:
        query = query.where(Device.token_hash == token_hash)
    elif mac is not None:
        query = query.where(Device.mac == mac)
    else:
        return None
    # The device row (and its revision) is read before its slots: the lines rendered are at least
    # as new as the revision recorded, never older.
    return (await session.scalars(query)).one_or_none()


async def load_device_data(
    session: AsyncSession, device: Device, cipher: Cipher, settings: Settings
) -> DeviceData:
    data = device_data(device, cipher, settings, await overrides_for(session, device))
    credential = await current_digest(session, cipher, device.id)
    if credential is None:
        return data
    return replace(data, http_username=credential[0], http_password=credential[1])


class LineFields(Protocol):
    """A line's stored columns: an ORM `Line` or a row read by `phones.lookup`."""

    @property
    def number(self) -> str: ...

    @property
    def sip_username(self) -> str: ...

    @property
    def auth_username(self) -> str | None: ...

    @property
    def password_enc(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def registrar_host(self) -> str: ...

    @property
    def registrar_port(self) -> int: ...

    @property
    def transport(self) -> str: ...


def line_data(line: LineFields, cipher: Cipher) -> LineData:
    return LineData(
        number=line.number,
        user=line.sip_username,
        auth_user=line.auth_username or line.sip_username,
        password=cipher.decrypt(line.password_enc),
        display_name=line.display_name,
        registrar_host=line.registrar_host,
        registrar_port=line.registrar_port,
        transport=line.transport,
    )


def device_data(
    device: Device,
    cipher: Cipher,
    settings: Settings,
    overrides: dict[str, str] | None = None,
) -> DeviceData:
    account: Account | None = device.account
    return DeviceData(
        id=device.id,
        mac=device.mac,
        model_id=device.model_id,
        revision=device.config_revision,
        token=cipher.decrypt(device.token_enc),
        account_name=account.name if account else "",
        timezone=account.timezone if account else settings.default_timezone,
        language=account.language if account else settings.default_language,
        lines={slot.slot: line_data(slot.line, cipher) for slot in device.slots},
        overrides=overrides or {},
    )
