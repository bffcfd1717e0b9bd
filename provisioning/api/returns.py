"""Returns: a customer gives a phone back (a reference for the parcel, its lines released), the
warehouse receives it (operator: credential revoked, account forgotten)."""

from __future__ import annotations

from aiohttp import web

from provisioning.api.access import actor, check_account, require_operator, scope_account
from provisioning.api.bodies import page, query_int
from provisioning.db.paging import page_view, paged
from provisioning.devices import inventory
from provisioning.orders import returns
from provisioning.orders.views import return_view
from provisioning.state import SERVICES

routes = web.RouteTableDef()


@routes.post("/devices/{mac}/return")
async def return_device(request: web.Request) -> web.Response:
    mac = inventory.parse_mac(request.match_info["mac"])
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        device = await inventory.get_device(session, mac, lock=True)
        check_account(request, device.account_id, f"device {mac}")
        row, created = await returns.request_return(session, mac, actor=actor(request))
        view = return_view(row)
    return web.json_response(view, status=201 if created else 200)


@routes.get("/returns")
async def list_returns(request: web.Request) -> web.Response:
    limit, offset = page(request)
    query = returns.returns_query(
        account_id=scope_account(request, query_int(request, "account", None, 1, 2**62)),
        state=request.query.get("state") or None,
    )
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows, total = await paged(session, query, limit, offset)
    return web.json_response(page_view([return_view(r) for r in rows], total, limit, offset))


@routes.post("/returns/{reference}/receive")
async def receive(request: web.Request) -> web.Response:
    """The warehouse has the phone back (operator)."""
    require_operator(request)
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        row = await returns.receive_return(
            session, services.cipher, request.match_info["reference"], actor=actor(request)
        )
        view = return_view(row)
    return web.json_response(view)
