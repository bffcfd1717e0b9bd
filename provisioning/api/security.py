"""Operators' view of phones' proofs: bans (list, lift), account policies, device binding
(show, unlock) and credential rotation. Operator tokens only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from provisioning.api.access import actor, require_operator
from provisioning.api.bodies import json_body, path_id, required
from provisioning.devices import inventory
from provisioning.errors import InvalidInput
from provisioning.security import bans, policy
from provisioning.security.credentials import credentials_view, rotate_credential
from provisioning.state import SERVICES, Services

routes = web.RouteTableDef()


@routes.get("/security/bans")
async def list_bans(request: web.Request) -> web.Response:
    require_operator(request)
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows = await bans.active_bans(session, limit=1000)
    return web.json_response({"items": [bans.ban_view(b) for b in rows]})


@routes.delete("/security/bans")
async def lift_ban(request: web.Request) -> web.Response:
    require_operator(request)
    text = request.query.get("source")
    if not text:
        raise InvalidInput("source: required", field="source")
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        source = await bans.lift_ban(session, text, actor=actor(request))
    services.guard.bans.remove(source)  # this instance at once; the others at their next sync
    return web.Response(status=204)


async def _device_security(services: Services, session: Any, mac: str) -> dict[str, Any]:
    device = await inventory.get_device(session, mac)
    return {
        "mac": device.mac,
        "policy": await policy.device_policy(session, services.settings, device),
        "binding": await policy.device_binding(session, device.id),
        "credentials": await credentials_view(session, device.id),
    }


@routes.get("/security/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Scanner-defence counts of this instance, for Prometheus (bearer token of an operator)."""
    require_operator(request)
    return web.Response(text=request.config_dict[SERVICES].guard.metrics())


@routes.get("/devices/{mac}/security")
async def device_security(request: web.Request) -> web.Response:
    require_operator(request)
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        view = await _device_security(services, session, request.match_info["mac"])
    return web.json_response(view)


@routes.post("/devices/{mac}/unlock")
async def unlock_device(request: web.Request) -> web.Response:
    require_operator(request)
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        device = await policy.unlock_device(
            session, request.match_info["mac"], actor=actor(request)
        )
        view = await _device_security(services, session, device.mac)
    return web.json_response(view)


@routes.post("/devices/{mac}/credentials")
async def rotate(request: web.Request) -> web.Response:
    """A new token or digest password; the previous one stays valid for `overlap` seconds."""
    require_operator(request)
    body = await json_body(request, {"kind": str, "overlap": int})
    services = request.config_dict[SERVICES]
    overlap = body.get("overlap")
    async with services.sessions() as session, session.begin():
        rotation = await rotate_credential(
            session,
            services.cipher,
            request.match_info["mac"],
            required(body, "kind"),
            overlap=services.settings.rotation_overlap if overlap is None else overlap,
            username_shape=services.settings.digest_username,
            actor=actor(request),
        )
    view = rotation.view(services.settings.base_url)
    return web.json_response(view, status=201)


@routes.get("/accounts/{account_id}/policy")
async def show_policy(request: web.Request) -> web.Response:
    require_operator(request)
    account_id = path_id(request, "account_id")
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        view = await policy.account_policy(session, services.settings, account_id)
    return web.json_response(view)


@routes.put("/accounts/{account_id}/policy")
async def set_policy(request: web.Request) -> web.Response:
    require_operator(request)
    account_id = path_id(request, "account_id")
    body = await json_body(request, {"proofs": str, "binding": str, "first_contact_days": int})
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        row = await policy.set_policy(
            session,
            account_id,
            required(body, "proofs"),
            binding=body.get("binding") or "off",
            first_contact_days=body.get("first_contact_days"),
            actor=actor(request),
        )
        view = await policy.account_policy(session, services.settings, account_id)
    # This instance at once; the others at their next synchronisation (seconds).
    services.guard.policies.put(account_id, row)
    return web.json_response(view)


@routes.delete("/accounts/{account_id}/policy")
async def clear_policy(request: web.Request) -> web.Response:
    require_operator(request)
    account_id = path_id(request, "account_id")
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        await policy.clear_policy(session, account_id, actor=actor(request))
    services.guard.policies.put(account_id, None)
    return web.Response(status=204)
