"""Accounts and lines."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from provisioning import accounts
from provisioning.api.access import actor, check_account, require_operator, scope_account
from provisioning.api.bodies import int_id, json_body, page, path_id, query_int, required
from provisioning.db.models import Account, Device, Line
from provisioning.db.paging import page_view, paged
from provisioning.errors import NotFound
from provisioning.state import SERVICES
from provisioning.views import account_view, line_view

routes = web.RouteTableDef()


@routes.get("/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    limit, offset = page(request)
    account_id = scope_account(request, None)
    query = select(Account).order_by(Account.id)
    if account_id is not None:
        query = query.where(Account.id == account_id)
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows, total = await paged(session, query, limit, offset)
    return web.json_response(page_view([account_view(r) for r in rows], total, limit, offset))


@routes.post("/accounts")
async def create_account(request: web.Request) -> web.Response:
    require_operator(request)
    body = await json_body(request, {"name": str, "address": str, "timezone": str, "language": str})
    services = request.config_dict[SERVICES]
    address = accounts.Address.parse(body["address"]) if body.get("address") else None
    async with services.sessions() as session, session.begin():
        account = await accounts.create_account(
            session,
            services.settings,
            required(body, "name"),
            address=address,
            timezone=body.get("timezone"),
            language=body.get("language"),
            actor=actor(request),
        )
        view = account_view(account)
    return web.json_response(view, status=201)


@routes.get("/accounts/{account_id}")
async def get_account(request: web.Request) -> web.Response:
    account_id = path_id(request, "account_id")
    check_account(request, account_id, f"account {account_id}")
    async with request.config_dict[SERVICES].read_sessions() as session:
        account = await accounts.get_account(session, account_id)
        return web.json_response(account_view(account))


async def _line_view(session: Any, line: Line) -> dict[str, Any]:
    if line.slot is None:
        return line_view(line)
    mac = await session.scalar(select(Device.mac).where(Device.id == line.slot.device_id))
    return line_view(line, mac, line.slot.slot)


@routes.get("/lines")
async def list_lines(request: web.Request) -> web.Response:
    limit, offset = page(request)
    account_id = scope_account(request, query_int(request, "account", None, 1, 2**62))
    async with request.config_dict[SERVICES].read_sessions() as session:
        rows, total = await paged(session, accounts.lines_query(account_id), limit, offset)
        items = [await _line_view(session, line) for line in rows]
    return web.json_response(page_view(items, total, limit, offset))


@routes.post("/lines")
async def create_line(request: web.Request) -> web.Response:
    require_operator(request)
    body = await json_body(
        request,
        {
            "account_id": int,
            "number": str,
            "password": str,
            "username": str,
            "auth_username": str,
            "display_name": str,
            "registrar": str,
            "transport": str,
        },
    )
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        line = await accounts.create_line(
            session,
            services.settings,
            services.cipher,
            int_id(required(body, "account_id"), "account_id"),
            required(body, "number"),
            password=required(body, "password"),
            username=body.get("username"),
            auth_username=body.get("auth_username"),
            display_name=body.get("display_name") or "",
            registrar=body.get("registrar"),
            transport=body.get("transport"),
            actor=actor(request),
        )
        view = line_view(line)
    return web.json_response(view, status=201)


async def _visible_line(request: web.Request, session: Any, line_id: int) -> Line:
    line = await session.get(Line, line_id)
    if line is None:
        raise NotFound(f"line {line_id} not found")
    check_account(request, line.account_id, f"line {line_id}")
    return line  # type: ignore[no-any-return]


@routes.get("/lines/{line_id}")
async def get_line(request: web.Request) -> web.Response:
    line_id = path_id(request, "line_id")
    async with request.config_dict[SERVICES].read_sessions() as session:
        line = await _visible_line(request, session, line_id)
        await session.refresh(line, ["slot"])
        return web.json_response(await _line_view(session, line))


@routes.patch("/lines/{line_id}")
async def update_line(request: web.Request) -> web.Response:
    line_id = path_id(request, "line_id")
    body = await json_body(request, {"display_name": str, "password": str})
    services = request.config_dict[SERVICES]
    # A value the phone carrying the line could not be given is refused (409), nothing changed.
    files = services.files_check
    async with services.sessions() as session, session.begin():
        await _visible_line(request, session, line_id)
        if "display_name" in body and body["display_name"] is not None:
            await accounts.set_line_display_name(
                session, line_id, body["display_name"], actor=actor(request), files=files
            )
        if body.get("password") is not None:
            await accounts.set_line_password(
                session, services.cipher, line_id, body["password"], actor=actor(request),
                files=files,
            )  # fmt: skip
        line = await accounts.get_line(session, line_id)
        await session.refresh(line, ["slot"])
        view = await _line_view(session, line)
    return web.json_response(view)
