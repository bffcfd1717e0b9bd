"""Orders, relay points and returns through the JSON API: the customer's flow, double clicks
(sequential and concurrent), the contract, replacements, the warehouse, tenancy."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from provisioning import accounts, tokens
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Account, Order
from provisioning.devices import inventory
from provisioning.devices.mac import colon_mac
from provisioning.settings import Settings
from tests.conftest import World

NEW_MAC = "001565a0b001"


@dataclass
class Api:
    client: TestClient
    world: World
    operator: str
    alice: str
    bob: str

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> tuple[int, Any, Any]:
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        all_headers.update(headers or {})
        resp = await self.client.request(
            method, "/api/v1" + path, headers=all_headers, json=body, params=params
        )
        text = await resp.text()
        if resp.status >= 400:
            assert resp.content_type == "application/problem+json", (resp.status, text)
        if resp.content_type.endswith("json") and text:
            return resp.status, json.loads(text), resp
        return resp.status, text, resp


@pytest.fixture
async def api(client: TestClient, world: World, sessions: SessionFactory) -> Api:
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == world.account_id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
        _, operator = await tokens.create_token(session, "operator", name="warehouse")
        _, alice = await tokens.create_token(
            session, "customer", account_id=world.account_id, name="alice"
        )
        _, bob = await tokens.create_token(
            session, "customer", account_id=world.other_account_id, name="bob"
        )
    return Api(client, world, operator, alice, bob)


def new_order(api: Api, **extra: Any) -> dict[str, Any]:
    return {
        "line_id": api.world.line_ids[2],
        "model": "yealink-t46u",
        "carrier": "dhl",
        "accept_contract": True,
        **extra,
    }


def floats_in(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats_in(v)]
    return []


async def test_the_customer_orders_a_phone_for_a_line_without_one(api: Api) -> None:
    line = api.world.line_ids[2]
    status, catalog, _ = await api.call("GET", "/orders/catalog", api.alice, line_id=str(line))
    assert status == 200 and catalog["kind"] == "new"
    t46u = next(m for m in catalog["items"] if m["id"] == "yealink-t46u")
    assert t46u["price"]["excl_vat"] == {"cents": 12900, "amount": "129.00"}
    assert t46u["price"]["incl_vat"] == {"cents": 15480, "amount": "154.80"}
    assert {c["name"]: c["delivery"] for c in catalog["carriers"]} == {
        "dhl": "address",
        "mondial-relay": "relay_point",
    }

    body = {k: v for k, v in new_order(api).items() if k != "accept_contract"}
    status, quote, _ = await api.call("POST", "/orders/quote", api.alice, body)
    assert status == 200, quote
    assert quote["shipping"]["delivery"]["street"] == "12 rue de la Paix"
    shipping = quote["prices"]["items"][1]
    assert shipping["excl_vat"] == {"cents": 999, "amount": "9.99"}
    assert shipping["incl_vat"] == {"cents": 1199, "amount": "11.99"}
    assert quote["prices"]["total"]["incl_vat"] == {"cents": 16679, "amount": "166.79"}
    assert quote["prices"]["vat_rate"] == "20" and quote["contract_required"] is True
    assert not [f for f in floats_in(quote["prices"])]
    status, missing, _ = await api.call("GET", "/orders", api.alice)
    assert missing["total"] == 0  # a quote stores nothing

    status, order, _ = await api.call("POST", "/orders", api.alice, new_order(api))
    assert status == 201, order
    assert order["state"] == "validated" and order["late"] is False
    assert order["prices"] == quote["prices"]
    assert (order["model_label"], order["shipping"]["carrier_label"]) == ("Yealink SIP-T46U", "DHL")
    status, shown, _ = await api.call("GET", f"/orders/{order['id']}", api.alice)
    assert shown == order


async def test_no_order_without_the_contract(api: Api) -> None:
    for accepted in (False, None):
        status, problem, _ = await api.call(
            "POST", "/orders", api.alice, new_order(api, accept_contract=accepted)
        )
        assert status == 422
        assert problem["type"].endswith("/contract-not-accepted")
        assert problem["field"] == "accept_contract" and "contract" in problem["detail"]
    body = new_order(api)
    del body["accept_contract"]
    status, problem, _ = await api.call("POST", "/orders", api.alice, body)
    assert status == 422 and problem["type"].endswith("/contract-not-accepted")
    status, page, _ = await api.call("GET", "/orders", api.operator)
    assert page["total"] == 0


async def test_a_double_click_creates_one_order(api: Api) -> None:
    key = {"Idempotency-Key": "order-7f3c9a"}
    first = await api.call("POST", "/orders", api.alice, new_order(api), headers=key)
    second = await api.call("POST", "/orders", api.alice, new_order(api), headers=key)
    assert first[0] == second[0] == 201
    assert first[1]["id"] == second[1]["id"]
    assert "Idempotent-Replayed" not in first[2].headers
    assert second[2].headers["Idempotent-Replayed"] == "true"
    # The same key with another body: refused, not answered with the wrong order.
    status, problem, _ = await api.call(
        "POST", "/orders", api.alice, new_order(api, model="yealink-t48u"), headers=key
    )
    assert status == 422 and problem["type"].endswith("/idempotency-key-reused")
    assert problem["field"] == "Idempotency-Key"
    # Without the key, the second click meets the first order.
    status, problem, _ = await api.call("POST", "/orders", api.alice, new_order(api))
    assert status == 409 and problem["type"].endswith("/order-pending")
    status, page, _ = await api.call("GET", "/orders", api.operator)
    assert page["total"] == 1


@pytest.mark.parametrize("kind", ["new", "replacement"])
@pytest.mark.parametrize("same_key", [True, False])
async def test_concurrent_submissions_create_one_order(
    api: Api, sessions: SessionFactory, same_key: bool, kind: str
) -> None:
    def headers(n: int) -> dict[str, str]:
        return {"Idempotency-Key": "dbl-click" if same_key else f"tab-{n}"}

    body = new_order(api)
    if kind == "replacement":
        body = new_order(api, line_id=api.world.line_ids[0], kind="replacement")
    results = await asyncio.gather(
        *(api.call("POST", "/orders", api.alice, body, headers=headers(n)) for n in range(4))
    )
    statuses = sorted(status for status, _, _ in results)
    if same_key:
        assert statuses == [201] * 4
        assert len({body["id"] for _, body, _ in results}) == 1
    else:
        assert statuses == [201, 409, 409, 409]
        assert all(
            body["type"].endswith("/order-pending") for status, body, _ in results if status == 409
        )
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1


async def test_replacement_onto_a_smaller_model(
    api: Api, sessions: SessionFactory, cipher: Cipher
) -> None:
    w = api.world
    async with sessions() as session, session.begin():
        await inventory.assign_line(session, w.yealink_mac, w.line_ids[2])
        for n in range(10):
            line = await accounts.create_line(
                session, Settings(), cipher, w.account_id, f"+3350000001{n:02d}", password="p"
            )
            await inventory.assign_line(session, w.yealink_mac, line.id)
    status, catalog, _ = await api.call(
        "GET", "/orders/catalog", api.alice, line_id=str(w.line_ids[0])
    )
    assert catalog["kind"] == "replacement" and catalog["lines_on_phone"] == 13
    assert catalog["replaced_device"] == w.yealink_mac
    assert "yealink-t42u" not in [m["id"] for m in catalog["items"]]
    body = {
        "line_id": w.line_ids[0],
        "model": "yealink-t42u",
        "carrier": "dhl",
        "kind": "replacement",
        "accept_contract": True,
    }
    status, problem, _ = await api.call("POST", "/orders", api.alice, body)
    assert status == 422 and problem["type"].endswith("/too-few-slots")
    assert problem["field"] == "model" and "13 lines" in problem["detail"]
    status, order, _ = await api.call(
        "POST", "/orders", api.alice, {**body, "model": "yealink-t48u"}
    )
    assert status == 201 and order["kind"] == "replacement"
    assert order["replaced_device"] == w.yealink_mac


async def test_relay_points_and_the_map_of_the_town(api: Api) -> None:
    status, found, _ = await api.call("GET", "/relay-points", api.alice, postcode="75002")
    assert status == 200 and found["sample_data"] is True
    assert found["place"]["label"] == "75002 Paris"
    items = found["items"]
    assert [p["number"] for p in items] == list(range(1, len(items) + 1))
    distances = [p["distance_m"] for p in items]
    assert distances == sorted(distances) and distances[0] < 500
    first = items[0]
    assert first["id"] == "S75002-01" and first["address"]["postcode"] == "75002"
    assert isinstance(first["latitude"], float) and isinstance(first["longitude"], float)
    assert first["opening_hours"]["monday"] == [{"opens": "07:00", "closes": "20:00"}]
    assert first["opening_hours"]["sunday"] == []
    assert found["map"] == "/api/v1/relay-points/map.svg?postcode=75002"

    status, by_city, _ = await api.call("GET", "/relay-points", api.alice, city="villeurbanne")
    assert by_city["items"][0]["address"]["town"] == "Villeurbanne"
    status, svg, resp = await api.call("GET", "/relay-points/map.svg", api.alice, city="Lyon")
    assert status == 200 and resp.content_type == "image/svg+xml"
    assert svg.startswith("<svg ") and "Plan de Lyon" in svg
    assert ">1</text>" in svg and "Tabac des Terreaux" in svg

    for params, code, field in [
        ({"postcode": "7500"}, "invalid-input", "postcode"),
        ({}, "invalid-input", "postcode"),
        ({"postcode": "75002", "city": "Paris"}, "invalid-input", "postcode"),
        ({"postcode": "97400"}, "unknown-place", "postcode"),
        ({"city": "Brest"}, "unknown-place", "city"),
        ({"city": "Paris", "carrier": "dhl"}, "invalid-input", "carrier"),
        ({"city": "Paris", "limit": "0"}, "invalid-input", "limit"),
    ]:
        status, problem, _ = await api.call("GET", "/relay-points", api.alice, **params)
        assert problem["type"].endswith("/" + code) and problem.get("field") == field, params

    body = new_order(api, carrier="mondial-relay", relay_point=first["id"])
    status, order, _ = await api.call(
        "POST", "/orders", api.bob, {**body, "line_id": api.world.other_line_id}
    )
    assert status == 201, order
    assert order["shipping"]["relay_point"] == "S75002-01"
    assert order["shipping"]["delivery"]["name"] == "Bob Durand"


async def test_the_warehouse_ships_and_the_phone_boots(api: Api) -> None:
    status, order, _ = await api.call("POST", "/orders", api.alice, new_order(api))
    path = f"/orders/{order['id']}/shipments"
    status, problem, _ = await api.call("POST", path, api.alice, {"mac": NEW_MAC})
    assert status == 403 and problem["type"].endswith("/operator-only")
    status, shipment, _ = await api.call(
        "POST", path, api.operator, {"mac": colon_mac(NEW_MAC).upper(), "tracking": "JJD12345"}
    )
    assert status == 201, shipment
    assert shipment["device"]["mac"] == NEW_MAC and shipment["tracking"] == "JJD12345"
    assert shipment["order"]["state"] == "shipped" and shipment["order"]["device"] == NEW_MAC
    url = shipment["url"]
    assert re.fullmatch(r"http://phones\.test:8080/[A-Za-z0-9_-]{32}/", url)
    status, device, _ = await api.call("GET", f"/devices/{NEW_MAC}", api.alice)
    assert device["slots"][0]["line_id"] == api.world.line_ids[2] and "url" not in device
    status, problem, _ = await api.call("POST", path, api.operator, {"mac": "001565a0b002"})
    assert status == 409 and problem["type"].endswith("/order-not-open")

    token = url.rstrip("/").rsplit("/", 1)[1]
    agent = f"Yealink SIP-T46U 108.86.0.20 {colon_mac(NEW_MAC)}"
    resp = await api.client.get(f"/{token}/{NEW_MAC}.cfg", headers={"User-Agent": agent})
    assert resp.status == 200 and "account.1.password = secret-3" in await resp.text()
    status, delivered, _ = await api.call("GET", f"/orders/{order['id']}", api.alice)
    assert delivered["state"] == "delivered"


async def test_late_orders_are_listed(api: Api, sessions: SessionFactory) -> None:
    from datetime import timedelta

    from provisioning.db.models import utcnow

    status, order, _ = await api.call("POST", "/orders", api.alice, new_order(api))
    status, page, _ = await api.call("GET", "/orders", api.operator, late="true")
    assert page["total"] == 0
    async with sessions() as session, session.begin():
        await session.execute(
            update(Order)
            .where(Order.id == order["id"])
            .values(ship_by=utcnow() - timedelta(hours=1))
        )
    status, page, _ = await api.call("GET", "/orders", api.operator, late="true")
    assert [o["id"] for o in page["items"]] == [order["id"]] and page["items"][0]["late"]
    status, page, _ = await api.call("GET", "/orders", api.operator, state="shipped")
    assert page["total"] == 0
    status, problem, _ = await api.call("GET", "/orders", api.operator, late="maybe")
    assert status == 422 and problem["field"] == "late"


async def test_returns_through_the_api(api: Api) -> None:
    mac = api.world.yealink_mac
    status, ret, _ = await api.call("POST", f"/devices/{mac}/return", api.alice)
    assert status == 201 and re.fullmatch(r"RT-[A-Z2-9]{4}-[A-Z2-9]{4}", ret["reference"])
    status, again, _ = await api.call("POST", f"/devices/{mac}/return", api.alice)
    assert status == 200 and again == ret
    status, device, _ = await api.call("GET", f"/devices/{mac}", api.alice)
    assert device["state"] == "to_return" and device["slots"] == []
    status, page, _ = await api.call("GET", "/returns", api.alice)
    assert [r["reference"] for r in page["items"]] == [ret["reference"]]
    path = f"/returns/{ret['reference']}/receive"
    status, problem, _ = await api.call("POST", path, api.alice)
    assert status == 403
    status, received, _ = await api.call("POST", path, api.operator)
    assert status == 200 and received["state"] == "received"
    status, problem, _ = await api.call("POST", path, api.operator)
    assert status == 409 and problem["type"].endswith("/return-not-open")
    # Received, it is no longer Alice's phone.
    status, _, _ = await api.call("GET", f"/devices/{mac}", api.alice)
    assert status == 404
    status, problem, _ = await api.call("POST", "/returns/RT-0000-0000/receive", api.operator)
    assert status == 404


async def test_another_account_is_like_a_missing_one(api: Api) -> None:
    """Bob against Alice's line, order, phone: the same 404 as for things that do not exist."""
    w = api.world
    status, order, _ = await api.call("POST", "/orders", api.alice, new_order(api))
    alice_line, missing_line = w.line_ids[2], 999_999
    cases = [
        ("GET", "/orders/catalog", None, {"line_id": "{line}"}),
        (
            "POST",
            "/orders/quote",
            {**new_order(api, line_id="{line}"), "accept_contract": None},
            {},
        ),
        ("POST", "/orders", new_order(api, line_id="{line}"), {}),
        ("GET", "/orders/{order}", None, {}),
        ("POST", "/orders/{order}/cancel", None, {}),
        ("POST", "/devices/{mac}/return", None, {}),
        ("GET", "/orders", None, {"account": str(w.account_id)}),
        ("GET", "/returns", None, {"account": str(w.account_id)}),
    ]
    for method, path, body, params in cases:
        answers = []
        for line, order_id, mac in [
            (alice_line, order["id"], w.yealink_mac),
            (missing_line, 999_999, "0015659fffff"),
        ]:
            filled_body = (
                {k: line if v == "{line}" else v for k, v in body.items() if v is not None}
                if body
                else None
            )
            filled_params = {k: str(line) if v == "{line}" else v for k, v in params.items()}
            filled_path = path.replace("{order}", str(order_id)).replace("{mac}", mac)
            status, problem, _ = await api.call(
                method, filled_path, api.bob, filled_body, **filled_params
            )
            answers.append((status, problem["type"], problem["title"]))
            if "account" in params:
                break
        assert answers[0][0] == 404, (method, path, answers)
        assert len(set(answers)) == 1, (method, path, answers)
    status, shown, _ = await api.call("GET", f"/orders/{order['id']}", api.alice)
    assert shown["state"] == "validated"
    status, page, _ = await api.call("GET", "/orders", api.bob)
    assert page["total"] == 0


async def test_cancel_through_the_api(api: Api) -> None:
    status, order, _ = await api.call("POST", "/orders", api.alice, new_order(api))
    status, cancelled, _ = await api.call("POST", f"/orders/{order['id']}/cancel", api.alice)
    assert status == 200 and cancelled["state"] == "cancelled"
    status, problem, _ = await api.call("POST", f"/orders/{order['id']}/cancel", api.alice)
    assert status == 409 and problem["type"].endswith("/order-not-open")
