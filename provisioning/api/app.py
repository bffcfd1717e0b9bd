"""The API sub-application, mounted at /api/v1 by the app factory."""

from __future__ import annotations

from aiohttp import web

from provisioning.api import (
    accounts,
    associations,
    devices,
    imports,
    misc,
    orders,
    relay_points,
    returns,
    security,
)
from provisioning.api.access import auth_middleware
from provisioning.api.bodies import texts_middleware
from provisioning.api.openapi import openapi_document
from provisioning.api.problems import problems_middleware
from provisioning.orders.carriers import load_carriers

PREFIX = "/api/v1"


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def create_api() -> web.Application:
    api = web.Application(middlewares=[problems_middleware, auth_middleware, texts_middleware])
    api.router.add_get("/openapi.json", _openapi)
    api.add_routes(misc.routes)
    api.add_routes(accounts.routes)
    api.add_routes(devices.routes)
    api.add_routes(imports.routes)
    api.add_routes(associations.routes)
    api[orders.CARRIERS] = load_carriers()
    api.add_routes(orders.routes)
    api.add_routes(relay_points.routes)
    api.add_routes(returns.routes)
    api.add_routes(security.routes)
    return api
