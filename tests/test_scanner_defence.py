"""Scanner defence as an attacker meets it: real sockets from distinct loopback addresses against a
real server. Thousands of guesses yield nothing and a ban; the real phone elsewhere keeps being
served; the ban says nothing about which MACs exist; operators see and lift bans; every instance
on the database honours them."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from dataclasses import replace
from pathlib import Path

import netaddr
import pytest
from sqlalchemy import select, text

from provisioning import tokens
from provisioning.db.engine import SessionFactory
from provisioning.db.models import AuditEvent, SourceBan, SourceMisses
from provisioning.phones.upkeep import sync_bans
from provisioning.security import bans
from provisioning.security.bans import BanRules, Miss, record_miss
from provisioning.security.sources import source_of
from provisioning.settings import Settings
from tests.conftest import YEALINK_UA, World
from tests.security_kit import ATTACKER_ADDRESS, PHONE_ADDRESS, Server, client_from, running
from tests.test_cli import Cli

pytestmark = pytest.mark.usefixtures("world")


@pytest.fixture
def strict(settings: Settings) -> Settings:
    # A day-long window: a test never straddles two windows (which would lower the estimate).
    return replace(
        settings, ban_threshold=20, ban_network_threshold=100, ban_seconds=600, ban_window=86_400
    )


def guesses(world: World, count: int) -> list[str]:
    """What a scanner sends: MACs of the vendor's prefix (the real one among them), with no
    token, random tokens, the real phone's token on other MACs, query-string tokens."""
    rng = random.Random(20261126)
    paths = []
    for n in range(count):
        mac = world.yealink_mac if n % 97 == 0 else f"001565{rng.getrandbits(24):06x}"
        kind = n % 4
        if kind == 0:
            paths.append(f"/{mac}.cfg")
        elif kind == 1:
            paths.append(f"/{secrets.token_urlsafe(24)}/{mac}.cfg")
        elif kind == 2:
            paths.append(f"/{mac}.cfg?token={secrets.token_urlsafe(24)}")
        else:
            paths.append(f"/{secrets.token_urlsafe(24)}/y000000000108.cfg")
    return paths


async def test_ten_thousand_guesses_give_nothing_and_a_ban_while_the_phone_is_served(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    async with running(strict) as server:
        phone_path = server.url(f"/{world.yealink_token}/{world.yealink_mac}.cfg")
        attacker, phone = client_from(ATTACKER_ADDRESS), client_from(PHONE_ADDRESS)
        statuses: dict[int, int] = {}
        leaked = 0
        served = 0

        async def guess(path: str) -> None:
            nonlocal leaked
            async with attacker.get(server.url(path), headers={"User-Agent": YEALINK_UA}) as resp:
                body = await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if body or resp.status == 200:
                    leaked += len(body) + 1

        started = time.monotonic()
        async with attacker, phone:
            paths = guesses(world, 10_000)
            for start in range(0, len(paths), 500):
                await asyncio.gather(*(guess(p) for p in paths[start : start + 500]))
                # The real phone, from its own address and network, between two waves.
                async with phone.get(phone_path, headers={"User-Agent": YEALINK_UA}) as resp:
                    assert resp.status == 200
                    assert "account.1.password = secret-1" in await resp.text()
                    served += 1
        elapsed = time.monotonic() - started

    assert leaked == 0, "the scanner got bytes"
    assert sum(statuses.values()) == 10_000
    assert set(statuses) <= {403, 404}
    assert statuses[403] >= 9_900, statuses
    assert served == 20
    async with sessions() as session:
        banned = {b.source for b in await bans.active_bans(session)}
    assert ATTACKER_ADDRESS in banned
    assert not banned & {PHONE_ADDRESS, "127.0.0.0/24"}
    assert elapsed < 60, f"the scan took {elapsed:.1f}s"


async def test_a_banned_source_gets_403_for_everything(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
    async with running(strict) as server, client_from(ATTACKER_ADDRESS) as attacker:
        for _ in range(20):
            path = f"/{secrets.token_urlsafe(24)}/{world.yealink_mac}.cfg"
            async with attacker.get(server.url(path)) as resp:
                assert resp.status == 404
        valid = [
            f"/{world.yealink_token}/{world.yealink_mac}.cfg",  # even with the right token
            "/firmware/anything.rom",
            "/api/v1/openapi.json",
            "/",
        ]
        for path in valid:
            async with attacker.get(server.url(path)) as resp:
                assert (resp.status, await resp.read()) == (403, b"")
        headers = {"Authorization": f"Bearer {operator}"}
        async with attacker.get(server.url("/api/v1/security/bans"), headers=headers) as resp:
            assert resp.status == 403


def phone_ua(mac: str) -> str:
    """A Yealink User-Agent naming `mac`: with it a request looks like a phone (plausible)."""
    return "Yealink SIP-T46U 108.86.0.20 " + ":".join(mac[i : i + 2] for i in range(0, 12, 2))


async def test_the_ban_falls_at_the_same_request_for_real_and_guessed_macs(
    strict: Settings, world: World
) -> None:
    """If misses on a registered MAC counted differently, the moment of the ban would tell a
    scanner which MACs exist. Each way of asking, with the real MAC and with a guessed one, from
    an address (and network) of its own."""

    async def requests_until_banned(
        server: Server, address: str, paths: list[str], agents: list[str]
    ) -> int:
        async with client_from(address) as client:
            for n, (path, agent) in enumerate(zip(paths, agents, strict=True), 1):
                async with client.get(server.url(path), headers={"User-Agent": agent}) as resp:
                    if resp.status == 403:
                        return n
                    assert (resp.status, await resp.read()) == (404, b"")
        return 0  # never banned

    real, guessed = world.yealink_mac, "001565123456"
    other_ua = phone_ua("001565000001")  # a phone User-Agent naming another MAC
    scan = [f"001565{n:06x}" for n in range(0x100, 0x200)]  # new MACs, one per request
    with_real = [*scan[:10], real, *scan[11:]]
    async with running(strict) as server:
        # Full misses (no credential, and not what a phone sends): 20 of them.
        full = {
            address: await requests_until_banned(
                server, address, [f"/{mac}.cfg"] * 200, [other_ua] * 200
            )
            for address, mac in (("127.0.3.1", real), ("127.0.4.1", guessed))
        }
        token = [f"/{'B' * 32}/{real}.cfg"] * 200
        full["127.0.5.1"] = await requests_until_banned(
            server, "127.0.5.1", token, [other_ua] * 200
        )
        # A new MAC at each request, each behind a User-Agent naming it: a quarter each.
        scanned = {
            address: await requests_until_banned(
                server, address, [f"/{mac}.cfg" for mac in macs], [phone_ua(mac) for mac in macs]
            )
            for address, macs in (("127.0.10.1", with_real), ("127.0.11.1", scan))
        }
        # One MAC asked again and again by what looks like its phone: counted once.
        again = {
            address: await requests_until_banned(
                server, address, [f"/{mac}.cfg"] * 200, [phone_ua(mac)] * 200
            )
            for address, mac in (("127.0.12.1", real), ("127.0.13.1", guessed))
        }
    assert set(full.values()) == {21}, full
    assert set(scanned.values()) == {81}, scanned
    assert set(again.values()) == {0}, again


async def test_many_addresses_of_one_network_ban_the_network(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    async with running(strict) as server:
        for host in range(1, 11):  # 10 addresses x 10 misses: under 20 each, 100 together
            async with client_from(f"127.0.2.{host}") as client:
                for _ in range(10):
                    async with client.get(server.url("/001565abcdef.cfg")) as resp:
                        assert resp.status in (403, 404)
        async with (
            client_from("127.0.2.200") as newcomer,
            newcomer.get(server.url("/001565abcdef.cfg")) as resp,
        ):
            assert resp.status == 403
        async with client_from(PHONE_ADDRESS) as phone:
            path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
            async with phone.get(server.url(path)) as resp:
                assert resp.status == 200
    async with sessions() as session:
        assert "127.0.2.0/24" in {b.source for b in await bans.active_bans(session)}


async def test_bans_are_logged_for_fail2ban_without_secrets(
    strict: Settings, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    token = secrets.token_urlsafe(24)
    with caplog.at_level(logging.INFO, logger="provisioning.security"):
        async with running(strict) as server, client_from(ATTACKER_ADDRESS) as attacker:
            for _ in range(20):
                async with attacker.get(server.url(f"/{token}/{world.yealink_mac}.cfg")):
                    pass
    lines = [r.getMessage() for r in caplog.records]
    assert f"phone-miss host={ATTACKER_ADDRESS} reason=bad-token" in lines
    assert any(
        line.startswith(f"phone-ban host={ATTACKER_ADDRESS} source={ATTACKER_ADDRESS} seconds=600")
        for line in lines
    )
    assert not any(token in line for line in lines)


async def test_operators_list_and_lift_bans_with_the_cli_and_the_api(
    strict: Settings, world: World, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
        _, customer = await tokens.create_token(session, "customer", account_id=world.account_id)
        rules = BanRules.from_settings(strict)
        for address in ("127.0.7.7", "127.0.8.8"):
            for _ in range(20):
                await record_miss(session, source_of(address), Miss.BAD_TOKEN, rules)  # type: ignore[arg-type]
    cli = Cli(strict, tmp_path)
    listed = cli.json("ban", "list")
    assert {b["source"] for b in listed} == {"127.0.7.7", "127.0.8.8"}
    assert all(b["kind"] == "address" and b["misses"] >= 20 for b in listed)
    assert json.loads(cli.run("ban", "lift", "127.0.7.7", "--json").stdout)["lifted"] is True
    failed = cli.run("ban", "lift", "127.0.7.7", ok=False)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1

    async with running(strict) as server, client_from(PHONE_ADDRESS) as client:
        await sync_bans(server.guard, server.services.read_sessions)
        url = server.url("/api/v1/security/bans")
        async with client.get(url, headers={"Authorization": f"Bearer {customer}"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["type"].endswith("/operator-only")
        async with client.get(url, headers={"Authorization": f"Bearer {operator}"}) as resp:
            assert [b["source"] for b in (await resp.json())["items"]] == ["127.0.8.8"]
        headers = {"Authorization": f"Bearer {operator}"}
        async with client.delete(url, params={"source": "127.0.8.8"}, headers=headers) as resp:
            assert resp.status == 204
        assert not len(server.guard.bans)
        async with client.delete(url, params={"source": "127.0.8.8"}, headers=headers) as resp:
            assert resp.status == 404
        async with client.delete(url, params={"source": "not-an-ip"}, headers=headers) as resp:
            assert resp.status == 422
    async with sessions() as session:
        actions = (await session.scalars(select(AuditEvent.action))).all()
        assert list(actions).count("ban.lift") == 2
        # Lifting forgets the misses too: the next miss does not ban again at once.
        assert await session.get(SourceMisses, "127.0.8.8") is None


async def test_a_ban_made_by_one_instance_holds_on_another(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    async with running(strict) as first, running(strict) as second:
        second.guard.sync_interval = 0.1
        async with client_from(ATTACKER_ADDRESS) as attacker:
            for _ in range(20):
                async with attacker.get(first.url("/001565000777.cfg")) as resp:
                    assert resp.status == 404
            async with attacker.get(first.url("/001565000777.cfg")) as resp:
                assert resp.status == 403
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                async with attacker.get(second.url("/001565000777.cfg")) as resp:
                    if resp.status == 403:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the second instance never learnt of the ban")


async def test_misses_counted_by_all_instances_together(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    async with (
        running(strict) as first,
        running(strict) as second,
        client_from(ATTACKER_ADDRESS) as attacker,
    ):
        for n in range(20):
            server = first if n % 2 else second
            async with attacker.get(server.url("/001565000778.cfg")) as resp:
                assert resp.status == 404
    async with sessions() as session:
        assert await session.get(SourceBan, ATTACKER_ADDRESS) is not None


async def test_sliding_window_weighs_the_previous_window(
    strict: Settings, sessions: SessionFactory
) -> None:
    rules = replace(BanRules.from_settings(strict), threshold=10, window=100)
    source = source_of("127.0.9.9")
    assert source is not None
    async with sessions() as session, session.begin():
        base = 1_000_000 * 100.0
        for _ in range(8):  # 8 misses late in one window...
            assert not await record_miss(session, source, Miss.BAD_TOKEN, rules, now=base + 90)
        # ...half a window later 4 of them still count: 4 + 5 < 10
        for _ in range(5):
            assert not await record_miss(session, source, Miss.BAD_TOKEN, rules, now=base + 150)
        # one more with only 40% of the previous window left: 3.2 + 6 < 10, 3.2 + 7 >= 10
        assert not await record_miss(session, source, Miss.BAD_TOKEN, rules, now=base + 160)
        made = await record_miss(session, source, Miss.BAD_TOKEN, rules, now=base + 160)
        assert [b.source for b in made] == ["127.0.9.9"]
    async with sessions() as session:
        row = await session.get(SourceMisses, "127.0.9.9")
        assert row is not None and (row.bucket, row.previous, row.points) == (1_000_001, 32, 28)


async def test_exempt_networks_are_never_banned(strict: Settings, world: World) -> None:
    exempt = replace(strict, ban_exempt=netaddr.IPSet(["127.0.1.0/24"]))
    async with running(exempt) as server, client_from(ATTACKER_ADDRESS) as client:
        for _ in range(40):
            async with client.get(server.url("/001565000779.cfg")) as resp:
                assert resp.status == 404


async def test_a_database_failure_while_counting_keeps_the_404(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(text("ALTER TABLE source_misses RENAME TO source_misses_away"))
    try:
        path = f"/{'C' * 32}/{world.yealink_mac}.cfg"
        async with (
            running(strict) as server,
            client_from(ATTACKER_ADDRESS) as client,
            client.get(server.url(path)) as resp,
        ):
            assert (resp.status, await resp.read()) == (404, b"")
    finally:
        async with sessions() as session, session.begin():
            await session.execute(text("ALTER TABLE source_misses_away RENAME TO source_misses"))


async def test_metrics_count_misses_bans_and_banned_requests(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="prometheus")
    async with running(strict) as server:
        async with client_from(ATTACKER_ADDRESS) as attacker:
            for n in range(25):  # 10 bad tokens and 10 bare MACs make the ban; 5 more hit it
                path = (
                    f"/{world.yealink_mac}.cfg" if n % 2 else f"/{'D' * 32}/{world.yealink_mac}.cfg"
                )
                async with attacker.get(server.url(path)):
                    pass
        async with (
            client_from(PHONE_ADDRESS) as client,
            client.get(
                server.url("/api/v1/security/metrics"),
                headers={"Authorization": f"Bearer {operator}"},
            ) as resp,
        ):
            assert resp.status == 200 and resp.content_type == "text/plain"
            text = await resp.text()
    metrics = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert int(metrics['provisioning_phone_misses_total{reason="bad-token"}']) == 10
    assert int(metrics['provisioning_phone_misses_total{reason="unknown-mac"}']) == 10
    assert metrics['provisioning_phone_bans_total{kind="address"}'] == "1"
    assert metrics["provisioning_phone_banned_requests_total"] == "5"
    assert metrics["provisioning_phone_bans_active"] == "1"
