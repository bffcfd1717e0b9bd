"""The catalog and the audit trail."""

from __future__ import annotations

from aiohttp import web

from provisioning import audit
from provisioning.api.access import principal, scope_account
from provisioning.api.bodies import page, query_int
from provisioning.devices.inventory import parse_mac
from provisioning.state import SERVICES

routes = web.RouteTableDef()


@routes.get("/catalog/models")
async def list_models(request: web.Request) -> web.Response:
    catalog = request.config_dict[SERVICES].catalog
    items = [
        {
            "id": m.id,
            "vendor": m.vendor,
            "family": m.family,
            "label": m.label,
            "slots": m.slots,
            "orderable": m.orderable,
            "price_cents": m.price_cents,
        }
        for m in sorted(catalog.models.values(), key=lambda m: m.id)
    ]
    return web.json_response({"items": items})


@routes.get("/audit")
async def list_audit(request: web.Request) -> web.Response:
    limit, offset = page(request)
    account_id = scope_account(request, query_int(request, "account", None, 1, 2**62))
    device = request.query.get("device")
    mac = parse_mac(device) if device else None
    async with request.config_dict[SERVICES].read_sessions() as session:
        if mac is not None and not principal(request).is_operator:
            # A customer sees a device's events only through their own account.
            account_id = principal(request).account_id
        events = await audit.list_events(
            session, account_id=account_id, device_mac=mac, limit=limit, offset=offset
        )
    return web.json_response(
        {"items": [audit.event_view(e) for e in events], "limit": limit, "offset": offset}
    )
