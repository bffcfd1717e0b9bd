"""What a customer may reach: objects of their own account. Anything else answers exactly as a
missing object does (the same NotFound), so an id in the URL teaches nothing."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import numbers
from provisioning.accounts import get_line
from provisioning.db.models import Device, Line
from provisioning.devices import inventory
from provisioning.errors import InvalidInput, NotFound
from provisioning.web.users import Who


def parse_id(text: str, what: str) -> int:
    value = numbers.parse_id(text)
    if value is None:
        raise NotFound(f"{what} not found")
    return value


async def own_line(session: AsyncSession, person: Who, text: str) -> Line:
    line_id = parse_id(text, "line")
    line = await get_line(session, line_id)
    if line.account_id != person.account_id:
        raise NotFound(f"line {line_id} not found")
    return line


async def own_device(session: AsyncSession, person: Who, mac: str, *, lock: bool = False) -> Device:
    try:
        device = await inventory.get_device(session, mac, lock=lock)
    except (NotFound, InvalidInput):
        raise NotFound("device not found") from None
    if device.account_id != person.account_id:
        raise NotFound("device not found")
    return device
