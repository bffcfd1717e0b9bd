"""Per-account policy (which proofs, first-contact binding, first-contact window) and each
device's binding state: the domain operations, and what the fetch path reads of them.

First-contact binding: when the policy says `address` or `network`, a device is bound to where
its first successful fetch came from; a later fetch from elsewhere is refused (the same 404) and
reported (the device's `refused_*` fields, a log line) until an operator unlocks it. The
first-contact window: a device never seen within N days of its window's start (its creation, or
its last unlock) must be re-authorised (unlocked) before it is served.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import audit
from provisioning.accounts import get_account
from provisioning.db.models import AccountPolicy, Device, DeviceBinding, utcnow
from provisioning.devices.inventory import get_device
from provisioning.errors import InvalidInput, NotFound
from provisioning.proofs import Policy, PolicyError, parse_proofs
from provisioning.security.sources import Source
from provisioning.settings import Settings

log = logging.getLogger("provisioning.security")

BINDINGS = ("off", "address", "network")


def default_policy(settings: Settings) -> Policy:
    return Policy(
        proofs=parse_proofs(settings.auth_proofs),
        binding=settings.first_contact_binding,
        first_contact_days=settings.first_contact_days or None,
    )


class PolicyCache:
    """This instance's copy of the account policies (a small table: accounts with a policy of
    their own), so the fetch path needs no query for them; re-read with the bans every few
    seconds, and changed at once by the operations this instance runs."""

    def __init__(self, default: Policy) -> None:
        self.default = default
        self._by_account: dict[int, Policy] = {}

    def policy_for(self, account_id: int | None) -> Policy:
        if account_id is None:
            return self.default
        return self._by_account.get(account_id, self.default)

    def put(self, account_id: int, row: AccountPolicy | None) -> None:
        if row is None:
            self._by_account.pop(account_id, None)
        else:
            self._by_account[account_id] = _policy(row.proofs, row.binding, row.first_contact_days)

    def replace(self, rows: Iterable[tuple[int, str, str, int | None]]) -> None:
        self._by_account = {
            account_id: _policy(proofs, binding, days) for account_id, proofs, binding, days in rows
        }


def _policy(proofs: str, binding: str, days: int | None) -> Policy:
    return Policy(parse_proofs(proofs), binding, days)


async def all_policies(session: AsyncSession) -> list[tuple[int, str, str, int | None]]:
    rows = await session.execute(
        select(
            AccountPolicy.account_id,
            AccountPolicy.proofs,
            AccountPolicy.binding,
            AccountPolicy.first_contact_days,
        )
    )
    return [(a, p, b, d) for a, p, b, d in rows.all()]


async def binding_state(
    session: AsyncSession, device_id: int
) -> tuple[str | None, datetime | None]:
    """(where the device is bound, start of its first-contact window): read only for devices
    whose policy binds them or limits their first contact."""
    row = (
        await session.execute(
            select(DeviceBinding.bound_to, DeviceBinding.window_from).where(
                DeviceBinding.device_id == device_id
            )
        )
    ).first()
    return (row[0], row[1]) if row else (None, None)


def place_of(source: Source, binding: str) -> str:
    return source.network if binding == "network" else source.address


def bound_elsewhere(bound_to: str | None, source: Source | None) -> bool:
    if bound_to is None:
        return False
    if source is None:
        return True
    try:
        return ipaddress.ip_address(source.address) not in ipaddress.ip_network(bound_to)
    except ValueError:
        return True


class FirstContact(Protocol):
    """What the first-contact window needs to know of a device (the phone path's row)."""

    @property
    def seen(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...


def window_closed(
    policy: Policy, device: FirstContact, window_from: datetime | None, now: datetime
) -> bool:
    if policy.first_contact_days is None or device.seen:
        return False
    start = window_from or device.created_at
    return now > start + timedelta(days=policy.first_contact_days)


# -- writes of the fetch path (write-behind, own short transaction) ---------------------------


async def bind_first_contact(session: AsyncSession, device_id: int, place: str) -> None:
    """Bind an unbound device to `place`; a device bound meanwhile (another instance) keeps its
    binding."""
    now = utcnow()
    binding = await session.get(DeviceBinding, device_id, with_for_update=True)
    if binding is None:
        session.add(DeviceBinding(device_id=device_id, bound_to=place, bound_at=now, refusals=0))
    elif binding.bound_to is None:
        binding.bound_to, binding.bound_at = place, now
    await session.flush()


async def record_refusal(session: AsyncSession, device_id: int, ip: str, reason: str) -> None:
    now = utcnow()
    binding = await session.get(DeviceBinding, device_id, with_for_update=True)
    if binding is None:
        binding = DeviceBinding(device_id=device_id, refusals=0)
        session.add(binding)
    binding.refused_at, binding.refused_from, binding.refused_reason = now, ip, reason
    binding.refusals = (binding.refusals or 0) + 1
    await session.flush()


# -- operator operations -----------------------------------------------------------------------


def _check_policy(proofs: str, binding: str, days: int | None) -> str:
    try:
        parsed = parse_proofs(proofs)
    except PolicyError as exc:
        raise InvalidInput(f"proofs: {exc}", field="proofs") from None
    if binding not in BINDINGS:
        raise InvalidInput("binding: off, address or network", field="binding")
    if days is not None and not 1 <= days <= 3650:
        raise InvalidInput("first_contact_days: 1 to 3650", field="first_contact_days")
    return str(parsed)


async def set_policy(
    session: AsyncSession,
    account_id: int,
    proofs: str,
    *,
    binding: str = "off",
    first_contact_days: int | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> AccountPolicy:
    canonical = _check_policy(proofs, binding, first_contact_days)
    await get_account(session, account_id)
    row = await session.get(AccountPolicy, account_id, with_for_update=True)
    before = policy_view(row) if row else None
    if row is None:
        row = AccountPolicy(account_id=account_id)
        session.add(row)
    row.proofs, row.binding, row.first_contact_days = canonical, binding, first_contact_days
    row.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session, actor, "account.policy.set", "account", account_id,
        account_id=account_id, before=before, after=policy_view(row),
    )  # fmt: skip
    return row


async def clear_policy(
    session: AsyncSession, account_id: int, *, actor: audit.Actor = audit.SYSTEM
) -> None:
    """Back to the global default."""
    await get_account(session, account_id)
    row = await session.get(AccountPolicy, account_id)
    if row is None:
        raise NotFound(f"account {account_id} has no policy of its own")
    before = policy_view(row)
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, actor, "account.policy.clear", "account", account_id,
        account_id=account_id, before=before,
    )  # fmt: skip


def default_policy_view(settings: Settings, account_id: int | None) -> dict[str, Any]:
    policy = default_policy(settings)
    return {
        "account_id": account_id,
        "proofs": str(policy.proofs),
        "binding": policy.binding,
        "first_contact_days": policy.first_contact_days,
        "default": True,
    }


async def account_policy(
    session: AsyncSession, settings: Settings, account_id: int
) -> dict[str, Any]:
    await get_account(session, account_id)
    row = await session.get(AccountPolicy, account_id)
    if row is None:
        return default_policy_view(settings, account_id)
    return {"account_id": account_id, **policy_view(row), "default": False}


async def device_policy(
    session: AsyncSession, settings: Settings, device: Device
) -> dict[str, Any]:
    if device.account_id is None:
        return default_policy_view(settings, None)
    return await account_policy(session, settings, device.account_id)


def policy_view(row: AccountPolicy) -> dict[str, Any]:
    return {
        "proofs": row.proofs,
        "binding": row.binding,
        "first_contact_days": row.first_contact_days,
    }


async def restart_first_contact(
    session: AsyncSession, device_id: int, now: datetime
) -> DeviceBinding:
    """Forget where the device was bound and start its first-contact window now: when an
    operator unlocks it, and when it ships (a re-shipped phone binds anew where it lands)."""
    binding = await session.get(DeviceBinding, device_id, with_for_update=True)
    if binding is None:
        binding = DeviceBinding(device_id=device_id, refusals=0)
        session.add(binding)
    binding.bound_to = binding.bound_at = None
    binding.refused_at = binding.refused_from = binding.refused_reason = None
    binding.refusals = 0
    binding.window_from = now
    await session.flush()
    return binding


async def unlock_device(
    session: AsyncSession, mac: str, *, actor: audit.Actor = audit.SYSTEM
) -> Device:
    """Forget where the device was bound (its next successful fetch binds it again) and restart
    its first-contact window: the operator vouches for the device's new place."""
    device = await get_device(session, mac, lock=True)
    before = binding_view(await session.get(DeviceBinding, device.id))
    binding = await restart_first_contact(session, device.id, utcnow())
    await audit.record(
        session, actor, "device.unlock", "device", device.mac,
        account_id=device.account_id, device_mac=device.mac,
        before=before, after=binding_view(binding),
    )  # fmt: skip
    return device


def binding_view(binding: DeviceBinding | None) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    if binding is None:
        return {
            "bound_to": None,
            "bound_at": None,
            "window_from": None,
            "refused_at": None,
            "refused_from": None,
            "refused_reason": None,
            "refusals": 0,
        }
    return {
        "bound_to": binding.bound_to,
        "bound_at": iso(binding.bound_at),
        "window_from": iso(binding.window_from),
        "refused_at": iso(binding.refused_at),
        "refused_from": binding.refused_from,
        "refused_reason": binding.refused_reason,
        "refusals": binding.refusals,
    }


async def device_binding(session: AsyncSession, device_id: int) -> dict[str, Any]:
    return binding_view(await session.get(DeviceBinding, device_id))
