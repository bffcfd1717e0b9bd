"""Quoting and placing an order for a line: a new phone for a line without one, or a
replacement of the phone carrying it (same flow, kind `replacement`).

A quote is a computation and stores nothing; an order is stored only once validated, with the
contract accepted, its prices frozen and its ship-by time. An Idempotency-Key makes a double
click (or a retry after a lost answer) give back the first order instead of a second one."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.accounts import get_account, get_line
from provisioning.audit import SYSTEM, Actor, record
from provisioning.db.models import ORDER_KINDS, ORDER_STATES, Device, LineSlot, Order, utcnow
from provisioning.devices.catalog import Catalog
from provisioning.devices.catalog import Model as CatalogModel
from provisioning.errors import (
    ContractNotAccepted,
    IdempotencyKeyReused,
    InvalidAddress,
    InvalidInput,
    LineHasNoPhone,
    LineHasPhone,
    NotFound,
    NotOrderable,
    OrderNotOpen,
    OrderPending,
    TooFewSlots,
    UnknownModel,
    UnknownRelayPoint,
)
from provisioning.orders.addresses import DeliveryAddress, validate_address
from provisioning.orders.business_hours import ship_by
from provisioning.orders.carriers import Carrier, Carriers
from provisioning.orders.contract import current_contract
from provisioning.orders.money import Prices, basis_points
from provisioning.orders.relay_points import RelayPoint
from provisioning.orders.views import order_view
from provisioning.settings import Settings

# What an Idempotency-Key may hold (RFC 9110 token characters and a few more, no spaces).
_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_RELAY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class OrderRequest:
    """What the customer chose. `address` is a raw mapping, checked when quoting."""

    line_id: int
    model_id: str
    carrier: str
    kind: str = "new"
    address: dict[str, Any] | None = None
    relay_point_id: str | None = None

    def fingerprint(self, accept_contract: bool) -> str:
        data = {**self.__dict__, "accept_contract": accept_contract}
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=True, default=str)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Quote:
    kind: str
    account_id: int
    line_id: int
    model: CatalogModel
    replaced: Device | None
    lines_to_move: int
    carrier: Carrier
    delivery: DeliveryAddress
    relay_point: RelayPoint | None
    prices: Prices
    ship_by: datetime


@dataclass(frozen=True)
class Offer:
    """The models that can be ordered for a line, and why the list is what it is."""

    kind: str
    line_id: int
    replaced_mac: str | None
    lines_on_phone: int
    models: list[CatalogModel]


def orderable(catalog: Catalog) -> list[CatalogModel]:
    models = [m for m in catalog.models.values() if m.orderable and m.price_cents is not None]
    return sorted(models, key=lambda m: (m.price_cents or 0, m.id))


async def _phone_of_line(
    session: AsyncSession, line_id: int, *, lock: bool = False
) -> tuple[Device | None, int]:
    """The device carrying the line (if any) and how many lines that device carries."""
    device_id = await session.scalar(select(LineSlot.device_id).where(LineSlot.line_id == line_id))
    if device_id is None:
        return None, 0
    query = select(Device).where(Device.id == device_id)
    if lock:
        # Serialises two replacement orders for the same phone (PostgreSQL; SQLite writers
        # are serialised by BEGIN IMMEDIATE).
        query = query.with_for_update()
    device = (await session.scalars(query)).one()
    count = await session.scalar(
        select(func.count()).select_from(LineSlot).where(LineSlot.device_id == device_id)
    )
    return device, int(count or 0)


async def offer(session: AsyncSession, catalog: Catalog, line_id: int) -> Offer:
    """The catalog for a line: every orderable model for a line without a phone; for a line
    with one, the models with at least as many slots as lines on that phone."""
    await get_line(session, line_id)
    device, count = await _phone_of_line(session, line_id)
    models = orderable(catalog)
    if device is None:
        return Offer("new", line_id, None, 0, models)
    fitting = [m for m in models if m.slots >= count]
    return Offer("replacement", line_id, device.mac, count, fitting)


async def quote_order(
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    request: OrderRequest,
    *,
    now: datetime | None = None,
    lock: bool = False,
) -> Quote:
    if request.kind not in ORDER_KINDS:
        raise InvalidInput(f"kind: one of {', '.join(ORDER_KINDS)}", field="kind")
    line = await get_line(session, request.line_id)
    account = await get_account(session, line.account_id)
    device, count = await _phone_of_line(session, line.id, lock=lock)
    if request.kind == "new":
        if device is not None:
            raise LineHasPhone(
                f"line {line.id} already has a phone ({device.mac}): order a replacement"
            )
        pending = await session.scalar(
            select(Order.id).where(Order.line_id == line.id, Order.state == "validated")
        )
        if pending is not None:
            raise OrderPending(f"line {line.id} already has a phone on order (order {pending})")
    else:
        if device is None:
            raise LineHasNoPhone(f"line {line.id} has no phone to replace: order a new one")
        pending = await session.scalar(
            select(Order.id).where(
                Order.replaced_device_id == device.id, Order.state.in_(("validated", "shipped"))
            )
        )
        if pending is not None:
            raise OrderPending(f"phone {device.mac} is already being replaced (order {pending})")

    model = catalog.model(request.model_id)
    if model is None:
        raise UnknownModel(f"unknown model {request.model_id[:64]!r}", field="model")
    if not model.orderable or model.price_cents is None:
        raise NotOrderable(f"model: {model.label} cannot be ordered", field="model")
    if model.slots < count:
        raise TooFewSlots(
            f"model: {model.label} has {model.slots} line slot(s) but the phone it replaces "
            f"carries {count} lines; choose a model with at least {count}",
            field="model",
        )

    carrier = carriers.get(request.carrier)
    relay_point: RelayPoint | None = None
    if carrier.to_relay_point:
        if request.address is not None:
            raise InvalidInput(
                f"address: {carrier.label} delivers to a pick-up point; choose relay_point",
                field="address",
            )
        point_id = request.relay_point_id
        if not point_id:
            raise InvalidInput(
                f"relay_point: choose a pick-up point for {carrier.label}", field="relay_point"
            )
        relay_point = await carrier.relay_point(point_id) if _RELAY_ID.fullmatch(point_id) else None
        if relay_point is None:
            raise UnknownRelayPoint(
                f"relay_point: no {carrier.label} pick-up point {point_id[:32]!r}",
                field="relay_point",
            )
        delivery = DeliveryAddress(
            name=account.name,
            street=relay_point.street,
            postcode=relay_point.postcode,
            town=relay_point.town,
            country=relay_point.country,
        )
    else:
        if request.relay_point_id is not None:
            raise InvalidInput(
                f"relay_point: {carrier.label} delivers to an address", field="relay_point"
            )
        delivery = _delivery_address(request.address, account.name, settings, account)
    shipping = await carrier.quote(delivery)
    now = now or utcnow()
    prices = Prices.compute(
        model.label,
        model.price_cents,
        f"Shipping ({carrier.label})",
        shipping,
        basis_points(settings.vat_rate),
    )
    return Quote(
        kind=request.kind,
        account_id=account.id,
        line_id=line.id,
        model=model,
        replaced=device,
        lines_to_move=count,
        carrier=carrier,
        delivery=delivery,
        relay_point=relay_point,
        prices=prices,
        ship_by=ship_by(now),
    )


def _delivery_address(
    raw: dict[str, Any] | None, default_name: str, settings: Settings, account: Any
) -> DeliveryAddress:
    """The address given, or else the account holder's."""
    countries = settings.shipping_countries
    if raw is None:
        if not (account.street and account.postcode and account.town):
            raise InvalidAddress(
                "address: the account has no delivery address on file; give one", field="address"
            )
        return validate_address(
            name=default_name,
            street=account.street,
            postcode=account.postcode,
            town=account.town,
            country=account.country,
            countries=countries,
        )
    unknown = sorted(set(raw) - {"name", "street", "postcode", "town", "country"})
    if unknown:
        field = f"address.{str(unknown[0])[:32]}"
        raise InvalidAddress(f"{field}: unknown field", field=field)
    return validate_address(
        name=raw.get("name") or default_name,
        street=raw.get("street"),
        postcode=raw.get("postcode"),
        town=raw.get("town"),
        country=raw.get("country") or "FR",
        countries=countries,
    )


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            "Idempotency-Key: 1 to 200 visible ASCII characters", field="Idempotency-Key"
        )
    return key


async def _by_key(session: AsyncSession, account_id: int, key: str) -> Order | None:
    return await session.scalar(
        select(Order).where(Order.account_id == account_id, Order.idempotency_key == key)
    )


def _replay(existing: Order, fingerprint: str) -> Order:
    if existing.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "Idempotency-Key: already used for another order; use a new key for a new order",
            field="Idempotency-Key",
        )
    return existing


async def place_order(
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    request: OrderRequest,
    *,
    accept_contract: bool,
    contract_version: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
) -> tuple[Order, bool]:
    """Validate an order. Returns it and whether it is a replay of an earlier request with the
    same Idempotency-Key (then nothing was created). The order records the version of the
    contract in force; `contract_version`, the version the customer was shown, must be it."""
    key = check_idempotency_key(idempotency_key)
    fingerprint = request.fingerprint(accept_contract)
    line = await get_line(session, request.line_id)
    account_id = line.account_id
    if key is not None:
        existing = await _by_key(session, account_id, key)
        if existing is not None:
            return _replay(existing, fingerprint), True
    if accept_contract is not True:
        raise ContractNotAccepted(
            "accept_contract: read and accept the contract to validate the order",
            field="accept_contract",
        )
    contract = current_contract(settings)
    if contract_version is not None and contract_version != contract.version:
        # Changed between the summary and the click: what was read is not what is in force.
        raise ContractNotAccepted(
            f"contract_version: the contract changed since it was shown ({contract_version[:64]!r}"
            f", now {contract.version!r}); read it and accept it again",
            field="contract_version",
        )
    now = now or utcnow()
    try:
        quote = await quote_order(session, settings, catalog, carriers, request, now=now, lock=True)
    except OrderPending:
        # A concurrent request with this key may have committed while we waited for the lock.
        if key is not None and (existing := await _by_key(session, account_id, key)) is not None:
            return _replay(existing, fingerprint), True
        raise
    prices = quote.prices
    order = Order(
        account_id=account_id,
        kind=quote.kind,
        state="validated",
        line_id=quote.line_id,
        replaced_device_id=quote.replaced.id if quote.replaced else None,
        replaced_mac=quote.replaced.mac if quote.replaced else None,
        model_id=quote.model.id,
        model_label=quote.model.label,
        carrier=quote.carrier.name,
        carrier_label=quote.carrier.label,
        relay_point_id=quote.relay_point.id if quote.relay_point else None,
        delivery_name=quote.delivery.name,
        delivery_street=quote.delivery.street,
        delivery_postcode=quote.delivery.postcode,
        delivery_town=quote.delivery.town,
        delivery_country=quote.delivery.country,
        vat_rate_bp=prices.rate_bp,
        model_price_cents=prices.phone.excl_cents,
        shipping_cents=prices.shipping.excl_cents,
        total_excl_cents=prices.total_excl_cents,
        vat_cents=prices.total_vat_cents,
        total_incl_cents=prices.total_incl_cents,
        contract_accepted_at=now,
        contract_version=contract.version,
        idempotency_key=key,
        request_hash=fingerprint if key else None,
        validated_at=now,
        ship_by=quote.ship_by,
    )
    try:
        async with session.begin_nested():
            session.add(order)
            await session.flush()
    except IntegrityError:
        # A concurrent request got there first: the same key (a double click) gives its
        # order back; otherwise the line already has an order under way.
        if key is not None:
            existing = await _by_key(session, account_id, key)
            if existing is not None:
                return _replay(existing, fingerprint), True
        raise OrderPending(f"line {request.line_id} already has a phone on order") from None
    await record(
        session, actor, "order.create", "order", order.id,
        account_id=account_id, device_mac=order.replaced_mac, after=order_view(order, now),
    )  # fmt: skip
    return order, False


async def get_order(session: AsyncSession, order_id: int, *, lock: bool = False) -> Order:
    query = select(Order).where(Order.id == order_id)
    if lock:
        query = query.with_for_update()
    order = (await session.scalars(query)).one_or_none()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def orders_query(
    *,
    account_id: int | None = None,
    state: str | None = None,
    late_at: datetime | None = None,
) -> Select[Order]:
    """Orders, oldest first. `late_at`: only validated orders whose ship-by time has passed."""
    if state is not None and state not in ORDER_STATES:
        raise InvalidInput(f"state: one of {', '.join(ORDER_STATES)}", field="state")
    query = select(Order).order_by(Order.id)
    if account_id is not None:
        query = query.where(Order.account_id == account_id)
    if state is not None:
        query = query.where(Order.state == state)
    if late_at is not None:
        query = query.where(Order.state == "validated", Order.ship_by < late_at)
    return query


async def list_orders(
    session: AsyncSession,
    *,
    account_id: int | None = None,
    state: str | None = None,
    late_at: datetime | None = None,
) -> list[Order]:
    query = orders_query(account_id=account_id, state=state, late_at=late_at)
    return list((await session.scalars(query)).all())


async def cancel_order(
    session: AsyncSession,
    order_id: int,
    *,
    now: datetime | None = None,
    actor: Actor = SYSTEM,
) -> Order:
    """Cancel an order that has not left the warehouse."""
    order = await get_order(session, order_id, lock=True)
    if order.state != "validated":
        raise OrderNotOpen(f"order {order.id} is {order.state}: it can no longer be cancelled")
    now = now or utcnow()
    before = order_view(order, now)
    order.state = "cancelled"
    order.cancelled_at = now
    await session.flush()
    await record(
        session, actor, "order.cancel", "order", order.id,
        account_id=order.account_id, before=before, after=order_view(order, now),
    )  # fmt: skip
    return order
