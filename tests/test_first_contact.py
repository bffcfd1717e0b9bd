"""Per-account policy and first-contact binding, as an operator and a phone live them: a phone
bound to the network it first fetched from, moved to another network (refused, reported),
unlocked by an operator; a phone never seen within its first-contact window."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from provisioning import tokens
from provisioning.db.engine import SessionFactory
from provisioning.db.models import AuditEvent, Device, DeviceBinding, utcnow
from provisioning.security import policy
from provisioning.settings import Settings
from tests.conftest import YEALINK_UA, World
from tests.security_kit import client_from, running
from tests.test_cli import Cli

pytestmark = pytest.mark.usefixtures("world")

OFFICE = "127.0.0.1"  # network 127.0.0.0/24
OFFICE_DESK_2 = "127.0.0.77"
ELSEWHERE = "127.0.11.5"
NEW_OFFICE = "127.0.12.9"


async def fetch(server: Any, address: str, path: str, agent: str = YEALINK_UA) -> tuple[int, bytes]:
    async with (
        client_from(address) as client,
        client.get(server.url(path), headers={"User-Agent": agent}) as resp,
    ):
        return resp.status, await resp.read()


async def api(server: Any, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    async with (
        client_from(OFFICE) as client,
        client.request(
            method,
            server.url("/api/v1" + path),
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        return resp.status, (await resp.json() if resp.content_length else None)


@pytest.fixture
async def operator(sessions: SessionFactory) -> str:
    async with sessions() as session, session.begin():
        return (await tokens.create_token(session, "operator", name="ops"))[1]


async def test_a_phone_moved_to_another_network_is_refused_until_unlocked(
    settings: Settings,
    world: World,
    sessions: SessionFactory,
    operator: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    async with running(settings) as server:
        status, policy_view = await api(
            server,
            "PUT",
            f"/accounts/{world.account_id}/policy",
            operator,
            {"proofs": "token", "binding": "network"},
        )
        assert status == 200 and policy_view["binding"] == "network" and not policy_view["default"]
        assert (await fetch(server, OFFICE, path))[0] == 200  # first contact: bound here
        assert (await fetch(server, OFFICE_DESK_2, path))[0] == 200  # same network
        with caplog.at_level(logging.WARNING, logger="provisioning.security"):
            assert await fetch(server, ELSEWHERE, path) == (404, b"")  # moved: refused
        assert any(
            "phone-refused" in r.getMessage() and ELSEWHERE in r.getMessage()
            for r in caplog.records
        )
        status, view = await api(server, "GET", f"/devices/{world.yealink_mac}/security", operator)
        assert status == 200
        binding = view["binding"]
        assert binding["bound_to"] == "127.0.0.0/24"
        assert (binding["refused_from"], binding["refused_reason"], binding["refusals"]) == (
            ELSEWHERE,
            "elsewhere",
            1,
        )
        assert world.yealink_token not in str(view)
        # Still refused until an operator vouches for the new place.
        assert (await fetch(server, ELSEWHERE, path))[0] == 404
        status, view = await api(server, "POST", f"/devices/{world.yealink_mac}/unlock", operator)
        assert status == 200 and view["binding"]["bound_to"] is None
        assert (await fetch(server, ELSEWHERE, path))[0] == 200  # binds again, there
        assert (await fetch(server, OFFICE, path))[0] == 404  # and the old place is now elsewhere
    async with sessions() as session:
        binding_row = await session.get(
            DeviceBinding, (await _device_id(session, world.yealink_mac))
        )
        assert binding_row is not None and binding_row.bound_to == "127.0.11.0/24"
        actions = set((await session.scalars(select(AuditEvent.action))).all())
    assert {"account.policy.set", "device.unlock"} <= actions


async def test_address_binding_is_stricter_than_network(
    settings: Settings, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        await policy.set_policy(session, world.account_id, "token", binding="address")
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    async with running(settings) as server:
        assert (await fetch(server, OFFICE, path))[0] == 200
        assert (await fetch(server, OFFICE_DESK_2, path))[0] == 404


async def test_binding_refusals_are_not_scanner_misses(
    settings: Settings, world: World, sessions: SessionFactory
) -> None:
    """A moved phone keeps polling: it must be reported, not banned."""
    async with sessions() as session, session.begin():
        await policy.set_policy(session, world.account_id, "token", binding="network")
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    from dataclasses import replace

    async with running(replace(settings, ban_threshold=3)) as server:
        assert (await fetch(server, OFFICE, path))[0] == 200
        statuses = {(await fetch(server, ELSEWHERE, path))[0] for _ in range(10)}
    assert statuses == {404}


async def test_a_phone_unseen_within_its_first_contact_window_needs_re_authorisation(
    settings: Settings, world: World, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        await policy.set_policy(session, world.account_id, "token", first_contact_days=14)
        # Shipped three weeks ago and never plugged in.
        await session.execute(
            update(Device)
            .where(Device.mac == world.yealink_mac)
            .values(created_at=utcnow() - timedelta(days=21))
        )
        # The Linphone was shipped as long ago but was seen: the window no longer matters.
        await session.execute(
            update(Device)
            .where(Device.mac == world.linphone_mac)
            .values(
                created_at=utcnow() - timedelta(days=21), last_seen_at=utcnow() - timedelta(days=20)
            )
        )
    yealink = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    linphone = f"/{world.linphone_token}/linphone.xml"
    async with running(settings) as server:
        assert (await fetch(server, OFFICE, yealink)) == (404, b"")
        assert (await fetch(server, OFFICE, linphone, "Linphone/5.1.65"))[0] == 200
        cli = Cli(settings, tmp_path)
        shown = cli.json("device", "security", world.yealink_mac)
        assert shown["binding"]["refused_reason"] == "expired"
        assert shown["policy"]["first_contact_days"] == 14
        unlocked = cli.json("device", "unlock", world.yealink_mac)
        assert unlocked["binding"]["window_from"] is not None
        assert (await fetch(server, OFFICE, yealink))[0] == 200


async def test_policy_from_the_cli_and_its_errors(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    cli = Cli(settings, tmp_path)
    assert cli.json("policy", "show", str(world.account_id)) == {
        "account_id": world.account_id, "proofs": "token", "binding": "off", "first_contact_days": None, "default": True,
    }  # fmt: skip
    shown = cli.json(
        "policy",
        "set",
        str(world.account_id),
        "certificate+token",
        "--binding",
        "address",
        "--first-contact-days",
        "30",
    )
    assert (shown["proofs"], shown["binding"], shown["first_contact_days"]) == (
        "token+certificate",
        "address",
        30,
    )
    bad = cli.run("policy", "set", str(world.account_id), "password", ok=False)
    assert (
        bad.returncode == 1
        and bad.stderr.startswith("error: proofs:")
        and bad.stderr.count("\n") == 1
    )
    missing = cli.run("policy", "set", "999", "token", ok=False)
    assert missing.returncode == 1 and "999" in missing.stderr
    cleared = cli.json("policy", "clear", str(world.account_id))
    assert cleared["default"] is True


async def test_policy_and_security_routes_are_for_operators(
    settings: Settings, world: World, sessions: SessionFactory, operator: str
) -> None:
    async with sessions() as session, session.begin():
        _, customer = await tokens.create_token(session, "customer", account_id=world.account_id)
    async with running(settings) as server:
        for method, path, body in [
            ("GET", f"/accounts/{world.account_id}/policy", None),
            ("PUT", f"/accounts/{world.account_id}/policy", {"proofs": "any"}),
            ("GET", f"/devices/{world.yealink_mac}/security", None),
            ("POST", f"/devices/{world.yealink_mac}/unlock", None),
            ("POST", f"/devices/{world.yealink_mac}/credentials", {"kind": "token"}),
        ]:
            status, problem = await api(server, method, path, customer, body)
            assert status == 403 and problem["type"].endswith("/operator-only"), path
        status, problem = await api(
            server,
            "PUT",
            f"/accounts/{world.account_id}/policy",
            operator,
            {"proofs": "any", "binding": "city"},
        )
        assert status == 422 and problem["field"] == "binding"
        status, _ = await api(server, "DELETE", f"/accounts/{world.account_id}/policy", operator)
        assert status == 404  # it has none of its own


async def _device_id(session: Any, mac: str) -> int:
    device_id = await session.scalar(select(Device.id).where(Device.mac == mac))
    assert device_id is not None
    return int(device_id)
