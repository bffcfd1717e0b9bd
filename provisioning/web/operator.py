"""Operators' pages: orders to ship (late ones first) and shipping one by scanning the phone's
MAC, returns to receive, unknown devices seen recently (claim one), a device's sightings and
masked config, pushes pending and overdue."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from provisioning.accounts import list_accounts
from provisioning.db.models import Account, Device, Order, Sighting, utcnow
from provisioning.devices import inventory
from provisioning.devices.unknown import list_unknown
from provisioning.errors import DomainError, NotFound
from provisioning.orders import fulfilment, orders, returns
from provisioning.orders.views import shipment_view
from provisioning.push.changes import counts, pushes_in_state
from provisioning.render.environment import RenderError
from provisioning.render.files import device_files, masked, render_file
from provisioning.render.snapshot import find_device, load_device_data
from provisioning.state import SERVICES
from provisioning.web.auth import actor, operator_only
from provisioning.web.ordering import CARRIERS
from provisioning.web.pages import PREFIX, id_of, path_id, redirect, render

routes = web.RouteTableDef()
SIGHTINGS = 20


async def _account_names(request: web.Request) -> dict[int, str]:
    async with request.config_dict[SERVICES].read_sessions() as session:
        return {a.id: a.name for a in await list_accounts(session)}


@routes.get("/ops/orders")
@operator_only
async def orders_to_ship(request: web.Request) -> web.Response:
    now = utcnow()
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows = await orders.list_orders(session, state="validated")
    # Late first: the earliest ship-by time is the most urgent.
    rows.sort(key=lambda o: (o.ship_by, o.id))
    return render(
        request, "operator/orders.html", rows=rows, now=now, names=await _account_names(request)
    )


async def _order(request: web.Request) -> Order:
    order_id = path_id(request, "order_id", "order")
    async with request.config_dict[SERVICES].read_sessions() as session:
        return await orders.get_order(session, order_id)


@routes.get("/ops/orders/{order_id}")
@operator_only
async def ship_form(request: web.Request) -> web.Response:
    order = await _order(request)
    return render(
        request,
        "operator/ship.html",
        order=order,
        now=utcnow(),
        error=None,
        form={"mac": "", "tracking": ""},
        names=await _account_names(request),
    )


@routes.post("/ops/orders/{order_id}")
@operator_only
async def ship(request: web.Request) -> web.Response:
    order_id = path_id(request, "order_id", "order")
    form = await request.post()
    mac = str(form.get("mac", ""))[:32].strip()
    tracking = str(form.get("tracking", ""))[:64].strip() or None
    services = request.config_dict[SERVICES]
    try:
        async with services.sessions() as session, session.begin():
            shipment = await fulfilment.ship_order(
                session,
                services.catalog,
                services.cipher,
                request.config_dict[CARRIERS],
                order_id,
                mac,
                tracking=tracking,
                actor=actor(request),
                files=services.files_check,
            )
            view = shipment_view(shipment, services.settings.base_url)
            order = shipment.order
    except DomainError as exc:
        if exc.status == 404 and exc.code == "not-found":
            raise
        order = await _order(request)
        return render(
            request,
            "operator/ship.html",
            status=exc.status,
            order=order,
            now=utcnow(),
            error=exc,
            form={"mac": mac, "tracking": tracking or ""},
            names=await _account_names(request),
        )
    # Rendered, not redirected: the provisioning URL is shown this once.
    return render(request, "operator/shipped.html", order=order, view=view)


@routes.get("/ops/returns")
@operator_only
async def returns_to_receive(request: web.Request) -> web.Response:
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows = await returns.list_returns(session, state="awaiting")
    return render(
        request,
        "operator/returns.html",
        rows=rows,
        received=request.query.get("received", "")[:16],
        names=await _account_names(request),
    )


@routes.post("/ops/returns/{reference}/receive")
@operator_only
async def receive(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        row = await returns.receive_return(
            session, services.cipher, request.match_info["reference"][:32], actor=actor(request)
        )
        reference = row.reference
    raise redirect(f"{PREFIX}/ops/returns?received={reference}")


@routes.get("/ops/unknown")
@operator_only
async def unknown(request: web.Request) -> web.Response:
    return await _unknown_page(request)


async def _unknown_page(
    request: web.Request, *, error: DomainError | None = None, mac: str = "", status: int = 200
) -> web.Response:
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        rows = await list_unknown(session, 200)
        accounts = await list_accounts(session)
    models = sorted(services.catalog.models.values(), key=lambda m: m.label)
    return render(
        request,
        "operator/unknown.html",
        status=status,
        rows=rows,
        models=models,
        accounts=accounts,
        error=error,
        error_mac=mac,
    )


@routes.post("/ops/unknown/{mac}/claim")
@operator_only
async def claim(request: web.Request) -> web.Response:
    form = await request.post()
    mac = request.match_info["mac"][:32]
    model = str(form.get("model", ""))[:64]
    account_text = str(form.get("account_id", "")).strip()
    services = request.config_dict[SERVICES]
    try:
        account_id = id_of(account_text, "account") if account_text else None
        async with services.sessions() as session, session.begin():
            device, token = await inventory.add_device(
                session,
                services.catalog,
                services.cipher,
                mac,
                model,
                account_id,
                actor=actor(request),
            )
            mac = device.mac
    except DomainError as exc:
        return await _unknown_page(request, error=exc, mac=mac, status=exc.status)
    return render(
        request, "operator/claimed.html", mac=mac, url=f"{services.settings.base_url}/{token}/"
    )


@routes.get("/ops/devices")
@operator_only
async def find(request: web.Request) -> web.Response:
    mac = request.query.get("mac", "").strip()[:32]
    try:
        mac = inventory.parse_mac(mac)
    except DomainError:
        raise NotFound("device not found") from None
    raise redirect(f"{PREFIX}/ops/devices/{mac}")


@routes.get("/ops/devices/{mac}")
@operator_only
async def device_page(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    files: dict[str, str] = {}
    async with services.read_sessions() as session:
        try:
            device = await inventory.get_device(session, request.match_info["mac"][:32])
        except DomainError:
            raise NotFound("device not found") from None
        account = await session.get(Account, device.account_id) if device.account_id else None
        sightings = (
            await session.scalars(
                select(Sighting)
                .where(Sighting.device_id == device.id)
                .order_by(Sighting.id.desc())
                .limit(SIGHTINGS)
            )
        ).all()
        found = await find_device(session, mac=device.mac)
        if found is not None:
            data = await load_device_data(session, found, services.cipher, services.settings)
            for name, spec in device_files(services.catalog, found.model_id, found.mac):
                try:
                    body = render_file(services.renderer, services.settings, data, spec).body
                except RenderError as exc:
                    # A template's refuse(): shown in place of the file, as the log says it
                    # (the slot and why, never the value); the phone gets 503 meanwhile.
                    files[name] = f"!! {exc}"
                    continue
                files[name] = masked(body, data)
    model = services.catalog.models.get(device.model_id)
    return render(
        request,
        "operator/device.html",
        device=device,
        account=account,
        label=model.label if model else device.model_id,
        sightings=sightings,
        files=files,
    )


@routes.get("/ops/pushes")
@operator_only
async def pushes(request: web.Request) -> web.Response:
    async with request.config_dict[SERVICES].read_sessions() as session:
        by_state = await counts(session)
        waiting = await pushes_in_state(session, ("pending", "notified"))
        overdue = await pushes_in_state(session, ("overdue",))
        ids = {p.device_id for p in (*waiting, *overdue)}
        found = await session.execute(select(Device.id, Device.mac).where(Device.id.in_(ids)))
        macs = {device_id: mac for device_id, mac in found.all()}
    context: dict[str, Any] = {
        "counts": by_state,
        "waiting": waiting,
        "overdue": overdue,
        "macs": macs,
        "now": utcnow(),
    }
    return render(request, "operator/pushes.html", **context)
