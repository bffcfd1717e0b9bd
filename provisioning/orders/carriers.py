"""Carriers are plug-ins behind one small interface: quote a delivery, find pick-up points,
create a shipment (which gives the tracking number). Order code sees only `Carrier`.

The embedded carriers work offline: DHL delivers to an address, Mondial Relay to a pick-up point
from the sample directory shipped in `data/`; both charge the service's flat 9.99 EUR excl. VAT
and make up tracking numbers in each carrier's format, booking no real parcel. A real carrier
is a class with the same methods, published by any installed package under the entry point
group `provisioning.carriers` (a callable with no argument returning the carrier); it replaces
the embedded carrier of the same name."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from provisioning.errors import InvalidInput, UnknownCarrier
from provisioning.orders.addresses import DeliveryAddress
from provisioning.orders.money import SHIPPING_CENTS
from provisioning.orders.relay_points import RelayPoint, SampleDirectory, Search

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "provisioning.carriers"


@dataclass(frozen=True)
class ShipmentRequest:
    order_id: int
    mac: str
    destination: DeliveryAddress
    relay_point_id: str | None


@runtime_checkable
class Carrier(Protocol):
    name: str  # stable id stored with orders: "dhl", "mondial-relay"
    label: str  # shown to people: "DHL"
    to_relay_point: bool  # True: the parcel waits at a pick-up point; False: at an address

    async def quote(self, destination: DeliveryAddress) -> int:
        """Price of one phone's delivery in cents, excluding VAT."""
        ...

    async def relay_points(self, postcode: str | None, city: str | None, limit: int) -> Search:
        """Pick-up points nearest to a postcode or town, nearest first."""
        ...

    async def relay_point(self, point_id: str) -> RelayPoint | None: ...

    async def create_shipment(self, shipment: ShipmentRequest) -> str:
        """Book the parcel; returns its tracking number."""
        ...


class DhlCarrier:
    name = "dhl"
    label = "DHL"
    to_relay_point = False

    async def quote(self, destination: DeliveryAddress) -> int:
        return SHIPPING_CENTS

    async def relay_points(self, postcode: str | None, city: str | None, limit: int) -> Search:
        raise InvalidInput("carrier: DHL delivers to an address, not to pick-up points")

    async def relay_point(self, point_id: str) -> RelayPoint | None:
        return None

    async def create_shipment(self, shipment: ShipmentRequest) -> str:
        # DHL Parcel's format: JJD and 18 digits.
        return "JJD" + "".join(secrets.choice("0123456789") for _ in range(18))


class MondialRelayCarrier:
    name = "mondial-relay"
    label = "Mondial Relay"
    to_relay_point = True

    def __init__(self, directory: SampleDirectory | None = None) -> None:
        self.directory = directory or SampleDirectory()

    async def quote(self, destination: DeliveryAddress) -> int:
        return SHIPPING_CENTS

    async def relay_points(self, postcode: str | None, city: str | None, limit: int) -> Search:
        place = self.directory.locate(postcode, city)
        return Search(place, self.directory.nearest(place, limit), self.directory.sample)

    async def relay_point(self, point_id: str) -> RelayPoint | None:
        return self.directory.get(point_id)

    async def create_shipment(self, shipment: ShipmentRequest) -> str:
        # Mondial Relay's expedition numbers: 8 digits.
        return "".join(secrets.choice("0123456789") for _ in range(8))


class Carriers:
    """The carriers one application offers, by name."""

    def __init__(self, carriers: Iterable[Carrier]) -> None:
        self._by_name = {carrier.name: carrier for carrier in carriers}

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Carrier:
        carrier = self._by_name.get(name)
        if carrier is None:
            raise UnknownCarrier(f"carrier: one of {', '.join(self._by_name)}", field="carrier")
        return carrier

    def relay_carrier(self, name: str | None = None) -> Carrier:
        """The named carrier if it delivers to pick-up points, else the first that does."""
        if name:
            carrier = self.get(name)
            if not carrier.to_relay_point:
                raise InvalidInput(
                    f"carrier: {carrier.label} delivers to an address, not to pick-up points",
                    field="carrier",
                )
            return carrier
        for carrier in self._by_name.values():
            if carrier.to_relay_point:
                return carrier
        raise UnknownCarrier("no carrier delivers to pick-up points", field="carrier")


def embedded_carriers() -> list[Carrier]:
    return [DhlCarrier(), MondialRelayCarrier()]


def load_carriers() -> Carriers:
    """The embedded carriers, replaced or completed by installed plug-ins."""
    carriers = {carrier.name: carrier for carrier in embedded_carriers()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        carrier = entry.load()()
        if not isinstance(carrier, Carrier):
            raise TypeError(f"carrier plug-in {entry.name}: not a Carrier")
        log.info("carrier plug-in %s: %s", entry.name, carrier.label)
        carriers[carrier.name] = carrier
    return Carriers(carriers.values())
