"""PostgreSQL stopped and started again under load, as an operator's maintenance or a failover
does: phones and the API are told 503 with Retry-After meanwhile (never 500, never "no such
file"), and once the database is back everything works again without a restart: files served,
sightings recorded (the flush loop is alive), the API answering.

CI stops and starts its own cluster (`pg_ctlcluster 15 main`); elsewhere the test skips unless
the suite runs on PostgreSQL as root with pg_ctlcluster available."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from provisioning.db.engine import make_engine
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from tests.phone_server import Fleet, Served, client_from, seeded, serving, yealink_ua

CLUSTER = os.environ.get("PROVISIONING_TEST_PG_CLUSTER", "15 main").split()
Seen = tuple[float, str, int, str | None]  # when, what, status, Retry-After


def _cluster(action: str) -> None:
    subprocess.run(["pg_ctlcluster", *CLUSTER, action], check=True, timeout=120)


@pytest.fixture
def controllable_postgres(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("PostgreSQL stop/start: the suite runs on SQLite")
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        message = "PostgreSQL stop/start needs pg_ctlcluster and root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


async def _load(served: Served, fleet: Fleet, stop: asyncio.Event, seen: list[Seen]) -> None:
    """Phones fetching (each time on a new connection) and an operator reading the API."""

    async def phone(n: int) -> None:
        mac, token = fleet.plain[n]
        async with client_from(f"127.20.{n}.1") as client:
            while not stop.is_set():
                try:
                    async with client.get(
                        f"{served.base}/{token}/{mac}.cfg", headers={"User-Agent": yealink_ua(mac)}
                    ) as resp:
                        await resp.read()
                        seen.append((time.monotonic(), "phone", resp.status,
                                     resp.headers.get("Retry-After")))  # fmt: skip
                except aiohttp.ClientError as exc:  # a socket error is a failure too
                    seen.append((time.monotonic(), "phone", -1, repr(exc)))
                await asyncio.sleep(0.02)

    async def operator() -> None:
        headers = {"Authorization": f"Bearer {fleet.operator}"}
        async with client_from("127.21.0.1") as client:
            while not stop.is_set():
                async with client.get(f"{served.base}/api/v1/devices", headers=headers) as resp:
                    await resp.read()
                    seen.append((time.monotonic(), "api", resp.status,
                                 resp.headers.get("Retry-After")))  # fmt: skip
                await asyncio.sleep(0.05)

    await asyncio.gather(*(phone(n) for n in range(6)), operator())


async def _last_agent(url: str, mac: str) -> str | None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(
                text("SELECT last_user_agent FROM devices WHERE mac = :mac"), {"mac": mac}
            )
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("controllable_postgres")
@pytest.mark.parametrize("lane", ["true", "false"], ids=["lane", "aiohttp"])
async def test_postgresql_stopped_and_started_under_load(
    database_url: str, tmp_path: Path, catalog: Catalog, settings: Settings, lane: str
) -> None:
    async with seeded(database_url, tmp_path, "faults", catalog, settings) as (url, fleet):
        served = Served(url, tmp_path, phone_lane=lane)
        with serving(served):
            await served.ready()
            stop, seen = asyncio.Event(), list[Seen]()
            load = asyncio.create_task(_load(served, fleet, stop, seen))
            try:
                await asyncio.sleep(1)
                down_at = time.monotonic()
                await asyncio.to_thread(_cluster, "stop")
                try:
                    await asyncio.sleep(3)
                finally:
                    up_at = time.monotonic()  # it answers before pg_ctlcluster returns
                    await asyncio.to_thread(_cluster, "start")
                # Back: every phone served again within 30 s, without a restart.
                deadline = up_at + 30
                while time.monotonic() < deadline:
                    recent = [s for s in seen if s[0] > time.monotonic() - 1 and s[1] == "phone"]
                    if len(recent) > 10 and all(status == 200 for _, _, status, _ in recent):
                        break
                    await asyncio.sleep(0.2)
            finally:
                stop.set()
                await load
            # The sightings flush is alive: a fetch telling something new is recorded.
            mac, token = fleet.plain[0]
            async with (
                client_from("127.22.0.1") as client,
                client.get(
                    f"{served.base}/{token}/{mac}.cfg", headers={"User-Agent": "after the restart"}
                ) as resp,
            ):
                assert resp.status == 200
            for _ in range(50):  # the flush runs every 500 ms
                if await _last_agent(url, mac) == "after the restart":
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the sighting was never recorded: " + served.log()[-4000:])
            log = served.log()
    statuses = {(what, status) for _, what, status, _ in seen}
    wrong = statuses - {("phone", 200), ("phone", 503), ("api", 200), ("api", 503)}
    assert not wrong, (wrong, log[-4000:])
    assert all(after == "30" for _, _, status, after in seen if status == 503)
    during = [status for when, what, status, _ in seen if down_at + 0.5 < when < up_at]
    assert during and 503 in during  # the database was really gone for them
    after = [status for when, what, status, _ in seen if what == "phone" and when > up_at]
    assert after and after[-1] == 200, log[-4000:]
    assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:3000]
