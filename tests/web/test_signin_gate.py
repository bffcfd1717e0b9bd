"""A sign-in flood costs the rest of the server little: passwords are verified outside any
transaction (SQLite's one writer stays free for API writes meanwhile), one scrypt at a time per
process, a few attempts per address a minute; the per-login lockout stays."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from provisioning import tokens
from provisioning.db.engine import SessionFactory
from provisioning.web import signin_gate
from provisioning.web.signin_gate import SignInGate, TooManyAttempts
from tests.conftest import YEALINK_MAC, World
from tests.web.kit import ALICE, Browser, make_manager_world


async def test_an_api_write_is_not_held_by_a_sign_in_being_verified(
    client: TestClient, sessions: SessionFactory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_manager_world(sessions, world)
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
    hashing, release = threading.Event(), threading.Event()
    real = signin_gate.verify_password

    def held(password: str, stored: str) -> bool:
        hashing.set()
        release.wait(30)
        return real(password, stored)

    monkeypatch.setattr(signin_gate, "verify_password", held)
    browser = Browser(client)
    await browser.get("/manager/login")
    sign_in = asyncio.create_task(
        client.post(
            "/manager/login", data={"login": ALICE[0], "password": "wrong", "csrf": browser.csrf()}
        )
    )
    try:
        await asyncio.to_thread(hashing.wait, 30)
        # The password is being verified: a write must go through meanwhile (it waited for the
        # sign-in's transaction before, on SQLite).
        async with asyncio.timeout(10):
            resp = await client.post(
                f"/api/v1/devices/{YEALINK_MAC}/lines",
                json={"line_id": world.line_ids[2]},
                headers={"Authorization": f"Bearer {operator}"},
            )
        assert resp.status == 201, await resp.text()
    finally:
        release.set()
    assert (await sign_in).status == 401


async def test_one_hash_at_a_time_and_a_bounded_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = 0, 0
    release = threading.Event()

    def counted(password: str, stored: str) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        release.wait(30)
        running -= 1
        return False

    monkeypatch.setattr(signin_gate, "verify_password", counted)
    gate = SignInGate(hashing=1, waiting=4)
    tasks = [asyncio.create_task(gate.verify("x", "y")) for _ in range(4)]
    await asyncio.sleep(0.1)
    with pytest.raises(TooManyAttempts):  # a fifth waits nowhere: refused at once
        await gate.verify("x", "y")
    release.set()
    assert await asyncio.gather(*tasks) == [False] * 4
    assert most == 1


def test_attempts_per_address_in_a_sliding_window() -> None:
    gate = SignInGate(per_source=3, window=60)
    for n in range(3):
        gate.admit("192.0.2.1", now=float(n))
    with pytest.raises(TooManyAttempts):
        gate.admit("192.0.2.1", now=3.0)
    gate.admit("192.0.2.2", now=3.0)  # another address is not concerned
    gate.admit("192.0.2.1", now=60.5)  # the first attempt left the window


async def test_the_flooding_address_is_told_to_wait(
    client: TestClient, sessions: SessionFactory, world: World
) -> None:
    await make_manager_world(sessions, world)
    browser = Browser(client)
    await browser.get("/manager/login")
    statuses: list[Any] = []
    for _ in range(12):
        resp = await client.post(
            "/manager/login", data={"login": "nobody", "password": "x", "csrf": browser.csrf()}
        )
        statuses.append((resp.status, resp.headers.get("Retry-After")))
        page = await resp.text()
    assert statuses[:10] == [(401, None)] * 10
    assert statuses[10:] == [(429, "60")] * 2
    assert "Trop de tentatives" in page
