"""Pick-up points near a postcode or town, as a list and as a map of the town (SVG)."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from provisioning.api.bodies import query_int
from provisioning.api.orders import CARRIERS
from provisioning.orders.relay_map import relay_map_svg
from provisioning.orders.relay_points import Search, place_view, point_view

routes = web.RouteTableDef()

DEFAULT_POINTS = 8
QUERY = ("postcode", "city", "carrier", "limit")


async def _search(request: web.Request) -> Search:
    limit = query_int(request, "limit", DEFAULT_POINTS, 1, 20)
    assert limit is not None
    carrier = request.config_dict[CARRIERS].relay_carrier(request.query.get("carrier") or None)
    return await carrier.relay_points(
        request.query.get("postcode"), request.query.get("city"), limit
    )


@routes.get("/relay-points")
async def relay_points(request: web.Request) -> web.Response:
    search = await _search(request)
    query = {
        k: v for k, v in request.query.items() if k in ("postcode", "city", "carrier", "limit")
    }
    items = [
        {"number": n, **point_view(near.point), "distance_m": near.distance_m}
        for n, near in enumerate(search.points, 1)
    ]
    return web.json_response(
        {
            "place": place_view(search.place),
            "sample_data": search.sample,
            "items": items,
            "map": f"{request.app.router['relay_map'].url_for()}?{urlencode(query)}",
        }
    )


@routes.get("/relay-points/map.svg", name="relay_map")
async def relay_points_map(request: web.Request) -> web.Response:
    search = await _search(request)
    return web.Response(text=relay_map_svg(search), content_type="image/svg+xml")
