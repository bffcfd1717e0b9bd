"""Associating a line with a phone the customer already has, and following it until applied."""

from __future__ import annotations

from aiohttp import web

from provisioning.accounts import get_line
from provisioning.api.access import actor, caller_ip, check_account, require_operator
from provisioning.api.bodies import int_id, json_body, path_id, required
from provisioning.devices.inventory import get_device
from provisioning.push import associations
from provisioning.push.changes import counts, pushes_in_state
from provisioning.state import SERVICES

routes = web.RouteTableDef()


@routes.get("/lines/{line_id}/compatible-devices")
async def compatible_devices(request: web.Request) -> web.Response:
    line_id = path_id(request, "line_id")
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        line = await get_line(session, line_id)
        check_account(request, line.account_id, f"line {line_id}")
        found = await associations.compatible_devices(session, line_id, caller_ip(request))
    items = [
        {
            "mac": c.device.mac,
            "model": c.device.model_id,
            "label": services.catalog.models[c.device.model_id].label,
            "free_slots": c.free_slots,
            "public_ip": c.device.last_ip,
            "last_seen": c.device.last_seen_at.isoformat() if c.device.last_seen_at else None,
            "same_network": c.same_network,
        }
        for c in found
    ]
    return web.json_response({"line_id": line_id, "items": items})


@routes.post("/associations")
async def create_association(request: web.Request) -> web.Response:
    body = await json_body(request, {"line_id": int, "mac": str})
    line_id = int_id(required(body, "line_id"), "line_id")
    mac = required(body, "mac")
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        line = await get_line(session, line_id)
        check_account(request, line.account_id, f"line {line_id}")
        device = await get_device(session, mac)
        check_account(request, device.account_id, f"device {device.mac}")
        association = await associations.associate(
            session, line_id, device.mac, actor=actor(request),
            files=services.files_check,
        )  # fmt: skip
        view = await associations.association_view(session, association)
    return web.json_response(view, status=202)


@routes.get("/associations/{association_id}")
async def get_association(request: web.Request) -> web.Response:
    association_id = path_id(request, "association_id")
    async with request.config_dict[SERVICES].read_sessions() as session:
        association = await associations.get_association(session, association_id)
        check_account(request, association.account_id, f"association {association_id}")
        view = await associations.association_view(session, association)
    return web.json_response(view)


@routes.get("/pushes")
async def list_pushes(request: web.Request) -> web.Response:
    """Operators: pushes by state, and the overdue ones in detail."""
    require_operator(request)
    async with request.config_dict[SERVICES].read_sessions() as session:
        by_state = await counts(session)
        overdue = await pushes_in_state(session, ("overdue",))
    return web.json_response(
        {
            "counts": by_state,
            "overdue": [
                {
                    "id": p.id,
                    "device_id": p.device_id,
                    "target_revision": p.target_revision,
                    "reason": p.reason,
                    "deadline": p.deadline.isoformat(),
                    "last_result": p.last_result,
                    "attempts": p.attempts,
                }
                for p in overdue
            ],
        }
    )
