"""The audit trail: every change, by whom, when, from which IP, before and after.

Domain operations record their own events, so no caller (API, CLI, pages) can forget. Views
passed as `before`/`after` are built by the callers of `record` without secrets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    name: str
    ip: str | None = None


SYSTEM = Actor("system")


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object,
    *,
    account_id: int | None = None,
    device_mac: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor=actor.name[:120],
            ip=actor.ip,
            action=action,
            object_type=object_type,
            object_id=str(object_id)[:64],
            account_id=account_id,
            device_mac=device_mac,
            before=_dump(before),
            after=_dump(after),
        )
    )
    await session.flush()


def event(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object,
    *,
    account_id: int | None = None,
    device_mac: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One event of `record_many`: the row `record` would store."""
    return {
        "actor": actor.name[:120],
        "ip": actor.ip,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id)[:64],
        "account_id": account_id,
        "device_mac": device_mac,
        "before": _dump(before),
        "after": _dump(after),
    }


# Events per INSERT statement: well under every driver's limit of parameters (9 a row).
CHUNK = 2000


async def record_many(session: AsyncSession, events: list[dict[str, Any]]) -> None:
    """Record many events (built by `event`) in a few statements, instead of a flush each:
    a bulk import writes tens of thousands."""
    for start in range(0, len(events), CHUNK):
        await session.execute(insert(AuditEvent), events[start : start + CHUNK])


def _dump(view: dict[str, Any] | None) -> str | None:
    return None if view is None else json.dumps(view, sort_keys=True, default=str)


async def list_events(
    session: AsyncSession,
    *,
    account_id: int | None = None,
    device_mac: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    if account_id is not None:
        query = query.where(AuditEvent.account_id == account_id)
    if device_mac is not None:
        query = query.where(AuditEvent.device_mac == device_mac)
    return list((await session.scalars(query)).all())


def event_view(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "ip": event.ip,
        "action": event.action,
        "object": {"type": event.object_type, "id": event.object_id},
        "account_id": event.account_id,
        "device": event.device_mac,
        "before": json.loads(event.before) if event.before else None,
        "after": json.loads(event.after) if event.after else None,
    }
