"""Plain views of orders, quotes, shipments and returns for the API, the CLI and the audit
trail. Money is integer cents with a decimal string beside it, never a float."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from provisioning.db.models import DeviceReturn, Order
from provisioning.orders.money import Prices

if TYPE_CHECKING:
    from provisioning.orders.fulfilment import Shipment


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def order_prices(order: Order) -> Prices:
    """The prices frozen on the order (VAT per item is a function of cents and rate, and the
    database checks that the stored totals add up)."""
    return Prices.compute(
        order.model_label,
        order.model_price_cents,
        f"Shipping ({order.carrier_label})",
        order.shipping_cents,
        order.vat_rate_bp,
    )


def order_view(order: Order, now: datetime) -> dict[str, Any]:
    prices = order_prices(order).view()
    return {
        "id": order.id,
        "account_id": order.account_id,
        "kind": order.kind,
        "state": order.state,
        "line_id": order.line_id,
        "replaced_device": order.replaced_mac,
        "model": order.model_id,
        "model_label": order.model_label,
        "shipping": {
            "carrier": order.carrier,
            "carrier_label": order.carrier_label,
            "relay_point": order.relay_point_id,
            "delivery": {
                "name": order.delivery_name,
                "street": order.delivery_street,
                "postcode": order.delivery_postcode,
                "town": order.delivery_town,
                "country": order.delivery_country,
            },
        },
        "prices": prices,
        "contract_accepted_at": _at(order.contract_accepted_at),
        "contract_version": order.contract_version,
        "validated_at": _at(order.validated_at),
        "ship_by": _at(order.ship_by),
        "late": order.state == "validated" and order.ship_by < now,
        "shipped_at": _at(order.shipped_at),
        "delivered_at": _at(order.delivered_at),
        "cancelled_at": _at(order.cancelled_at),
        "device": order.mac,
        "tracking": order.tracking,
    }


def return_view(row: DeviceReturn) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "mac": row.mac,
        "account_id": row.account_id,
        "order_id": row.order_id,
        "reason": row.reason,
        "state": row.state,
        "created_at": _at(row.created_at),
        "received_at": _at(row.received_at),
    }


def shipment_view(shipment: Shipment, base_url: str) -> dict[str, Any]:
    device = shipment.device
    return {
        "device": {
            "mac": device.mac,
            "model": device.model_id,
            "account_id": device.account_id,
            "state": device.state,
            "config_revision": device.config_revision,
        },
        # The only time this phone's token is handed out: to write into the phone.
        "url": f"{base_url}/{shipment.token}/",
        "tracking": shipment.order.tracking,
        "handovers": [{"line_id": line, "slot": slot} for line, slot in shipment.handovers],
    }
