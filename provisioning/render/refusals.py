"""Refusing, before anything is written, a change a device's files could not carry.

A template refuses a value its vendor's format cannot hold (`refuse(...)`: a `"` in a Gigaset
N510 credential, a `#` in an Aastra one) and the phone is then answered 503 until the line
changes. The domain functions that put a line on a device or change a line (shared by the API,
the CLI and the pages) call `FilesCheck.refuse` first, so the operator is told at that moment,
with the slot and the reason, and nothing changes.

Only a refusal of the values refuses the change. A stored secret the server's keys cannot
decrypt (PROVISIONING_SECRET_KEY without the key it was written with) is the server's fault,
not the change's: the phone's fetch fails on it with or without the change (logged, 503), and
refusing would also refuse the repair (a new password for the line whose old one is lost). The
check then logs that it could not be made and lets the change through; render.files.refusal_of
does the same for a template error the change does not cause."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from provisioning.crypto import Cipher, SecretKeyError
from provisioning.db.models import Device, LineSlot
from provisioning.devices.catalog import Catalog
from provisioning.errors import FilesRefused
from provisioning.render.context import LineData
from provisioning.render.environment import Renderer
from provisioning.render.files import refusal_of
from provisioning.render.snapshot import LineFields, line_data, load_device_data
from provisioning.settings import Settings

log = logging.getLogger(__name__)


class _Unreadable(str):
    """The password of a line the server's keys cannot decrypt: a value no format is asked to
    carry, since the check is not made with it (see `FilesCheck.refusal`)."""


@dataclass(frozen=True)
class FilesCheck:
    """What rendering a device's files takes: the API and the pages build it from their
    services, the CLI from its settings (`for_settings`)."""

    renderer: Renderer
    settings: Settings
    cipher: Cipher

    @classmethod
    def for_settings(cls, catalog: Catalog, settings: Settings, cipher: Cipher) -> FilesCheck:
        return cls(Renderer(catalog, settings.templates_override_dir), settings, cipher)

    def line(self, line: LineFields) -> LineData:
        """A stored line as rendering sees it (its password decrypted). A password that
        cannot be decrypted is marked, not raised: a caller that replaces it (a new password)
        is checked as usual, one that keeps it is let through."""
        try:
            return line_data(line, self.cipher)
        except SecretKeyError:
            return LineData(
                number=line.number,
                user=line.sip_username,
                auth_user=line.auth_username or line.sip_username,
                password=_Unreadable(),
                display_name=line.display_name,
                registrar_host=line.registrar_host,
                registrar_port=line.registrar_port,
                transport=line.transport,
            )

    async def refusal(
        self, session: AsyncSession, device_id: int, lines: Mapping[int, LineData]
    ) -> str | None:
        """Why the device's files could not be written once `lines` (slot -> line) replace or
        join its lines, or None. Reads the device as the database has it now (pending changes
        flushed first), writes nothing."""
        device = await _device_with_lines(session, device_id)
        try:
            if any(isinstance(line.password, _Unreadable) for line in lines.values()):
                raise SecretKeyError("the line's stored password cannot be decrypted")
            data = await load_device_data(session, device, self.cipher, self.settings)
        except SecretKeyError as exc:
            # The module's docstring says why this lets the change through.
            log.error("files check of device %s not made: %s", device.mac, exc)
            return None
        changed = replace(data, lines={**data.lines, **lines})
        return refusal_of(self.renderer, self.settings, changed, before=data)

    async def refuse(
        self,
        session: AsyncSession,
        device_id: int,
        lines: Mapping[int, LineData],
        change: str,
    ) -> None:
        """Raise FilesRefused (a 409, the CLI's one-line error) naming `change` and why."""
        why = await self.refusal(session, device_id, lines)
        if why is not None:
            raise FilesRefused(f"{change}: the device's files would be refused ({why})")


async def _device_with_lines(session: AsyncSession, device_id: int) -> Device:
    # populate_existing: the session may hold the device with slots loaded before an earlier
    # change of the same transaction; the rows are what the files would be rendered from.
    query = (
        select(Device)
        .where(Device.id == device_id)
        .options(
            selectinload(Device.account),
            selectinload(Device.slots).selectinload(LineSlot.line),
        )
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(query)).one()
