"""The orders, relay points and returns part of the OpenAPI document (merged by `openapi`)."""

from __future__ import annotations

from typing import Any

from provisioning.api.openapi import (
    ID,
    MAC,
    PAGING,
    _nullable,
    _obj,
    _op,
    _page,
    _path,
    _query,
    _ref,
)
from provisioning.db.models import ORDER_KINDS, ORDER_STATES, RETURN_STATES
from provisioning.orders.relay_points import WEEKDAYS

SVG = "image/svg+xml"
DATE_TIME = {"type": "string", "format": "date-time"}
MONEY = _ref("Money")
TOTALS = _obj(["excl_vat", "vat", "incl_vat"], excl_vat=MONEY, vat=MONEY, incl_vat=MONEY)
ADDRESS_INPUT = {
    "type": "object",
    "description": "another delivery address (default: the account holder's)",
    "properties": {
        name: {"type": "string"} for name in ("name", "street", "postcode", "town", "country")
    },
}
ORDER_INPUT = {
    "line_id": ID,
    "model": {"type": "string", "description": "an orderable model, see /orders/catalog"},
    "carrier": {"type": "string", "description": "dhl (to an address) or mondial-relay"},
    "kind": {"enum": list(ORDER_KINDS)},
    "address": ADDRESS_INPUT,
    "relay_point": {"type": "string", "description": "a pick-up point id, see /relay-points"},
}

ORDER_SCHEMAS: dict[str, Any] = {
    "Money": _obj(
        ["cents", "amount"],
        cents={"type": "integer"},
        amount={"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$"},
    ),
    "PriceLine": _obj(
        ["description", "excl_vat", "vat", "incl_vat"],
        description={"type": "string"},
        excl_vat=MONEY,
        vat=MONEY,
        incl_vat=MONEY,
    ),
    "Prices": _obj(
        ["currency", "vat_rate", "items", "total"],
        currency={"type": "string"},
        vat_rate={"type": "string", "description": "percent, e.g. 20"},
        items={"type": "array", "items": _ref("PriceLine")},
        total=TOTALS,
    ),
    "DeliveryAddress": _obj(
        ["name", "street", "postcode", "town", "country"],
        name={"type": "string"},
        street={"type": "string"},
        postcode={"type": "string"},
        town={"type": "string"},
        country={"type": "string"},
    ),
    "RelayPoint": _obj(
        ["id", "name", "address", "latitude", "longitude", "opening_hours"],
        id={"type": "string"},
        name={"type": "string"},
        address=_ref("Address"),
        latitude={"type": "number"},
        longitude={"type": "number"},
        opening_hours=_obj(
            list(WEEKDAYS),
            **{
                day: {
                    "type": "array",
                    "items": _obj(
                        ["opens", "closes"], opens={"type": "string"}, closes={"type": "string"}
                    ),
                }
                for day in WEEKDAYS
            },
        ),
    ),
    "OrderCatalog": _obj(
        ["kind", "line_id", "replaced_device", "lines_on_phone", "items", "carriers"],
        kind={"enum": list(ORDER_KINDS)},
        line_id=ID,
        replaced_device=_nullable("string"),
        lines_on_phone={"type": "integer", "minimum": 0},
        items={
            "type": "array",
            "items": _obj(
                ["id", "label", "vendor", "slots", "price"],
                id={"type": "string"},
                label={"type": "string"},
                vendor={"type": "string"},
                slots=ID,
                price=TOTALS,
            ),
        },
        carriers={
            "type": "array",
            "items": _obj(
                ["name", "label", "delivery"],
                name={"type": "string"},
                label={"type": "string"},
                delivery={"enum": ["address", "relay_point"]},
            ),
        },
    ),
    "QuoteRequest": _obj(["line_id", "model", "carrier"], **ORDER_INPUT),
    "OrderCreate": _obj(
        ["line_id", "model", "carrier", "accept_contract"],
        **ORDER_INPUT,
        accept_contract={"type": "boolean", "description": "must be true"},
    ),
    "Quote": _obj(
        [
            "kind",
            "line_id",
            "replaced_device",
            "lines_to_move",
            "model",
            "shipping",
            "prices",
            "ship_by",
            "contract_required",
        ],
        kind={"enum": list(ORDER_KINDS)},
        line_id=ID,
        replaced_device=_nullable("string"),
        lines_to_move={"type": "integer", "minimum": 0},
        model=_obj(
            ["id", "label", "slots"], id={"type": "string"}, label={"type": "string"}, slots=ID
        ),
        shipping=_obj(
            ["carrier", "carrier_label", "relay_point", "delivery"],
            carrier={"type": "string"},
            carrier_label={"type": "string"},
            relay_point={"oneOf": [_ref("RelayPoint"), {"type": "null"}]},
            delivery=_ref("DeliveryAddress"),
        ),
        prices=_ref("Prices"),
        ship_by=DATE_TIME,
        contract_required={"type": "boolean"},
    ),
    "Order": _obj(
        [
            "id",
            "account_id",
            "kind",
            "state",
            "line_id",
            "replaced_device",
            "model",
            "model_label",
            "shipping",
            "prices",
            "contract_accepted_at",
            "contract_version",
            "validated_at",
            "ship_by",
            "late",
            "shipped_at",
            "delivered_at",
            "cancelled_at",
            "device",
            "tracking",
        ],
        id=ID,
        account_id=ID,
        kind={"enum": list(ORDER_KINDS)},
        state={"enum": list(ORDER_STATES)},
        line_id=_nullable("integer"),
        replaced_device=_nullable("string"),
        model={"type": "string"},
        model_label={"type": "string"},
        shipping=_obj(
            ["carrier", "carrier_label", "relay_point", "delivery"],
            carrier={"type": "string"},
            carrier_label={"type": "string"},
            relay_point=_nullable("string"),
            delivery=_ref("DeliveryAddress"),
        ),
        prices=_ref("Prices"),
        contract_accepted_at=DATE_TIME,
        contract_version=_nullable(
            "string", description="the contract accepted (none on orders older than its record)"
        ),
        validated_at=DATE_TIME,
        ship_by=DATE_TIME,
        late={"type": "boolean", "description": "validated and past ship_by"},
        shipped_at=_nullable("string", format="date-time"),
        delivered_at=_nullable("string", format="date-time"),
        cancelled_at=_nullable("string", format="date-time"),
        device=_nullable("string"),
        tracking=_nullable("string"),
    ),
    "OrderPage": _page("Order"),
    "ShipmentCreate": _obj(
        ["mac"],
        mac=MAC,
        tracking={"type": "string", "description": "default: the carrier books the parcel"},
    ),
    "Shipment": _obj(
        ["device", "url", "tracking", "handovers", "order"],
        device=_obj(
            ["mac", "model", "account_id", "state", "config_revision"],
            mac={"type": "string"},
            model={"type": "string"},
            account_id=_nullable("integer"),
            state={"type": "string"},
            config_revision={"type": "integer"},
        ),
        url={"type": "string", "description": "the provisioning URL to write into the phone"},
        tracking={"type": "string"},
        handovers={
            "type": "array",
            "items": _obj(["line_id", "slot"], line_id=ID, slot=ID),
        },
        order=_ref("Order"),
    ),
    "RelayPointList": _obj(
        ["place", "sample_data", "items", "map"],
        place=_obj(
            ["label", "postcode", "town", "latitude", "longitude"],
            label={"type": "string"},
            postcode=_nullable("string"),
            town={"type": "string"},
            latitude={"type": "number"},
            longitude={"type": "number"},
        ),
        sample_data={"type": "boolean"},
        items={"type": "array", "items": _ref("NearbyRelayPoint")},
        map={"type": "string", "description": "URL of the map of the town"},
    ),
    "Return": _obj(
        [
            "reference",
            "mac",
            "account_id",
            "order_id",
            "reason",
            "state",
            "created_at",
            "received_at",
        ],
        reference={"type": "string"},
        mac={"type": "string"},
        account_id=ID,
        order_id=_nullable("integer"),
        reason={"enum": ["return", "replacement"]},
        state={"enum": list(RETURN_STATES)},
        created_at=DATE_TIME,
        received_at=_nullable("string", format="date-time"),
    ),
    "ReturnPage": _page("Return"),
}
_POINT = ORDER_SCHEMAS["RelayPoint"]
ORDER_SCHEMAS["NearbyRelayPoint"] = {
    **_POINT,
    "required": ["number", *_POINT["required"], "distance_m"],
    "properties": {
        "number": {**ID, "description": "as on the map, 1 = nearest"},
        **_POINT["properties"],
        "distance_m": {"type": "integer", "minimum": 0},
    },
}


def order_paths() -> dict[str, Any]:
    order = [_path("order_id", ID)]
    mac = [_path("mac", MAC)]
    search = [
        _query("postcode", {"type": "string", "maxLength": 10}, "a French postcode, or"),
        _query("city", {"type": "string", "maxLength": 100}, "a town name"),
        _query("carrier", {"type": "string", "maxLength": 32}, "default: mondial-relay"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 20}),
    ]
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "the same key again gives back the first order instead of a second one",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }
    give_back = _op("Give a phone back: a return reference, its lines released", 201, "Return")
    give_back["parameters"] = mac
    give_back["responses"]["200"] = {
        "description": "the phone's return already under way",
        "content": {"application/json": {"schema": _ref("Return")}},
    }
    return {
        "/orders/catalog": {
            "get": _op(
                "Models that can be ordered for a line (a replacement: enough slots for its lines)",
                200,
                "OrderCatalog",
                params=[{**_query("line_id", ID), "required": True}],
            )
        },
        "/orders/quote": {
            "post": _op(
                "Price an order (phone and shipping, without and with VAT) and its ship-by time",
                200,
                "Quote",
                body="QuoteRequest",
            )
        },
        "/orders": {
            "get": _op(
                "List orders",
                200,
                "OrderPage",
                params=[
                    *PAGING,
                    _query("account", ID),
                    _query("state", {"enum": list(ORDER_STATES)}),
                    _query("late", {"enum": ["true", "false"]}, "validated and past ship_by"),
                ],
            ),
            "post": _op(
                "Validate an order (the contract must be accepted)",
                201,
                "Order",
                params=[idempotency_key],
                body="OrderCreate",
            ),
        },
        "/orders/{order_id}": {"get": _op("Show an order", 200, "Order", params=order)},
        "/orders/{order_id}/cancel": {
            "post": _op("Cancel an order not yet shipped", 200, "Order", params=order)
        },
        "/orders/{order_id}/shipments": {
            "post": _op(
                "Ship an order with the phone scanned at the warehouse (operator)",
                201,
                "Shipment",
                params=order,
                body="ShipmentCreate",
            )
        },
        "/relay-points": {
            "get": _op(
                "Pick-up points nearest to a postcode or town", 200, "RelayPointList", params=search
            )
        },
        "/relay-points/map.svg": {
            "get": {
                **_op("Map of the town with the pick-up points numbered", 200, None, params=search),
                "responses": {
                    **_op("", 200, None)["responses"],
                    "200": {
                        "description": "an SVG image",
                        "content": {SVG: {"schema": {"type": "string"}}},
                    },
                },
            }
        },
        "/devices/{mac}/return": {"post": give_back},
        "/returns": {
            "get": _op(
                "List returns",
                200,
                "ReturnPage",
                params=[
                    *PAGING,
                    _query("account", ID),
                    _query("state", {"enum": list(RETURN_STATES)}),
                ],
            )
        },
        "/returns/{reference}/receive": {
            "post": _op(
                "The warehouse received the phone: credential revoked (operator)",
                200,
                "Return",
                params=[_path("reference", {"type": "string", "minLength": 1, "maxLength": 32})],
            )
        },
    }
