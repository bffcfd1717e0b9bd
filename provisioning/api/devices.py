"""Devices, their line slots, their rendered configuration, unknown devices."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from provisioning import audit
from provisioning.api.access import actor, check_account, require_operator, scope_account
from provisioning.api.bodies import (
    int_id,
    json_body,
    json_object,
    page,
    path_id,
    query_bool,
    query_datetime,
    query_int,
    read_bounded,
    required,
)
from provisioning.api.problems import problem
from provisioning.db.models import DEVICE_STATES, Device, Line
from provisioning.db.paging import page_view, paged
from provisioning.devices import inventory
from provisioning.devices.unknown import (
    MAX_CLAIMS,
    ClaimReport,
    ClaimRequest,
    claim_unknown,
    list_unknown,
    parse_claims_csv,
)
from provisioning.errors import Conflict, InvalidInput, NotFound
from provisioning.imports import Problem
from provisioning.render.environment import RenderError
from provisioning.render.files import device_files, masked, render_file
from provisioning.render.snapshot import find_device, load_device_data
from provisioning.state import SERVICES, Services
from provisioning.views import device_view, unknown_view

routes = web.RouteTableDef()


def _view(services: Services, device: Device) -> dict[str, Any]:
    view = device_view(device)
    view["current_revision"] = device.config_revision
    view["files"] = [n for n, _ in device_files(services.catalog, device.model_id, device.mac)]
    return view


async def _visible(request: web.Request, session: Any, *, lock: bool = False) -> Device:
    mac = inventory.parse_mac(request.match_info["mac"])
    device = await inventory.get_device(session, mac, lock=lock)
    check_account(request, device.account_id, f"device {mac}")
    return device


@routes.get("/devices")
async def list_devices(request: web.Request) -> web.Response:
    limit, offset = page(request)
    state = request.query.get("state")
    if state is not None and state not in DEVICE_STATES:
        raise InvalidInput(f"state: one of {', '.join(DEVICE_STATES)}", field="state")
    query = inventory.devices_query(
        account_id=scope_account(request, query_int(request, "account", None, 1, 2**62)),
        model_id=request.query.get("model") or None,
        state=state,
        seen_since=query_datetime(request, "seen_since"),
    )
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        rows, total = await paged(session, query, limit, offset)
        items = [_view(services, d) for d in rows]
    return web.json_response(page_view(items, total, limit, offset))


@routes.post("/devices")
async def create_device(request: web.Request) -> web.Response:
    require_operator(request)
    body = await json_body(request, {"mac": str, "model": str, "account_id": int})
    services = request.config_dict[SERVICES]
    account_id = body.get("account_id")
    async with services.sessions() as session, session.begin():
        device, token = await inventory.add_device(
            session,
            services.catalog,
            services.cipher,
            required(body, "mac"),
            required(body, "model"),
            int_id(account_id, "account_id") if account_id is not None else None,
            actor=actor(request),
        )
        mac = device.mac
    async with services.read_sessions() as session:
        view = _view(services, await inventory.get_device(session, mac))
    # The only time the provisioning URL's token is handed out by the API.
    view["url"] = f"{services.settings.base_url}/{token}/"
    return web.json_response(view, status=201)


@routes.get("/devices/unknown")
async def unknown_devices(request: web.Request) -> web.Response:
    require_operator(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    assert limit is not None
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows = await list_unknown(session, limit)
    items = [unknown_view(u) for u in rows]
    return web.json_response({"items": items})


# A claim's body: 10,000 MACs in JSON or CSV are well under it.
MAX_CLAIM_BYTES = 1024 * 1024


@routes.post("/devices/unknown/claims")
async def claim_unknown_devices(request: web.Request) -> web.Response:
    """Claim unknown devices in bulk: a JSON MAC list with one model and account for all
    (`{"macs": [...], "model": ..., "account_id": ...}`, the model by default the one each
    User-Agent names), or a CSV file (columns mac, model, account_id). All or nothing: 201
    with each phone's provisioning URL (shown this once), 200 for `?dry_run=true`, or a 422
    problem `claim-refused` whose `report` lists every problem with its row (a MAC's place in
    the list, or the CSV row) and column."""
    require_operator(request)
    dry_run = query_bool(request, "dry_run")
    if request.content_type not in ("application/json", "text/csv"):
        return problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send a JSON MAC list (application/json) or a CSV file (text/csv)",
            field="body",
        )
    raw = await read_bounded(request, MAX_CLAIM_BYTES)
    if raw is None:
        return problem(413, "too-large", "Request too large", "a claim takes at most 1 MiB")
    problems: list[Problem] = []
    if request.content_type == "text/csv":
        claims = parse_claims_csv(raw, problems)
    else:
        body = json_object(raw, {"macs": list, "model": str, "account_id": int})
        macs = required(body, "macs")
        if len(macs) > MAX_CLAIMS or not all(isinstance(m, str) for m in macs):
            raise InvalidInput(f"macs: at most {MAX_CLAIMS} MACs, as strings", field="macs")
        account_id = body.get("account_id")
        account = int_id(account_id, "account_id") if account_id is not None else None
        model = body.get("model") or None
        claims = [ClaimRequest(n, mac, model, account) for n, mac in enumerate(macs, 1)]
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        if problems:
            report = ClaimReport(dry_run, problems=problems)
        else:
            report = await claim_unknown(
                session,
                services.catalog,
                services.cipher,
                services.settings.base_url,
                claims,
                dry_run=dry_run,
                actor=actor(request),
            )
    if report.problems:
        return problem(
            422,
            "claim-refused",
            "Invalid input",
            f"{len(report.problems)} problem(s); nothing claimed (the report lists each)",
            report=report.view(),
        )
    return web.json_response(report.view(), status=200 if dry_run else 201)


@routes.get("/devices/{mac}")
async def get_device(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    async with services.read_sessions() as session:
        return web.json_response(_view(services, await _visible(request, session)))


@routes.post("/devices/{mac}/lines")
async def assign_line(request: web.Request) -> web.Response:
    body = await json_body(request, {"line_id": int, "slot": int})
    line_id = int_id(required(body, "line_id"), "line_id")
    slot = body.get("slot")
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        device = await _visible(request, session, lock=True)
        line = await session.get(Line, line_id)
        if line is None:
            raise NotFound(f"line {line_id} not found")
        check_account(request, line.account_id, f"line {line_id}")
        assignment = await inventory.assign_line(
            session,
            device.mac,
            line_id,
            int_id(slot, "slot") if slot is not None else None,
            actor=actor(request),
            files=services.files_check,
        )
        result = {"mac": device.mac, "line_id": line_id, "slot": assignment.slot}
    return web.json_response(result, status=201)


@routes.delete("/devices/{mac}/lines/{line_id}")
async def unassign_line(request: web.Request) -> web.Response:
    line_id = path_id(request, "line_id")
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        device = await _visible(request, session, lock=True)
        await inventory.unassign_line(session, device.mac, line_id, actor=actor(request))
    return web.Response(status=204)


@routes.get("/devices/{mac}/config")
async def preview_config(request: web.Request) -> web.Response:
    """The files the phone would get; secrets masked unless `reveal=true` with a `reason`,
    which is written to the audit trail."""
    reveal = request.query.get("reveal", "false")
    if reveal not in ("true", "false"):
        raise InvalidInput("reveal: true or false", field="reveal")
    reason = request.query.get("reason", "").strip()
    if reveal == "true" and not 3 <= len(reason) <= 200:
        raise InvalidInput(
            "reason: say why the secrets are needed (3 to 200 characters)", field="reason"
        )
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        device = await _visible(request, session)
        found = await find_device(session, mac=device.mac)
        assert found is not None
        data = await load_device_data(session, found, services.cipher, services.settings)
        files = {}
        for name, spec in device_files(services.catalog, found.model_id, found.mac):
            try:
                body = render_file(services.renderer, services.settings, data, spec).body
            except RenderError as exc:
                # A value the vendor's format cannot carry (a template's refuse()): the phone
                # gets 503 until the line changes; the operator is told which and why (the
                # message names the slot, never the value).
                raise Conflict(f"{name} cannot be rendered: {exc}") from None
            files[name] = body.decode("utf-8") if reveal == "true" else masked(body, data)
        if reveal == "true":
            await audit.record(
                session, actor(request), "config.reveal", "device", found.mac,
                account_id=found.account_id, device_mac=found.mac, after={"reason": reason},
            )  # fmt: skip
    return web.json_response(
        {"mac": device.mac, "revision": data.revision, "masked": reveal != "true", "files": files}
    )
