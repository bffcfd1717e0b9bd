"""Phones that ask for files but are not registered, kept so an operator can claim them.

Only requests that look like a real phone are kept: the User-Agent names a known family whose
file is asked for, and the MACs the request states (file name, User-Agent) agree. The table is
capped, so a scanner guessing MACs cannot fill the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.models import UnknownDevice
from provisioning.devices.identify import FileMatch, UserAgentInfo

MAX_UNKNOWN = 10_000


@dataclass(frozen=True)
class UnknownFacts:
    mac: str
    family: str
    ua_model: str | None
    seen_at: datetime
    ip: str
    user_agent: str
    file_name: str


def plausible_phone(
    matches: list[FileMatch], ua: UserAgentInfo | None, path_mac: str | None
) -> tuple[str, str, str | None] | None:
    """(mac, family, model named by the UA) when the request looks like a real phone. Scanner
    defence weighs such a request asking without a credential once per MAC and address
    (`security.bans.unseen_phone`): never make this depend on whether the MAC is registered."""
    if ua is None or not any(m.family is ua.family for m in matches):
        return None
    if path_mac and ua.mac and path_mac != ua.mac:
        return None
    mac = path_mac or ua.mac
    if mac is None:
        return None
    return mac, ua.family.name, ua.ua_model[:64] if ua.ua_model else None


async def record_unknown(session: AsyncSession, facts: UnknownFacts) -> None:
    known = await session.get(UnknownDevice, facts.mac)
    if known is None:
        count = await session.scalar(select(func.count()).select_from(UnknownDevice))
        if (count or 0) >= MAX_UNKNOWN:
            return
    values = {
        "mac": facts.mac,
        "family": facts.family,
        "ua_model": facts.ua_model,
        "first_seen_at": facts.seen_at,
        "last_seen_at": facts.seen_at,
        "last_ip": facts.ip,
        "last_user_agent": facts.user_agent,
        "last_file": facts.file_name,
        "requests": 1,
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(UnknownDevice).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[UnknownDevice.mac],
            set_={
                "family": statement.excluded.family,
                "ua_model": statement.excluded.ua_model,
                "last_seen_at": statement.excluded.last_seen_at,
                "last_ip": statement.excluded.last_ip,
                "last_user_agent": statement.excluded.last_user_agent,
                "last_file": statement.excluded.last_file,
                "requests": UnknownDevice.requests + 1,
            },
        )
    )


async def list_unknown(session: AsyncSession, limit: int = 1000) -> list[UnknownDevice]:
    query = select(UnknownDevice).order_by(UnknownDevice.last_seen_at.desc()).limit(limit)
    return list((await session.scalars(query)).all())
