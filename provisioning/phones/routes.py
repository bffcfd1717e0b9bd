"""Routes of the phone endpoint. Phones are given a base URL `http://server/<token>/` and append
their vendor's file names; closed lab networks may allow `http://server/<file>` by MAC alone."""

from __future__ import annotations

from aiohttp import web

from provisioning.phones.files import fetch_file, not_found
from provisioning.phones.firmware import fetch_firmware
from provisioning.phones.load import Load, shedding
from provisioning.state import SERVICES


def _load(request: web.Request) -> Load:
    return request.app[SERVICES].load


async def _nothing_here(_request: web.Request) -> web.StreamResponse:
    return not_found()


def add_routes(app: web.Application) -> None:
    # Under overload phones get a 503 with Retry-After at once (phones.load).
    files, firmware = shedding(_load, fetch_file), shedding(_load, fetch_firmware)
    app.router.add_get("/firmware/{path:.+}", firmware)
    # Some softphones (Jitsi) ask for their file with a form POST: the same answer as a GET,
    # the body never read.
    for add in (app.router.add_get, app.router.add_post):  # GET with HEAD
        add("/{token:[A-Za-z0-9_-]{16,64}}/{file}", files)
        add("/{file}", files)
        # Anything else a phone or scanner asks: the same empty 404 as an unknown MAC.
        add("/{tail:.*}", _nothing_here)
