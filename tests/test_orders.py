"""Orders as domain operations: catalog, prices, delivery, contract, idempotency, replacements,
late orders, cancellation. The clock is passed in, never slept on."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Account, Order
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.errors import (
    ContractNotAccepted,
    DomainError,
    IdempotencyKeyReused,
    InvalidAddress,
    InvalidInput,
    LineHasNoPhone,
    LineHasPhone,
    NotOrderable,
    OrderNotOpen,
    OrderPending,
    TooFewSlots,
    UnknownCarrier,
    UnknownModel,
    UnknownRelayPoint,
)
from provisioning.orders import orders
from provisioning.orders.carriers import Carriers, load_carriers
from provisioning.orders.money import Prices, amount, basis_points, vat_cents
from provisioning.settings import Settings, SettingsError
from tests.conftest import World

PARIS = ZoneInfo("Europe/Paris")
FRIDAY_EVENING = datetime(2026, 11, 27, 18, 0, tzinfo=PARIS)
SATURDAY = datetime(2026, 11, 28, 11, 0, tzinfo=PARIS)
BEFORE_ASCENSION = datetime(2026, 5, 13, 15, 0, tzinfo=PARIS)


@pytest.fixture
def carriers() -> Carriers:
    return load_carriers()


@pytest.fixture
async def alice(sessions: SessionFactory, world: World) -> World:
    """The world, with Alice's delivery address on file."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == world.account_id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
    return world


def dhl(line_id: int, model: str = "yealink-t46u", **extra: Any) -> orders.OrderRequest:
    return orders.OrderRequest(line_id=line_id, model_id=model, carrier="dhl", **extra)


async def place(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    request: orders.OrderRequest,
    **kwargs: Any,
) -> tuple[Order, bool]:
    kwargs.setdefault("accept_contract", True)
    async with sessions() as session, session.begin():
        return await orders.place_order(session, settings, catalog, carriers, request, **kwargs)


# -- money ------------------------------------------------------------------------------------


def test_prices_of_a_phone_and_its_shipping() -> None:
    prices = Prices.compute("Yealink SIP-T46U", 12900, "Shipping (DHL)", 999, 2000)
    view = prices.view()
    assert view["vat_rate"] == "20"
    assert view["items"][1] == {
        "description": "Shipping (DHL)",
        "excl_vat": {"cents": 999, "amount": "9.99"},
        "vat": {"cents": 200, "amount": "2.00"},  # 199.8 rounded half up
        "incl_vat": {"cents": 1199, "amount": "11.99"},
    }
    assert view["total"] == {
        "excl_vat": {"cents": 13899, "amount": "138.99"},
        "vat": {"cents": 2780, "amount": "27.80"},
        "incl_vat": {"cents": 16679, "amount": "166.79"},
    }


def test_money_helpers() -> None:
    assert basis_points(Decimal("5.5")) == 550
    assert vat_cents(999, 550) == 55  # 54.945
    assert vat_cents(10, 2500) == 3  # 2.5 -> 3, half up (not banker's 2)
    assert amount(5) == "0.05" and amount(-5) == "-0.05" and amount(123456) == "1234.56"


@given(phone=st.integers(0, 10**7), shipping=st.integers(0, 10**5), rate=st.integers(0, 10_000))
def test_totals_always_add_up_and_match_exact_arithmetic(
    phone: int, shipping: int, rate: int
) -> None:
    prices = Prices.compute("p", phone, "s", shipping, rate)
    for line in (prices.phone, prices.shipping):
        exact = Fraction(line.excl_cents * rate, 10_000)
        assert abs(line.vat_cents - exact) <= Fraction(1, 2)
    assert prices.total_incl_cents == phone + shipping + prices.total_vat_cents
    assert all(isinstance(v["cents"], int) for v in prices.view()["total"].values())


@pytest.mark.parametrize(
    ("raw", "expected"), [("20", Decimal("20")), ("5.5", Decimal("5.5")), ("0", Decimal("0"))]
)
def test_vat_rate_setting(raw: str, expected: Decimal) -> None:
    assert Settings.from_mapping({"vat_rate": raw}).vat_rate == expected


@pytest.mark.parametrize("raw", ["abc", "120", "-1", "5.555", "NaN", "Infinity"])
def test_bad_vat_rate_names_the_key(raw: str) -> None:
    with pytest.raises(SettingsError, match="PROVISIONING_VAT_RATE"):
        Settings.from_mapping({"vat_rate": raw})


def test_shipping_countries_setting() -> None:
    assert Settings.from_mapping({"shipping_countries": "fr, be"}).shipping_countries == (
        "FR",
        "BE",
    )
    with pytest.raises(SettingsError, match="PROVISIONING_SHIPPING_COUNTRIES"):
        Settings.from_mapping({"shipping_countries": "FR,XX"})


# -- catalog and quotes -----------------------------------------------------------------------


async def test_catalog_for_a_line_without_and_with_a_phone(
    sessions: SessionFactory, catalog: Catalog, world: World
) -> None:
    async with sessions() as session:
        new = await orders.offer(session, catalog, world.line_ids[2])
        replacement = await orders.offer(session, catalog, world.line_ids[0])
    assert new.kind == "new" and new.replaced_mac is None
    ids = [m.id for m in new.models]
    assert ids == ["yealink-t42u", "yealink-t46u", "yealink-t48u", "yealink-t54w"]  # by price
    assert all(m.orderable and m.price_cents for m in new.models)
    assert replacement.kind == "replacement" and replacement.replaced_mac == world.yealink_mac
    assert replacement.lines_on_phone == 2 and [m.id for m in replacement.models] == ids


async def test_quote_to_the_account_address_with_vat(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    async with sessions() as session:
        quote = await orders.quote_order(
            session, settings, catalog, carriers, dhl(alice.line_ids[2]), now=FRIDAY_EVENING
        )
    assert quote.kind == "new" and quote.model.id == "yealink-t46u"
    assert (quote.delivery.name, quote.delivery.street) == ("Alice Martin", "12 rue de la Paix")
    assert (quote.delivery.postcode, quote.delivery.town) == ("75002", "Paris")
    assert quote.prices.shipping.excl_cents == 999
    assert quote.prices.total_incl_cents == 16679
    assert quote.ship_by == datetime(2026, 11, 30, 18, 0, tzinfo=PARIS)
    # Another VAT rate is a setting.
    async with sessions() as session:
        quote = await orders.quote_order(
            session,
            replace(settings, vat_rate=Decimal("5.5")),
            catalog,
            carriers,
            dhl(alice.line_ids[2]),
        )
    assert quote.prices.view()["vat_rate"] == "5.5"
    assert quote.prices.total_vat_cents == vat_cents(12900, 550) + vat_cents(999, 550)


async def test_quote_to_another_address(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    address = {"street": " 3  place Bellecour ", "postcode": "69002", "town": "Lyon"}
    async with sessions() as session:
        quote = await orders.quote_order(
            session, settings, catalog, carriers, dhl(alice.line_ids[2], address=address)
        )
    assert (quote.delivery.street, quote.delivery.postcode, quote.delivery.town) == (
        "3 place Bellecour",
        "69002",
        "Lyon",
    )
    assert quote.delivery.name == "Alice Martin" and quote.delivery.country == "FR"


@pytest.mark.parametrize(
    ("address", "field"),
    [
        ({"street": "1 rue X", "postcode": "7500", "town": "Paris"}, "address.postcode"),
        ({"street": "1 rue X", "postcode": "75 002", "town": "Paris"}, "address.postcode"),
        ({"street": "1 rue X", "postcode": "75002"}, "address.town"),
        ({"street": "", "postcode": "75002", "town": "Paris"}, "address.street"),
        ({"street": "1 rue X\n", "postcode": "75002", "town": "Pa\x07ris"}, "address.town"),
        ({"street": "1 rue X", "postcode": "10115", "town": "Berlin", "country": "DE"},
         "address.country"),
        ({"street": "1 rue X", "postcode": "75002", "town": "Paris", "floor": 3}, "address.floor"),
        ({"street": 12, "postcode": "75002", "town": "Paris"}, "address.street"),
        ({"street": "1 rue \ud800", "postcode": "75002", "town": "Paris"}, "address.street"),
    ],
)  # fmt: skip
async def test_bad_delivery_addresses(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    alice: World,
    address: dict[str, Any],
    field: str,
) -> None:
    async with sessions() as session:
        with pytest.raises(InvalidAddress) as caught:
            await orders.quote_order(
                session, settings, catalog, carriers, dhl(alice.line_ids[2], address=address)
            )
    assert caught.value.field == field and caught.value.status == 422


async def test_other_countries_as_configured(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    address = {
        "street": "Unter den Linden 1",
        "postcode": "10117",
        "town": "Berlin",
        "country": "de",
    }
    async with sessions() as session:
        quote = await orders.quote_order(
            session,
            replace(settings, shipping_countries=("FR", "DE")),
            catalog,
            carriers,
            dhl(alice.line_ids[2], address=address),
        )
    assert quote.delivery.country == "DE"


async def test_an_account_without_address_must_give_one(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, world: World
) -> None:
    async with sessions() as session:
        with pytest.raises(InvalidAddress, match="no delivery address") as caught:
            await orders.quote_order(session, settings, catalog, carriers, dhl(world.line_ids[2]))
    assert caught.value.field == "address"


async def test_mondial_relay_to_a_pick_up_point(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, world: World
) -> None:
    request = orders.OrderRequest(
        line_id=world.line_ids[2],
        model_id="yealink-t42u",
        carrier="mondial-relay",
        relay_point_id="S69001-01",
    )
    async with sessions() as session:
        quote = await orders.quote_order(session, settings, catalog, carriers, request)
    assert quote.relay_point is not None and quote.relay_point.name == "Tabac des Terreaux"
    assert (quote.delivery.street, quote.delivery.town) == ("5 rue Constantine", "Lyon")
    assert quote.prices.shipping.excl_cents == 999
    assert quote.prices.phone.excl_cents == 8900


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"carrier": "ups"}, UnknownCarrier, "carrier"),
        ({"model_id": "acme-9000"}, UnknownModel, "model"),
        ({"model_id": "yealink-t46s"}, NotOrderable, "model"),
        ({"kind": "upgrade"}, InvalidInput, "kind"),
        ({"carrier": "mondial-relay"}, InvalidInput, "relay_point"),
        ({"carrier": "mondial-relay", "relay_point_id": "S99999-99"}, UnknownRelayPoint,
         "relay_point"),
        ({"carrier": "mondial-relay", "relay_point_id": "S75002-01",
          "address": {"street": "x", "postcode": "75002", "town": "Paris"}}, InvalidInput,
         "address"),
        ({"relay_point_id": "S75002-01"}, InvalidInput, "relay_point"),
    ],
)  # fmt: skip
async def test_refused_quotes_name_the_field(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    alice: World,
    change: dict[str, Any],
    error: type[DomainError],
    field: str,
) -> None:
    request = replace(dhl(alice.line_ids[2]), **change)
    async with sessions() as session:
        with pytest.raises(error) as caught:
            await orders.quote_order(session, settings, catalog, carriers, request)
    assert caught.value.field == field


async def test_kind_must_match_the_line(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    async with sessions() as session:
        with pytest.raises(LineHasPhone, match="order a replacement"):
            await orders.quote_order(session, settings, catalog, carriers, dhl(alice.line_ids[0]))
        with pytest.raises(LineHasNoPhone, match="order a new one"):
            await orders.quote_order(
                session, settings, catalog, carriers, dhl(alice.line_ids[2], kind="replacement")
            )


async def test_replacement_onto_a_smaller_model_is_refused(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    cipher: Cipher,
    alice: World,
) -> None:
    """13 lines on a 16-slot T46U: the 12-slot T42U is neither offered nor accepted."""
    async with sessions() as session, session.begin():
        await inventory.assign_line(session, alice.yealink_mac, alice.line_ids[2])
        for n in range(10):
            line = await accounts.create_line(
                session, settings, cipher, alice.account_id, f"+3340000000{n:02d}", password="p"
            )
            await inventory.assign_line(session, alice.yealink_mac, line.id)
    async with sessions() as session:
        found = await orders.offer(session, catalog, alice.line_ids[0])
        assert found.lines_on_phone == 13
        assert [m.id for m in found.models] == ["yealink-t46u", "yealink-t48u", "yealink-t54w"]
        with pytest.raises(TooFewSlots) as caught:
            await orders.quote_order(
                session,
                settings,
                catalog,
                carriers,
                dhl(alice.line_ids[0], "yealink-t42u", kind="replacement"),
            )
    assert caught.value.field == "model" and caught.value.status == 422
    assert "12 line slot(s)" in caught.value.message and "carries 13 lines" in caught.value.message
    async with sessions() as session:
        quote = await orders.quote_order(
            session, settings, catalog, carriers, dhl(alice.line_ids[0], kind="replacement")
        )
    assert quote.lines_to_move == 13 and quote.replaced is not None


# -- placing orders ---------------------------------------------------------------------------


async def test_no_order_without_the_contract(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    for accepted in (False, None, "yes"):
        with pytest.raises(ContractNotAccepted) as caught:
            await place(
                sessions, settings, catalog, carriers, dhl(alice.line_ids[2]),
                accept_contract=accepted,
            )  # fmt: skip
        assert caught.value.field == "accept_contract" and caught.value.status == 422
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (FRIDAY_EVENING, datetime(2026, 11, 30, 18, 0, tzinfo=PARIS)),
        (SATURDAY, datetime(2026, 12, 1, 0, 0, tzinfo=PARIS)),
        (BEFORE_ASCENSION, datetime(2026, 5, 15, 15, 0, tzinfo=PARIS)),
    ],
)
async def test_orders_at_awkward_times(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    alice: World,
    now: datetime,
    expected: datetime,
) -> None:
    order, replayed = await place(
        sessions, settings, catalog, carriers, dhl(alice.line_ids[2]), now=now
    )
    assert not replayed and order.state == "validated"
    assert order.validated_at == now and order.contract_accepted_at == now
    assert order.ship_by == expected
    async with sessions() as session:
        stored = await orders.get_order(session, order.id)
        assert stored.ship_by == expected  # a UTC instant on both engines
        assert await orders.list_orders(session, late_at=expected - timedelta(minutes=1)) == []
        late = await orders.list_orders(session, late_at=expected + timedelta(minutes=1))
        assert [o.id for o in late] == [order.id]


async def test_the_order_freezes_prices_that_add_up(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    order, _ = await place(sessions, settings, catalog, carriers, dhl(alice.line_ids[2]))
    assert (order.model_price_cents, order.shipping_cents) == (12900, 999)
    assert (order.total_excl_cents, order.vat_cents, order.total_incl_cents) == (13899, 2780, 16679)
    assert order.vat_rate_bp == 2000 and order.currency == "EUR"


async def test_the_same_idempotency_key_gives_the_same_order(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    request = dhl(alice.line_ids[2])
    first, replayed1 = await place(
        sessions, settings, catalog, carriers, request, idempotency_key="click-1"
    )
    second, replayed2 = await place(
        sessions, settings, catalog, carriers, request, idempotency_key="click-1"
    )
    assert (replayed1, replayed2) == (False, True) and first.id == second.id
    # The same key for a different order is an error, not the wrong order.
    with pytest.raises(IdempotencyKeyReused):
        await place(
            sessions, settings, catalog, carriers, dhl(alice.line_ids[2], "yealink-t48u"),
            idempotency_key="click-1",
        )  # fmt: skip
    # Another key (or none) for the same line: the line already has a phone on order.
    with pytest.raises(OrderPending):
        await place(sessions, settings, catalog, carriers, request, idempotency_key="click-2")
    with pytest.raises(OrderPending):
        await place(sessions, settings, catalog, carriers, request)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1


@pytest.mark.parametrize("key", ["", "a" * 201, "with space", "é"])
async def test_bad_idempotency_keys(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    carriers: Carriers,
    alice: World,
    key: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await place(
            sessions, settings, catalog, carriers, dhl(alice.line_ids[2]), idempotency_key=key
        )
    assert caught.value.field == "Idempotency-Key"


async def test_one_replacement_at_a_time_per_phone(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    await place(sessions, settings, catalog, carriers, dhl(alice.line_ids[0], kind="replacement"))
    with pytest.raises(OrderPending, match="already being replaced"):
        await place(
            sessions, settings, catalog, carriers, dhl(alice.line_ids[1], kind="replacement")
        )


async def test_cancel(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, carriers: Carriers, alice: World
) -> None:
    order, _ = await place(sessions, settings, catalog, carriers, dhl(alice.line_ids[2]))
    async with sessions() as session, session.begin():
        cancelled = await orders.cancel_order(session, order.id, now=SATURDAY)
    assert cancelled.state == "cancelled" and cancelled.cancelled_at == SATURDAY
    with pytest.raises(OrderNotOpen):
        async with sessions() as session, session.begin():
            await orders.cancel_order(session, order.id)
    # The line can be ordered for again.
    again, _ = await place(sessions, settings, catalog, carriers, dhl(alice.line_ids[2]))
    assert again.id != order.id


# -- carriers are plug-ins --------------------------------------------------------------------


class ExpressCarrier:
    """What a real carrier's plug-in looks like: the same small interface."""

    name = "dhl"
    label = "DHL Express"
    to_relay_point = False

    async def quote(self, destination: Any) -> int:
        return 1490

    async def relay_points(self, postcode: str | None, city: str | None, limit: int) -> Any:
        raise InvalidInput("no pick-up points")

    async def relay_point(self, point_id: str) -> None:
        return None

    async def create_shipment(self, shipment: Any) -> str:
        return f"EXP-{shipment.order_id}"


class _Entry:
    def __init__(self, name: str, factory: Any) -> None:
        self.name, self._factory = name, factory

    def load(self) -> Any:
        return self._factory


async def test_a_carrier_plug_in_replaces_the_embedded_one_without_touching_order_code(
    monkeypatch: pytest.MonkeyPatch,
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    alice: World,
) -> None:
    from provisioning.orders import carriers as carriers_module

    seen: list[str] = []

    def entry_points(group: str) -> list[_Entry]:
        seen.append(group)
        return [_Entry("express", ExpressCarrier)]

    monkeypatch.setattr(carriers_module, "entry_points", entry_points)
    loaded = load_carriers()
    assert seen == ["provisioning.carriers"]
    assert loaded.names() == ["dhl", "mondial-relay"] and loaded.get("dhl").label == "DHL Express"
    order, _ = await place(sessions, settings, catalog, loaded, dhl(alice.line_ids[2]))
    assert (order.shipping_cents, order.carrier_label) == (1490, "DHL Express")

    monkeypatch.setattr(carriers_module, "entry_points", lambda group: [_Entry("bad", object)])
    with pytest.raises(TypeError, match="not a Carrier"):
        load_carriers()
