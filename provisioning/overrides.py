"""Setting overrides per model, account and device: domain operations shared by the CLI and the
API. Each change bumps the config revision of every device it affects."""

from __future__ import annotations

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.accounts import get_account
from provisioning.db.models import Device, SettingOverride
from provisioning.devices.catalog import Catalog
from provisioning.devices.inventory import get_device, parse_mac
from provisioning.errors import InvalidInput, NotFound, UnknownModel
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
        return model.id, {catalog.family_of(model.id).format}, Device.model_id == model.id
    if scope == "account":
        if not target.isdigit():
            raise InvalidInput("target: an account id", field="target")
        account = await get_account(session, int(target))
        return str(account.id), {"keyvalue", "xml"}, Device.account_id == account.id
    if scope == "device":
        device = await get_device(session, target)
        return device.mac, {catalog.family_of(device.model_id).format}, Device.id == device.id
    raise InvalidInput(f"scope: one of {', '.join(SCOPES)}", field="scope")


async def set_override(
    session: AsyncSession, catalog: Catalog, scope: str, target: str, key: str, value: str
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
    row = await session.scalar(
        select(SettingOverride).where(
            SettingOverride.scope == scope,
            SettingOverride.target == target,
            SettingOverride.key == key,
        )
    )
    if row is None:
        row = SettingOverride(scope=scope, target=target, key=key, value=value)
        session.add(row)
    row.value = value
    await session.flush()
    await _bump(session, devices)
    return row


async def unset_override(
    session: AsyncSession, catalog: Catalog, scope: str, target: str, key: str
) -> None:
    target, _, devices = await _resolve(session, catalog, scope, target)
    result = await session.execute(
        delete(SettingOverride).where(
            SettingOverride.scope == scope,
            SettingOverride.target == target,
            SettingOverride.key == key,
        )
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"no override {key[:60]!r} on {scope} {target}")
    await _bump(session, devices)


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
    rows = (await session.scalars(select(SettingOverride).where(or_(*scopes)))).all()
    merged: dict[str, str] = {}
    for scope in SCOPES:
        for row in sorted((r for r in rows if r.scope == scope), key=lambda r: r.id):
            merged[row.key] = row.value
    return merged


async def _bump(session: AsyncSession, devices: object) -> None:
    await session.execute(
        update(Device)
        .where(devices)  # type: ignore[arg-type]
        .values(config_revision=Device.config_revision + 1)
        .execution_options(synchronize_session=False)
    )
