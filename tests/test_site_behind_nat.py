"""A site behind one NAT, as scanner defence meets it: phones not registered yet booting (and
asking again) from the site's one public address must not get it banned — its registered phones
and its Manager come from there too — while a scanner pretending to be such phones still is,
after a bounded number of guesses (bans.POINTS: 80 per address, 400 per network). Real sockets
from distinct loopback addresses against a real server."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace

import aiohttp
import pytest

from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import SourceMisses
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.devices.unknown import list_unknown
from provisioning.security import bans
from provisioning.security.bans import BanRules, unseen_phone
from provisioning.security.sources import source_of
from provisioning.settings import Settings
from tests.conftest import World
from tests.security_kit import ATTACKER_ADDRESS, PHONE_ADDRESS, Server, client_from, running

pytestmark = pytest.mark.usefixtures("world")

SITE = "127.0.6.1"  # the site's public address, in a /24 of its own
SITE_NETWORK = "127.0.6.0/24"
NEW_PHONES = [f"001565aa00{n:02x}" for n in range(1, 13)]
REGISTERED = [f"001565bb00{n:02x}" for n in range(1, 4)]
# What a default threshold of 20 misses allows guessing MACs behind a matching phone User-Agent.
GUESSES_PER_ADDRESS = 20 * bans.MISS_POINTS  # 80
GUESSES_PER_NETWORK = 100 * bans.MISS_POINTS  # 400


@pytest.fixture
def strict(settings: Settings) -> Settings:
    # The default thresholds; a day-long window so a test never straddles two windows.
    return replace(
        settings, ban_threshold=20, ban_network_threshold=100, ban_seconds=600, ban_window=86_400
    )


def yealink_ua(mac: str) -> str:
    colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    return f"Yealink SIP-T46U 108.86.0.20 {colon}"


async def register(
    sessions: SessionFactory, catalog: Catalog, settings: Settings, world: World
) -> dict[str, str]:
    """The site's registered phones: MAC -> URL token."""
    cipher = Cipher(settings.secret_key)
    tokens = {}
    async with sessions() as session, session.begin():
        for mac in REGISTERED:
            _, tokens[mac] = await inventory.add_device(
                session, catalog, cipher, mac, "yealink-t46u", world.account_id
            )
    return tokens


async def boot(client: aiohttp.ClientSession, server: Server, mac: str) -> list[int]:
    """A Yealink not registered yet booting: its boot file, the common file, its MAC file."""
    statuses = []
    for name in (f"{mac}.boot", "y000000000108.cfg", f"{mac}.cfg"):
        async with client.get(server.url(f"/{name}"), headers={"User-Agent": yealink_ua(mac)}) as r:
            statuses.append(r.status)
            assert await r.read() == b""
    return statuses


async def points(sessions: SessionFactory, source: str) -> int:
    async with sessions() as session:
        row = await session.get(SourceMisses, source)
    return 0 if row is None else row.points + row.previous


async def active(sessions: SessionFactory) -> set[str]:
    async with sessions() as session:
        return {ban.source for ban in await bans.active_bans(session)}


@pytest.mark.parametrize("digest", [False, True], ids=["plain", "digest"])
async def test_new_phones_booting_behind_one_address_do_not_ban_the_site(
    strict: Settings,
    world: World,
    sessions: SessionFactory,
    catalog: Catalog,
    caplog: pytest.LogCaptureFixture,
    digest: bool,
) -> None:
    settings = replace(strict, digest=True, auth_proofs="any") if digest else strict
    tokens = await register(sessions, catalog, settings, world)
    refused = 401 if digest else 404
    with caplog.at_level(logging.INFO, logger="provisioning.security"):
        async with running(settings) as server, client_from(SITE) as site:
            # Twelve phones boot together, twice (a power cut, then the operator's reboot),
            # then keep asking as phones without a configuration do: 12 x 3 x 5 requests.
            for _ in range(5):
                rounds = await asyncio.gather(*(boot(site, server, mac) for mac in NEW_PHONES))
                assert all(statuses == [refused] * 3 for statuses in rounds), rounds

            # The site's registered phones and its Manager are still served from there.
            for mac, token in tokens.items():
                path, agent = f"/{token}/{mac}.cfg", yealink_ua(mac)
                async with site.get(server.url(path), headers={"User-Agent": agent}) as resp:
                    assert resp.status == 200 and await resp.read()
            async with site.get(server.url("/api/v1/openapi.json")) as resp:
                assert resp.status == 200
            counted = dict(server.guard.counts)

    assert await active(sessions) == set()
    # Each new phone weighed a quarter of a miss once, whatever it asked afterwards: 12 points
    # of the 80 an address may reach (400 for its network).
    assert await points(sessions, SITE) == await points(sessions, SITE_NETWORK) == 12
    reason = "challenge" if digest else "unknown-phone"
    assert counted[("misses", reason)] == 12
    misses = [r.getMessage() for r in caplog.records if r.getMessage().startswith("phone-miss")]
    assert misses == [f"phone-miss host={SITE} reason={reason}"] * 12
    # The operator sees them, ready to be claimed.
    async with sessions() as session:
        unknown = {u.mac: u for u in await list_unknown(session)}
    assert set(unknown) == set(NEW_PHONES)
    assert all(u.requests == 15 and u.last_ip == SITE for u in unknown.values())


async def test_a_scanner_with_a_phone_user_agent_is_banned_after_80_guesses(
    strict: Settings, world: World, sessions: SessionFactory
) -> None:
    """The best a scanner can do: every guess a new MAC behind a User-Agent naming it (the
    registered phone's among them). It gets nothing, and its address is banned once it has
    made GUESSES_PER_ADDRESS guesses; the site next door is still served."""
    rng = random.Random(20261127)
    macs = [f"001565{rng.getrandbits(24):06x}" for _ in range(3_000)]
    macs[40] = world.yealink_mac
    statuses: list[int] = []
    leaked = 0

    async def guess(client: aiohttp.ClientSession, server: Server, mac: str) -> None:
        nonlocal leaked
        agent = yealink_ua(mac)
        async with client.get(server.url(f"/{mac}.cfg"), headers={"User-Agent": agent}) as resp:
            body = await resp.read()
            statuses.append(resp.status)
            leaked += len(body) + (resp.status == 200)

    async with running(strict) as server, client_from(ATTACKER_ADDRESS) as scanner:
        for mac in macs[:100]:  # one by one: the request the ban falls at is exact
            await guess(scanner, server, mac)
        for start in range(100, len(macs), 200):
            await asyncio.gather(*(guess(scanner, server, m) for m in macs[start : start + 200]))
        async with (
            client_from(PHONE_ADDRESS) as phone,
            phone.get(
                server.url(f"/{world.yealink_token}/{world.yealink_mac}.cfg"),
                headers={"User-Agent": yealink_ua(world.yealink_mac)},
            ) as resp,
        ):
            assert resp.status == 200

    assert leaked == 0, "the scanner got bytes"
    assert statuses[:GUESSES_PER_ADDRESS] == [404] * GUESSES_PER_ADDRESS
    assert statuses[GUESSES_PER_ADDRESS:] == [403] * (len(macs) - GUESSES_PER_ADDRESS)
    assert await active(sessions) == {ATTACKER_ADDRESS}


async def test_a_scanner_spread_over_a_network_is_banned_after_400_guesses(
    strict: Settings, world: World
) -> None:
    """Ten addresses of one /24, 40 plausible guesses each (half an address's bound): the
    network is banned at its 400th guess, a newcomer of that network with it."""
    rng = random.Random(20261128)
    async with running(strict) as server:
        for host in range(1, 11):
            async with client_from(f"127.0.14.{host}") as client:
                for _ in range(GUESSES_PER_NETWORK // 10):
                    mac = f"001565{rng.getrandbits(24):06x}"
                    headers = {"User-Agent": yealink_ua(mac)}
                    async with client.get(server.url(f"/{mac}.cfg"), headers=headers) as resp:
                        assert (resp.status, await resp.read()) == (404, b"")
        mac = "001565000001"
        async with (
            client_from("127.0.14.200") as newcomer,
            newcomer.get(server.url(f"/{mac}.cfg"), headers={"User-Agent": yealink_ua(mac)}) as r,
        ):
            assert r.status == 403


async def test_a_phone_is_new_once_per_address_and_window(
    strict: Settings, sessions: SessionFactory
) -> None:
    rules = replace(BanRules.from_settings(strict), window=100)
    site, other = source_of(SITE), source_of("127.0.7.1")
    assert site is not None and other is not None
    base = 1_000_000 * 100.0
    async with sessions() as session, session.begin():
        assert await unseen_phone(session, site, NEW_PHONES[0], rules, now=base + 10)
        assert not await unseen_phone(session, site, NEW_PHONES[0], rules, now=base + 90)
        assert await unseen_phone(session, site, NEW_PHONES[1], rules, now=base + 90)
        assert await unseen_phone(session, other, NEW_PHONES[0], rules, now=base + 90)
        # Asked in the window before: still known; each request keeps it known.
        assert not await unseen_phone(session, site, NEW_PHONES[0], rules, now=base + 150)
        assert not await unseen_phone(session, site, NEW_PHONES[0], rules, now=base + 250)
        # Silent for more than a whole window: new again.
        assert await unseen_phone(session, site, NEW_PHONES[0], rules, now=base + 450)
    async with sessions() as session, session.begin():
        # Housekeeping drops it with the counters (the rows are far in the past here).
        await bans.forget_expired(session, rules)
    async with sessions() as session:
        assert await session.get(SourceMisses, f"{SITE} {NEW_PHONES[0]}") is None
