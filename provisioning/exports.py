"""Export: accounts, SIP lines, phones and their slots as the CSV file `provisioning import`
reads back (the format: `provisioning.imports`), for a backup or a move to another server.

Every value is written out, defaults included (registrar with its port, transport), so the file
means the same on a server with other defaults. A phone's rows follow each other, its lines in
slot order, then the account's lines on no phone; an account with neither has one row of its
own; phones in stock (no account) come last, when the whole server is exported.

SIP passwords are secrets: without `--with-secrets` (`with_secrets`) the password column is
empty (importing such a file keeps the passwords of lines that exist and refuses new lines).
With it they are decrypted with the server's key and written in clear, the file is created
readable by its owner only, and the audit trail records who did it.
Device URL tokens are never exported: phones moved to another server get new URLs there.
"""

from __future__ import annotations

from typing import TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.accounts import get_account
from provisioning.crypto import Cipher
from provisioning.db.models import Account, Device, Line, LineSlot
from provisioning.imports import write_rows
from provisioning.sip.address import SipAddress


def _account_cells(account: Account) -> dict[str, str]:
    return {
        "account_name": account.name,
        "account_street": account.street,
        "account_postcode": account.postcode,
        "account_town": account.town,
        "account_timezone": account.timezone,
        "account_language": account.language,
    }


def _line_cells(line: Line, cipher: Cipher, with_secrets: bool) -> dict[str, str]:
    return {
        "number": line.number,
        "sip_username": line.sip_username,
        "auth_username": line.auth_username or "",
        "password": cipher.decrypt(line.password_enc) if with_secrets else "",
        "display_name": line.display_name,
        # As the registrar column is read back: an IPv6 address in brackets before its port.
        "registrar": str(SipAddress(line.registrar_host, line.registrar_port)),
        "transport": line.transport,
    }


def _device_cells(device: Device) -> dict[str, str]:
    return {"mac": device.mac, "model": device.model_id}


async def export_rows(
    session: AsyncSession,
    cipher: Cipher,
    *,
    with_secrets: bool = False,
    account_id: int | None = None,
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The rows of the export (dicts by column) and counts of what they hold."""
    account_query = select(Account).order_by(Account.id)
    line_query = select(Line).order_by(Line.id)
    slot_query = select(LineSlot.line_id, LineSlot.device_id, LineSlot.slot)
    device_query = select(Device).order_by(Device.id)
    if account_id is not None:
        await get_account(session, account_id)  # NotFound
        account_query = account_query.where(Account.id == account_id)
        line_query = line_query.where(Line.account_id == account_id)
        slot_query = slot_query.where(LineSlot.account_id == account_id)
        device_query = device_query.where(Device.account_id == account_id)
    account_rows = (await session.scalars(account_query)).all()
    lines = {line.id: line for line in (await session.scalars(line_query)).all()}
    devices = (await session.scalars(device_query)).all()
    on_device: dict[int, list[tuple[int, int]]] = {}
    placed: set[int] = set()
    for line_id, device_id, slot in (await session.execute(slot_query)).all():
        on_device.setdefault(device_id, []).append((slot, line_id))
        placed.add(line_id)
    devices_of: dict[int | None, list[Device]] = {}
    for device in devices:
        devices_of.setdefault(device.account_id, []).append(device)
    loose: dict[int, list[Line]] = {}
    for line in lines.values():
        if line.id not in placed:
            loose.setdefault(line.account_id, []).append(line)

    rows: list[dict[str, str]] = []
    for account in account_rows:
        cells = _account_cells(account)
        before = len(rows)
        for device in devices_of.get(account.id, []):
            held = sorted(on_device.get(device.id, []))
            if not held:
                rows.append({**cells, **_device_cells(device)})
            for slot, line_id in held:
                line_cells = _line_cells(lines[line_id], cipher, with_secrets)
                device_cells = {**_device_cells(device), "slot": str(slot)}
                rows.append({**cells, **line_cells, **device_cells})
        for line in loose.get(account.id, []):
            rows.append({**cells, **_line_cells(line, cipher, with_secrets)})
        if len(rows) == before:
            rows.append(cells)
    if account_id is None:
        rows.extend(_device_cells(device) for device in devices_of.get(None, []))
    counts = {
        "rows": len(rows),
        "accounts": len(account_rows),
        "lines": len(lines),
        "devices": len(devices),
    }
    return rows, counts


async def export_csv(
    session: AsyncSession,
    cipher: Cipher,
    handle: TextIO,
    *,
    with_secrets: bool = False,
    account_id: int | None = None,
    delimiter: str = ",",
    actor: audit.Actor = audit.SYSTEM,
) -> dict[str, int]:
    """Write the export to `handle` (opened with newline=""); returns the counts. With
    `with_secrets` the audit trail records the export (in the caller's transaction)."""
    rows, counts = await export_rows(
        session, cipher, with_secrets=with_secrets, account_id=account_id
    )
    write_rows(handle, rows, delimiter)
    if with_secrets:
        await audit.record(
            session, actor, "export.secrets", "export", "csv", account_id=account_id,
            after={"lines": counts["lines"], "accounts": counts["accounts"]},
        )  # fmt: skip
    return counts
