"""The operator's orders and returns commands as scripts use them: a real subprocess, --json."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Account, Order, utcnow
from provisioning.devices.catalog import Catalog
from provisioning.orders import orders
from provisioning.orders.carriers import load_carriers
from provisioning.settings import Settings
from tests.conftest import World
from tests.test_cli import Cli

NEW_MAC = "001565a0c001"


@pytest.fixture
def cli(settings: Settings, sessions: SessionFactory, tmp_path: Path) -> Cli:
    return Cli(settings, tmp_path)


async def _place(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World, late: bool
) -> int:
    async with sessions() as session, session.begin():
        await session.execute(
            update(Account)
            .where(Account.id == world.account_id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
        request = orders.OrderRequest(world.line_ids[2], "yealink-t46u", "dhl")
        order, _ = await orders.place_order(
            session, settings, catalog, load_carriers(), request, accept_contract=True
        )
        if late:
            await session.execute(
                update(Order)
                .where(Order.id == order.id)
                .values(ship_by=utcnow() - timedelta(hours=2))
            )
        return order.id


async def test_orders_and_returns_from_the_command_line(
    cli: Cli, sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World
) -> None:
    order_id = await _place(sessions, settings, catalog, world, late=True)
    listed = await asyncio.to_thread(cli.json, "order", "list", "--state", "validated")
    assert [o["id"] for o in listed] == [order_id]
    late = await asyncio.to_thread(cli.json, "order", "late")
    assert [o["id"] for o in late] == [order_id] and late[0]["late"] is True
    human = (await asyncio.to_thread(cli.run, "order", "late")).stdout
    assert f"{order_id}\tnew\tvalidated LATE\taccount {world.account_id}" in human
    assert (
        await asyncio.to_thread(cli.run, "order", "list", "--state", "shipped")
    ).stdout.strip() == "no orders"

    shipped = await asyncio.to_thread(cli.json, "order", "ship", str(order_id), NEW_MAC)
    assert shipped["device"]["mac"] == NEW_MAC and shipped["order"]["state"] == "shipped"
    assert shipped["url"].startswith("http://prov.example.net/")
    assert shipped["tracking"].startswith("JJD")
    shown = await asyncio.to_thread(cli.json, "order", "show", str(order_id))
    assert shown["device"] == NEW_MAC and shown["late"] is False
    assert await asyncio.to_thread(cli.json, "order", "late") == []
    again = await asyncio.to_thread(
        cli.run, "order", "ship", str(order_id), "001565a0c002", ok=False
    )
    assert again.returncode == 1 and again.stderr.startswith("error: order ")
    assert "Traceback" not in again.stderr and len(again.stderr.splitlines()) == 1

    reference = (await asyncio.to_thread(cli.run, "return", "create", NEW_MAC)).stdout.strip()
    assert reference.startswith("RT-")
    awaiting = await asyncio.to_thread(cli.json, "return", "list", "--state", "awaiting")
    assert [(r["reference"], r["mac"]) for r in awaiting] == [(reference, NEW_MAC)]
    received = await asyncio.to_thread(cli.json, "return", "receive", NEW_MAC)
    assert received["reference"] == reference and received["state"] == "received"
    device = json.loads(
        (await asyncio.to_thread(cli.run, "device", "show", NEW_MAC, "--json")).stdout
    )
    assert device["state"] == "returned" and device["account_id"] is None
    bad = await asyncio.to_thread(cli.run, "return", "receive", reference, ok=False)
    assert bad.returncode == 1 and "already received" in bad.stderr


def test_cancel_and_errors(cli: Cli) -> None:
    missing = cli.run("order", "cancel", "999", ok=False)
    assert missing.returncode == 1 and missing.stderr == "error: order 999 not found\n"
    assert cli.run("order", "list", "--state", "lost", ok=False).returncode == 2
