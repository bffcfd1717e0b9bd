"""Orders: the catalog a line can order from, quotes, validated orders (with Idempotency-Key),
cancellation, and the warehouse's shipments (operator)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.api.access import actor, check_account, require_operator, scope_account
from provisioning.api.bodies import int_id, json_body, page, path_id, query_int, required
from provisioning.db.models import Line, Order, utcnow
from provisioning.db.paging import page_view, paged
from provisioning.errors import InvalidInput, NotFound
from provisioning.orders import fulfilment, orders
from provisioning.orders.carriers import Carriers
from provisioning.orders.money import PriceLine, basis_points, vat_cents
from provisioning.orders.relay_points import point_view
from provisioning.orders.views import order_view, shipment_view
from provisioning.state import SERVICES

routes = web.RouteTableDef()

CARRIERS: web.AppKey[Carriers] = web.AppKey("carriers", Carriers)

ORDER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "line_id": int,
    "model": str,
    "carrier": str,
    "address": dict,
    "relay_point": str,
}


async def visible_line(request: web.Request, session: AsyncSession, line_id: int) -> Line:
    line = await session.get(Line, line_id)
    if line is None:
        raise NotFound(f"line {line_id} not found")
    check_account(request, line.account_id, f"line {line_id}")
    return line


async def _visible_order(
    request: web.Request, session: AsyncSession, order_id: int, *, lock: bool = False
) -> Order:
    try:
        order = await orders.get_order(session, order_id, lock=lock)
    except NotFound:
        raise NotFound(f"order {order_id} not found") from None
    check_account(request, order.account_id, f"order {order_id}")
    return order


def _order_request(body: dict[str, Any]) -> orders.OrderRequest:
    return orders.OrderRequest(
        line_id=int_id(required(body, "line_id"), "line_id"),
        model_id=required(body, "model"),
        carrier=required(body, "carrier"),
        kind=body.get("kind") or "new",
        address=body.get("address"),
        relay_point_id=body.get("relay_point"),
    )


@routes.get("/orders/catalog")
async def catalog_for_line(request: web.Request) -> web.Response:
    """What can be ordered for a line: every orderable model for a line without a phone, the
    models with enough slots for a replacement."""
    line_id = query_int(request, "line_id", None, 1, 2**62)
    if line_id is None:
        raise InvalidInput("line_id: required", field="line_id")
    services = request.config_dict[SERVICES]
    rate = basis_points(services.settings.vat_rate)
    async with services.read_sessions() as session:
        await visible_line(request, session, line_id)
        found = await orders.offer(session, services.catalog, line_id)
    carriers = request.config_dict[CARRIERS]
    items = []
    for model in found.models:
        cents = model.price_cents or 0
        price = PriceLine(model.label, cents, vat_cents(cents, rate)).view()
        items.append(
            {
                "id": model.id,
                "label": model.label,
                "vendor": model.vendor,
                "slots": model.slots,
                "price": {k: price[k] for k in ("excl_vat", "vat", "incl_vat")},
            }
        )
    return web.json_response(
        {
            "kind": found.kind,
            "line_id": found.line_id,
            "replaced_device": found.replaced_mac,
            "lines_on_phone": found.lines_on_phone,
            "items": items,
            "carriers": [
                {
                    "name": c.name,
                    "label": c.label,
                    "delivery": "relay_point" if c.to_relay_point else "address",
                }
                for c in (carriers.get(name) for name in carriers.names())
            ],
        }
    )


def _quote_view(quote: orders.Quote) -> dict[str, Any]:
    d = quote.delivery
    return {
        "kind": quote.kind,
        "line_id": quote.line_id,
        "replaced_device": quote.replaced.mac if quote.replaced else None,
        "lines_to_move": quote.lines_to_move,
        "model": {"id": quote.model.id, "label": quote.model.label, "slots": quote.model.slots},
        "shipping": {
            "carrier": quote.carrier.name,
            "carrier_label": quote.carrier.label,
            "relay_point": point_view(quote.relay_point) if quote.relay_point else None,
            "delivery": {
                "name": d.name,
                "street": d.street,
                "postcode": d.postcode,
                "town": d.town,
                "country": d.country,
            },
        },
        "prices": quote.prices.view(),
        "ship_by": quote.ship_by.isoformat(),
        "contract_required": True,
    }


@routes.post("/orders/quote")
async def quote(request: web.Request) -> web.Response:
    body = await json_body(request, ORDER_FIELDS)
    order_request = _order_request(body)
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        await visible_line(request, session, order_request.line_id)
        found = await orders.quote_order(
            session,
            services.settings,
            services.catalog,
            request.config_dict[CARRIERS],
            order_request,
        )
        view = _quote_view(found)
    return web.json_response(view)


@routes.post("/orders")
async def place(request: web.Request) -> web.Response:
    key = orders.check_idempotency_key(request.headers.get("Idempotency-Key"))
    body = await json_body(request, {**ORDER_FIELDS, "accept_contract": bool})
    order_request = _order_request(body)
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        await visible_line(request, session, order_request.line_id)
        order, replayed = await orders.place_order(
            session,
            services.settings,
            services.catalog,
            request.config_dict[CARRIERS],
            order_request,
            accept_contract=body.get("accept_contract") is True,
            idempotency_key=key,
            actor=actor(request),
        )
        view = order_view(order, utcnow())
    response = web.json_response(view, status=201)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.get("/orders")
async def list_orders(request: web.Request) -> web.Response:
    limit, offset = page(request)
    late = request.query.get("late", "false")
    if late not in ("true", "false"):
        raise InvalidInput("late: true or false", field="late")
    now = utcnow()
    query = orders.orders_query(
        account_id=scope_account(request, query_int(request, "account", None, 1, 2**62)),
        state=request.query.get("state") or None,
        late_at=now if late == "true" else None,
    )
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows, total = await paged(session, query, limit, offset)
    return web.json_response(page_view([order_view(o, now) for o in rows], total, limit, offset))


@routes.get("/orders/{order_id}")
async def get_order(request: web.Request) -> web.Response:
    order_id = path_id(request, "order_id")
    async with request.config_dict[SERVICES].read_sessions() as session:
        order = await _visible_order(request, session, order_id)
    return web.json_response(order_view(order, utcnow()))


@routes.post("/orders/{order_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    order_id = path_id(request, "order_id")
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        await _visible_order(request, session, order_id, lock=True)
        order = await orders.cancel_order(session, order_id, actor=actor(request))
        view = order_view(order, utcnow())
    return web.json_response(view)


@routes.post("/orders/{order_id}/shipments")
async def ship(request: web.Request) -> web.Response:
    """The warehouse scanned the phone going into the parcel (operator)."""
    require_operator(request)
    order_id = path_id(request, "order_id")
    body = await json_body(request, {"mac": str, "tracking": str})
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        shipment = await fulfilment.ship_order(
            session,
            services.catalog,
            services.cipher,
            request.config_dict[CARRIERS],
            order_id,
            required(body, "mac"),
            tracking=body.get("tracking"),
            actor=actor(request),
            # A line the new phone's files could not carry: 409 before the parcel is booked.
            files=services.files_check,
        )
        now = utcnow()
        view = shipment_view(shipment, services.settings.base_url)
        view["order"] = order_view(shipment.order, now)
    return web.json_response(view, status=201)
