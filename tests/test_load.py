"""Overload is answered at once with 503 and Retry-After, for phone files and firmware alike,
never for the API; the limits come from settings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from provisioning.app import create_app
from provisioning.settings import Settings, SettingsError
from provisioning.state import SERVICES
from tests.conftest import YEALINK_UA, World


@pytest.fixture
async def shedding_client(aiohttp_client: Any, settings: Settings, world: World) -> TestClient:
    return await aiohttp_client(create_app(replace(settings, max_inflight=2, max_lag_ms=200)))  # type: ignore[no-any-return]


@pytest.fixture
async def inflight_client(aiohttp_client: Any, settings: Settings, world: World) -> TestClient:
    # The longest lag allowed: a loop stalled by a collection on a busy CI machine must not
    # shed the requests that test the in-flight limit.
    return await aiohttp_client(create_app(replace(settings, max_inflight=2, max_lag_ms=60_000)))  # type: ignore[no-any-return]


async def test_requests_beyond_the_inflight_limit_get_503_at_once(
    inflight_client: TestClient, world: World
) -> None:
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    load = inflight_client.app[SERVICES].load
    assert (await inflight_client.get(path, headers={"User-Agent": YEALINK_UA})).status == 200
    assert load.inflight == 0  # released after each request
    load.inflight = 2  # two requests still waiting on the database
    for target in (path, "/firmware/anything.rom", "/unknown.cfg"):
        resp = await inflight_client.get(target, headers={"User-Agent": YEALINK_UA})
        assert resp.status == 503 and resp.headers["Retry-After"] == "10"
        assert await resp.read() == b""
    # The API is not a phone path: operators can still look at what is happening.
    assert (await inflight_client.get("/api/v1/openapi.json")).status == 200
    assert load.shed == 3
    load.inflight = 1
    assert (await inflight_client.get(path, headers={"User-Agent": YEALINK_UA})).status == 200


async def test_a_lagging_event_loop_sheds_until_it_catches_up(
    inflight_client: TestClient, world: World
) -> None:
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    load = inflight_client.app[SERVICES].load
    # The watcher keeps writing the lag it measures, so the limit moves instead: any lag at
    # all is above -1 s, and none this machine shows is above a minute.
    load.max_lag = -1.0
    assert (await inflight_client.get(path, headers={"User-Agent": YEALINK_UA})).status == 503
    load.max_lag = 60.0
    assert (await inflight_client.get(path, headers={"User-Agent": YEALINK_UA})).status == 200


async def test_the_watcher_measures_a_blocked_loop(shedding_client: TestClient) -> None:
    import asyncio
    import time

    load = shedding_client.app[SERVICES].load
    await asyncio.sleep(0.12)
    assert load.lag < 0.2
    time.sleep(0.3)  # noqa: ASYNC251 (the point: the loop is blocked)
    await asyncio.sleep(0.01)  # the watcher wakes first, 250 ms late
    assert load.lag >= 0.2 and load.overloaded()
    await asyncio.sleep(0.12)  # and the next tick is on time again
    assert not load.overloaded()


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_INFLIGHT", "0"), ("MAX_LAG_MS", "5"), ("WORKERS", "65"), ("SIGHTING_FLUSH_MS", "-1")],
)
def test_bad_limits_are_refused_naming_the_key(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"PROVISIONING_{name}"):
        Settings.from_mapping({name.lower(): value})
