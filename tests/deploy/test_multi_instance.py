"""Several instances, one database, for real: nginx (deploy/nginx/provisioning.conf) in front of
two `provisioning serve` processes on one PostgreSQL, a handset emulator registered at a real
kamailio. Phone fetches spread over both, sightings from both, a push queued through one and
sent once, an Idempotency-Key honoured across both, and one instance killed under load."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Association, Order, Push
from provisioning.devices.catalog import Catalog
from provisioning.lab.phone import EmulatedPhone
from tests.deploy.conftest import Seed, seed, server_env, settings_for
from tests.deploy.servers import Instance, instances, metric, nginx_in_front
from tests.peers.kamailio import Kamailio
from tests.peers.require import require_binary
from tests.security_kit import client_from

UA = "Yealink SIP-T46U {firmware} {mac}"


def ua(mac: str, firmware: str) -> str:
    colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    return UA.format(firmware=firmware, mac=colon)


async def api(
    client: aiohttp.ClientSession, method: str, url: str, token: str, **kwargs: Any
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    async with client.request(method, url, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(), resp.headers


async def scrape(client: aiohttp.ClientSession, server: Instance) -> str:
    async with client.get(f"{server.url}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def until(check: Any, limit: float, what: str) -> Any:
    deadline = time.monotonic() + limit
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_two_instances_behind_nginx_on_one_postgresql(
    shared_pg: str, shared_sessions: SessionFactory, catalog: Catalog, kamailio: Kamailio,
    tmp_path: Path,
) -> None:  # fmt: skip
    nginx = require_binary("nginx")
    world = await seed(
        shared_sessions, settings_for(shared_pg), catalog, f"127.0.0.1:{kamailio.sip_port}", 5
    )
    for user in ("alice", "alice2"):
        await asyncio.to_thread(kamailio.add_user, user, f"pw-{user}")
    a = Instance("a", tmp_path / "a", server_env(shared_pg))
    b = Instance("b", tmp_path / "b", server_env(shared_pg))
    with instances(a, b):
        a.start()
        b.start()
        await asyncio.gather(a.ready(), b.ready())
        async with (
            nginx_in_front(nginx, tmp_path / "nginx", [a.port, b.port]) as front,
            aiohttp.ClientSession() as client,
        ):
            await _fetches_spread_over_both(client, front, a, b, world)
            await _sightings_from_both(client, front, a, b, world)
            await _push_queued_through_one_is_sent_once(
                client, front, a, b, world, catalog, shared_sessions
            )
            order_id = await _idempotency_key_across_both(client, a, b, world, shared_sessions)
            await _one_instance_killed_under_load(
                client, front, a, b, world, order_id, shared_sessions
            )
    for server in (a, b):
        log = server.log()
        assert "Traceback" not in log
        # No secret in any log line: URL tokens, the API token, SIP passwords.
        for secret in (*world.tokens.values(), world.api, "pw-alice"):
            assert secret not in log


async def _fetches_spread_over_both(
    client: aiohttp.ClientSession, front: str, a: Instance, b: Instance, world: Seed
) -> None:
    before = [await scrape(client, s) for s in (a, b)]
    mac = world.macs[1]
    url = f"{front}/{world.tokens[mac]}/{mac}.cfg"
    ids = set()
    for _ in range(20):
        async with client.get(url, headers={"User-Agent": ua(mac, "108.86.0.20")}) as resp:
            assert resp.status == 200
            ids.add(resp.headers["X-Request-ID"])
    after = [await scrape(client, s) for s in (a, b)]
    name = "provisioning_phone_fetches_total"
    served = [
        metric(after[n], name, family="yealink", status="200")
        - metric(before[n], name, family="yealink", status="200")
        for n in range(2)
    ]
    assert sum(served) == 20 and min(served) >= 5, served  # round robin: both served
    # nginx's request id is the server's: in the response and in the server's JSON log.
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(ids) == 20
    # Access-log lines are written in batches (every 0.25 s: logs.AccessLog).
    logged: set[str | None] = set()
    for _ in range(50):
        logged = {e.get("request_id") for s in (a, b) for e in s.log_entries()}
        if ids <= logged:
            break
        await asyncio.sleep(0.1)
    assert ids <= logged


async def _sightings_from_both(
    client: aiohttp.ClientSession, front: str, a: Instance, b: Instance, world: Seed
) -> None:
    """A fetch through each instance (directly, from two client addresses behind nginx);
    both sightings are visible through the other one and through nginx."""
    first, second = world.macs[2], world.macs[3]
    for server, mac, firmware in ((a, first, "108.86.0.11"), (b, second, "108.86.0.22")):
        path = f"/{world.tokens[mac]}/{mac}.cfg"
        async with client.get(server.url + path, headers={"User-Agent": ua(mac, firmware)}) as r:
            assert r.status == 200
    # Through nginx from another address: X-Forwarded-For is set by nginx, believed by the
    # server because nginx is a trusted proxy. (A phone fetched nowhere else: with sightings
    # written behind, the last of several instances' writes would be a race.)
    mac = world.macs[4]
    async with (
        client_from("127.0.0.7") as phone,
        phone.get(
            f"{front}/{world.tokens[mac]}/{mac}.cfg",
            headers={"User-Agent": ua(mac, "108.86.0.33"), "X-Forwarded-For": "10.9.9.9"},
        ) as resp,
    ):
        assert resp.status == 200

    async def seen() -> dict[str, Any] | None:
        views = {}
        for server, which in ((b, first), (a, second), (a, mac), (b, mac)):
            url = f"{server.url}/api/v1/devices/{which}"
            status, view, _ = await api(client, "GET", url, world.api)
            assert status == 200
            views[(server.name, which)] = view["last_seen"]
        done = all(v["at"] for v in views.values())
        return views if done else None

    # Sightings may be written behind the fetch: give them a moment.
    views = await until(seen, 10, "sightings")
    assert views[("b", first)]["firmware"] == "108.86.0.11"
    assert views[("a", second)]["firmware"] == "108.86.0.22"
    assert views[("a", mac)]["ip"] == "127.0.0.7" and views[("b", mac)]["ip"] == "127.0.0.7"


async def _push_queued_through_one_is_sent_once(
    client: aiohttp.ClientSession, front: str, a: Instance, b: Instance, world: Seed,
    catalog: Catalog, sessions: SessionFactory,
) -> None:  # fmt: skip
    family = catalog.families["yealink"]
    mac = world.macs[0]
    said: list[str] = []
    phone = EmulatedPhone(
        f"{front}/{world.tokens[mac]}/", mac, family, family.models["yealink-t46u"],
        say=said.append,
    )  # fmt: skip
    await phone.start()
    try:
        assert [line.user for line in phone.lines] == ["alice"]
        status, created, _ = await api(
            client, "POST", f"{a.url}/api/v1/associations", world.api,
            json={"line_id": world.lines["alice2"], "mac": mac},
        )  # fmt: skip
        assert status == 202, created

        async def applied() -> dict[str, Any] | None:
            url = f"{b.url}/api/v1/associations/{created['id']}"
            _, view, _ = await api(client, "GET", url, world.api)
            return view if view["status"] == "applied" else None

        view = await until(applied, 15, "the association to be applied")
        assert view["seconds_to_apply"] < 5, (view, said)
        # Both push workers ran all along: the NOTIFY went out once.
        await asyncio.sleep(1.5)
        assert phone.stats.notifies == 1, said
        assert [line.user for line in phone.lines] == ["alice", "alice2"]
        async with sessions() as session:
            association = await session.get(Association, created["id"])
            assert association is not None
            push = await session.get(Push, association.push_id)
        assert push is not None and push.attempts == 1 and push.state == "applied"
    finally:
        await phone.stop()


async def _idempotency_key_across_both(
    client: aiohttp.ClientSession, a: Instance, b: Instance, world: Seed,
    sessions: SessionFactory,
) -> int:  # fmt: skip
    body = {
        "line_id": world.lines["spare1"], "model": "yealink-t46u", "carrier": "dhl",
        "accept_contract": True,
    }  # fmt: skip
    key = {"Idempotency-Key": "across-instances-1"}
    status, first, headers = await api(
        client, "POST", f"{a.url}/api/v1/orders", world.api, json=body, headers=key
    )
    assert status == 201 and "Idempotent-Replayed" not in headers, first
    status, again, headers = await api(
        client, "POST", f"{b.url}/api/v1/orders", world.api, json=body, headers=key
    )
    assert (status, again["id"], headers.get("Idempotent-Replayed")) == (201, first["id"], "true")
    # The same key sent to both at the same moment: one order.
    body = {**body, "line_id": world.lines["spare2"]}
    key = {"Idempotency-Key": "across-instances-2"}
    answers = await asyncio.gather(
        *(
            api(client, "POST", f"{s.url}/api/v1/orders", world.api, json=body, headers=key)
            for s in (a, b, a, b)
        )
    )
    assert {status for status, _, _ in answers} == {201}
    assert len({view["id"] for _, view, _ in answers}) == 1
    assert sum("Idempotent-Replayed" not in h for _, _, h in answers) == 1
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Order))
    assert count == 2
    return int(first["id"])


async def _one_instance_killed_under_load(
    client: aiohttp.ClientSession, front: str, a: Instance, b: Instance, world: Seed,
    order_id: int, sessions: SessionFactory,
) -> None:  # fmt: skip
    mac = world.macs[1]
    url = f"{front}/{world.tokens[mac]}/{mac}.cfg"
    statuses: list[int] = []
    done = asyncio.Event()

    async def phone_boots() -> None:
        while not done.is_set():
            async with client.get(url, headers={"User-Agent": ua(mac, "108.86.0.20")}) as resp:
                await resp.read()
                statuses.append(resp.status)

    load = [asyncio.create_task(phone_boots()) for _ in range(8)]
    try:
        await until(lambda: _ready(len(statuses) >= 100), 30, "load")
        b.kill(signal.SIGKILL)
        assert b.wait(10) == -signal.SIGKILL
        count = len(statuses)
        await until(lambda: _ready(len(statuses) >= count + 200), 30, "load after the kill")
    finally:
        done.set()
        await asyncio.gather(*load)
    # nginx retried what was in flight on the killed instance: no phone saw an error.
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    # Nothing lost: the order and its key, the association, the sightings.
    body = {
        "line_id": world.lines["spare1"], "model": "yealink-t46u", "carrier": "dhl",
        "accept_contract": True,
    }  # fmt: skip
    status, again, headers = await api(
        client, "POST", f"{front}/api/v1/orders", world.api, json=body,
        headers={"Idempotency-Key": "across-instances-1"},
    )  # fmt: skip
    assert (status, again["id"], headers.get("Idempotent-Replayed")) == (201, order_id, "true")
    status, view, _ = await api(client, "GET", f"{front}/api/v1/devices/{world.macs[0]}", world.api)
    assert status == 200 and [s["line_id"] for s in view["slots"]] == [
        world.lines["alice"], world.lines["alice2"]
    ]  # fmt: skip
    async with sessions() as session:
        states = (await session.scalars(select(Push.state))).all()
    assert "pending" not in states and "overdue" not in states
    # The killed instance comes back and serves again.
    b.start()
    await b.ready()
    path = f"/{world.tokens[mac]}/{mac}.cfg"
    async with client.get(b.url + path) as resp:
        assert resp.status == 200


async def _ready(value: bool) -> bool:
    return value


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
