"""Before any handler: a banned source gets an empty 403 for everything (phone files, firmware,
the API), and with plain HTTP limited to public files the API is not served over it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from provisioning.api.problems import problem
from provisioning.state import SERVICES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = "/api/"


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.config_dict[SERVICES].guard
    if guard.banned(request):
        return web.Response(status=403)
    if (
        guard.settings.http == "public"
        and request.path.startswith((API, "/manager"))
        and not guard.secure(request)
    ):
        # Bearer tokens, revealed configs and Manager passwords are secrets too: HTTPS only.
        return problem(403, "https-required", "Forbidden", "use HTTPS for the API")
    return await handler(request)
