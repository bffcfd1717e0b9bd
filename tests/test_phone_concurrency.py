"""Phones never get a 500: `provisioning serve` with its defaults, real sockets (each request on a
new connection, as booting phones), every kind of phone request at once with API writes and
Manager sign-ins, while another writer keeps the database's write lock most of the time. Run
on SQLite and PostgreSQL (CI's two legs), with the phone lane on and off, and under Python 3.11
and 3.12 (CI runs this file with both): the server is this interpreter.

Before Python 3.12 the lane once ran a fetch's first step outside any task; every fetch that
then waited for the ORM's pool (a first delivery, a digest challenge, an unknown device, a
miss) raised "Timeout should be used inside a task" and was answered 500."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from provisioning.db.engine import make_engine
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from tests.phone_server import (
    WEB_LOGIN,
    Fleet,
    Served,
    client_from,
    order_states,
    seeded,
    serving,
    yealink_ua,
)

PHONE_ANSWERS = {200, 304, 401, 403, 404}
Result = tuple[str, int, str | None]  # scenario, status, Retry-After


async def busy_writer(url: str, stop: asyncio.Event, held: list[int]) -> None:
    """Another writer holding the write lock 300 ms of every 350 (SQLite: the file's one lock;
    PostgreSQL: the devices table, which every sighting, delivery and assignment writes)."""
    engine = make_engine(url)
    try:
        while not stop.is_set():
            async with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    await conn.execute(text("LOCK TABLE devices IN EXCLUSIVE MODE"))
                else:
                    await conn.execute(text("SELECT 1"))  # BEGIN IMMEDIATE took the lock
                held[0] += 1
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def many(
    count: int, concurrency: int, one: Callable[[int], Awaitable[Result]]
) -> list[Result]:
    gate = asyncio.Semaphore(concurrency)

    async def gated(n: int) -> Result:
        async with gate:
            return await one(n)

    return list(await asyncio.gather(*(gated(n) for n in range(count))))


async def get(client: aiohttp.ClientSession, scenario: str, url: str, **headers: str) -> Result:
    async with client.get(url, headers=headers) as resp:
        await resp.read()
        return scenario, resp.status, resp.headers.get("Retry-After")


async def phone(
    client: aiohttp.ClientSession,
    scenario: str,
    base: str,
    mac: str,
    token: str | None,
    file_mac: str | None = None,
) -> Result:
    """A Yealink's fetch of `<file_mac>.cfg` (its own by default), with or without a token."""
    path = f"/{token}" if token else ""
    return await get(client, scenario, f"{base}{path}/{file_mac or mac}.cfg",
                     **{"User-Agent": yealink_ua(mac)})  # fmt: skip


async def phones(served: Served, fleet: Fleet) -> list[Result]:
    base = served.base
    results: list[Result] = []

    async def shipped() -> None:
        # Twice: the first round completes each delivery, the second finds it done.
        async with client_from("127.2.0.1") as client:
            for _ in range(2):
                results.extend(
                    await asyncio.gather(
                        *(
                            phone(client, "shipped", base, mac, token)
                            for mac, token in fleet.shipped
                        )
                    )
                )

    async def rotated() -> None:
        async with client_from("127.3.0.1") as client:

            async def one(n: int) -> Result:
                mac, token = fleet.rotated[n % len(fleet.rotated)]
                return await phone(client, "rotated", base, mac, token)

            results.extend(await many(300, 20, one))

    async def digest() -> None:
        # Each phone from its own address: a challenge counts a quarter of a miss, and one
        # address challenged 150 times in a row is banned like any that never answers.
        async def one_phone(n: int) -> list[Result]:
            mac, token = fleet.digest[n]
            async with client_from(f"127.4.0.{n + 1}") as client:

                async def one(_: int) -> Result:
                    return await phone(client, "digest", base, mac, token)

                return await many(150 // len(fleet.digest), 2, one)

        for answered in await asyncio.gather(*map(one_phone, range(len(fleet.digest)))):
            results.extend(answered)

    async def unknown() -> None:
        async with client_from("127.5.0.1") as client:

            async def one(n: int) -> Result:
                mac = f"00156599{n:04x}"
                return await phone(client, "unknown", base, mac, None)

            results.extend(await many(300, 20, one))

    async def scanner() -> None:
        mac, token = fleet.plain[0]
        async with client_from("127.6.0.1") as client:

            async def one(n: int) -> Result:
                other = f"0015659a{n:04x}"
                return await phone(client, "scanner", base, mac, token, other)

            results.extend(await many(300, 20, one))

    async def valid() -> None:
        async with client_from("127.7.0.1") as client:

            async def one(n: int) -> Result:
                mac, token = fleet.plain[1 + n % (len(fleet.plain) - 2)]
                headers = {"User-Agent": yealink_ua(mac)}
                if n % 3 == 0:
                    headers["If-None-Match"] = '"stale"'
                return await get(client, "valid", f"{base}/{token}/{mac}.cfg", **headers)

            results.extend(await many(300, 20, one))

    await asyncio.gather(shipped(), rotated(), digest(), unknown(), scanner(), valid())
    return results


async def api_writes(served: Served, fleet: Fleet, stop: asyncio.Event) -> list[Result]:
    """An operator's integration: lines in and out of a phone, a token rotated."""
    results: list[Result] = []
    headers = {"Authorization": f"Bearer {fleet.operator}"}
    mac = fleet.plain[-1][0]
    async with client_from("127.8.0.1") as client:
        while not stop.is_set():
            line = random.choice(fleet.free_lines)
            url = f"{served.base}/api/v1/devices/{mac}/lines"
            async with client.post(url, json={"line_id": line}, headers=headers) as resp:
                await resp.read()
                results.append(("api assign", resp.status, resp.headers.get("Retry-After")))
            async with client.delete(f"{url}/{line}", headers=headers) as resp:
                await resp.read()
                results.append(("api unassign", resp.status, resp.headers.get("Retry-After")))
            async with client.post(
                f"{served.base}/api/v1/devices/{mac}/credentials",
                json={"kind": "token", "overlap": 60},
                headers=headers,
            ) as resp:
                await resp.read()
                results.append(("api rotate", resp.status, resp.headers.get("Retry-After")))
    return results


async def sign_ins(served: Served, stop: asyncio.Event) -> list[Result]:
    """Someone trying passwords on the Manager's sign-in form."""
    results: list[Result] = []
    async with client_from("127.9.0.1") as client:
        while not stop.is_set():
            async with client.get(f"{served.base}/manager/login") as resp:
                page = await resp.text()
            found = re.search(r'name="csrf" value="([^"]+)"', page)
            assert found is not None, page[:500]
            form = {"csrf": found[1], "login": WEB_LOGIN, "password": "not the password"}
            async with client.post(
                f"{served.base}/manager/login", data=form, allow_redirects=False
            ) as resp:
                await resp.read()
                results.append(("sign-in", resp.status, resp.headers.get("Retry-After")))
    return results


@pytest.mark.parametrize("lane", ["true", "false"], ids=["lane", "aiohttp"])
async def test_phones_never_get_a_500_while_the_writer_is_busy(
    database_url: str, tmp_path: Path, catalog: Catalog, settings: Settings, lane: str
) -> None:
    async with seeded(database_url, tmp_path, "storm", catalog, settings) as (url, fleet):
        served = Served(url, tmp_path, phone_lane=lane, digest="true")
        with serving(served):
            await served.ready()
            stop, held = asyncio.Event(), [0]
            writer = asyncio.create_task(busy_writer(url, stop, held))
            api = asyncio.create_task(api_writes(served, fleet, stop))
            signing = asyncio.create_task(sign_ins(served, stop))
            try:
                answered = await asyncio.wait_for(phones(served, fleet), 240)
            finally:
                stop.set()
                others = [*await api, *await signing]
                await writer
        log = served.log()
    by_kind = Counter((scenario, status) for scenario, status, _ in answered)
    odd = {key: n for key, n in by_kind.items() if key[1] not in PHONE_ANSWERS}
    assert not odd, (odd, log[-4000:])
    assert "Traceback" not in log and "inside a task" not in log, log[-4000:]
    assert held[0] >= 3  # the writer did keep the lock while phones asked
    # What each kind of phone must be told, whatever else happens at the same time.
    assert by_kind["shipped", 200] == 2 * len(fleet.shipped)
    assert by_kind["rotated", 200] == 300
    assert by_kind["digest", 401] == 150
    assert by_kind["valid", 200] + by_kind["valid", 304] == 300, by_kind
    # Unknown phones: challenged (DIGEST=true challenges whoever brings no credential, so that
    # a challenge tells nothing), not found, or banned.
    assert sum(by_kind["unknown", status] for status in (401, 403, 404)) == 300, by_kind
    # The scanner: misses counted, whatever the writer does, until the address is banned.
    assert by_kind["scanner", 403] > 0, by_kind
    # Every delivery completed at the first fetch: no order left in `shipped`.
    states = await order_states(url)
    assert states.get("shipped", 0) == 0 and states.get("delivered") == len(fleet.shipped), states
    assert others, "no API write nor sign-in ran"
    failed = [result for result in others if result[1] >= 500]
    assert not failed, (failed[:5], log[-4000:])
