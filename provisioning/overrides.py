"""Setting overrides per model, account and device: domain operations shared by the CLI and the
API. Each change bumps the config revision of every device it affects."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.accounts import get_account
from provisioning.audit import SYSTEM, Actor, record
from provisioning.db.models import Device, SettingOverride
from provisioning.devices.catalog import Catalog
from provisioning.devices.inventory import get_device, parse_mac
from provisioning.errors import InvalidInput, NotFound, UnknownModel
from provisioning.numbers import parse_id
from provisioning.push.changes import devices_changed
from provisioning.render.overrides import valid_key, valid_value

SCOPES = ("model", "account", "device")


async def _resolve(
    session: AsyncSession, catalog: Catalog, scope: str, target: str
) -> tuple[str, set[str], object]:
    """Normalised target, the formats its devices use, and the filter selecting them."""
    if scope == "model":
        model = catalog.model(target)
        if model is None:
            raise UnknownModel(f"unknown model {target[:64]!r}", field="target")
        return model.id, set(catalog.family_of(model.id).formats), Device.model_id == model.id
    if scope == "account":
        account_id = parse_id(target)
        if account_id is None:
            raise InvalidInput("target: an account id", field="target")
        account = await get_account(session, account_id)
        return str(account.id), {"keyvalue", "xml"}, Device.account_id == account.id
    if scope == "device":
        device = await get_device(session, target)
        formats = set(catalog.family_of(device.model_id).formats)
        return device.mac, formats, Device.id == device.id
    raise InvalidInput(f"scope: one of {', '.join(SCOPES)}", field="scope")


async def set_override(
    session: AsyncSession,
    catalog: Catalog,
    scope: str,
    target: str,
    key: str,
    value: str,
    *,
    actor: Actor = SYSTEM,
) -> SettingOverride:
    target, formats, devices = await _resolve(session, catalog, scope, target)
    if not any(valid_key(fmt, key) for fmt in formats):
        raise InvalidInput(
            "key: a setting name (key = value formats) or an XML path such as "
            "section[@name='sip']/entry[@name='x'] or path@attribute",
            field="key",
        )
    if not valid_value(value):
        raise InvalidInput("value: at most 2000 characters, no control characters", field="value")
    row = await _find(session, scope, target, key)
    before = None if row is None else _audited(key, row.value)
    if row is None:
        row = SettingOverride(scope=scope, target=target, key=key, value=value)
        session.add(row)
    row.value = value
    await session.flush()
    await devices_changed(session, devices, "override")
    await _record(session, actor, "override.set", scope, target, key, before, value)
    return row


async def unset_override(
    session: AsyncSession,
    catalog: Catalog,
    scope: str,
    target: str,
    key: str,
    *,
    actor: Actor = SYSTEM,
) -> None:
    target, _, devices = await _resolve(session, catalog, scope, target)
    row = await _find(session, scope, target, key)
    if row is None:
        raise NotFound(f"no override {key[:60]!r} on {scope} {target}")
    value = row.value
    await session.delete(row)
    await session.flush()
    await devices_changed(session, devices, "override")
    await _record(session, actor, "override.unset", scope, target, key, value, None)


async def _find(session: AsyncSession, scope: str, target: str, key: str) -> SettingOverride | None:
    return await session.scalar(
        select(SettingOverride).where(
            SettingOverride.scope == scope,
            SettingOverride.target == target,
            SettingOverride.key == key,
        )
    )


_SECRET_KEY = re.compile(r"(?i)pass|secret|token|key|pwd|pin")


def _audited(key: str, value: str | None) -> dict[str, str] | None:
    # An override may set a credential of the phone (a web UI password): never in the trail.
    if value is None:
        return None
    return {"key": key, "value": "***" if _SECRET_KEY.search(key) else value}


async def _record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    scope: str,
    target: str,
    key: str,
    before: str | dict[str, str] | None,
    after: str | None,
) -> None:
    await record(
        session, actor, action, "override", f"{scope}:{target}",
        account_id=int(target) if scope == "account" else None,
        device_mac=target if scope == "device" else None,
        before=before if isinstance(before, dict) else _audited(key, before),
        after=_audited(key, after),
    )  # fmt: skip


async def list_overrides(
    session: AsyncSession, scope: str | None = None, target: str | None = None
) -> list[SettingOverride]:
    query = select(SettingOverride).order_by(
        SettingOverride.scope, SettingOverride.target, SettingOverride.key
    )
    if scope is not None:
        query = query.where(SettingOverride.scope == scope)
    if target is not None:
        if scope == "device":
            target = parse_mac(target)
        query = query.where(SettingOverride.target == target)
    return list((await session.scalars(query)).all())


async def overrides_for(session: AsyncSession, device: Device) -> dict[str, str]:
    """The merged overrides of one device: model, then account, then device (last wins)."""
    scopes = [and_(SettingOverride.scope == "model", SettingOverride.target == device.model_id)]
    if device.account_id is not None:
        scopes.append(
            and_(
                SettingOverride.scope == "account",
                SettingOverride.target == str(device.account_id),
            )
        )
    scopes.append(and_(SettingOverride.scope == "device", SettingOverride.target == device.mac))
    rows = (
        await session.scalars(
            select(SettingOverride).where(or_(*scopes)).order_by(SettingOverride.id)
        )
    ).all()
    return merge_overrides((row.scope, row.key, row.value) for row in rows)


def merge_overrides(rows: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """(scope, key, value) in the order they were set -> one mapping: model, then account, then
    device (last wins). The fetch path's driver-level read uses it too (`phones.lookup`)."""
    ordered = list(rows)
    merged: dict[str, str] = {}
    for scope in SCOPES:
        merged.update((key, value) for s, key, value in ordered if s == scope)
    return merged
