"""Reads that build one API answer see one snapshot. On PostgreSQL under READ COMMITTED, a
device read during concurrent assign/unassign loaded its slots and then their lines in
separate statements and answered 500 ('NoneType' object has no attribute 'number')."""

from __future__ import annotations

import asyncio
from typing import Any

from provisioning import tokens
from provisioning.db.engine import SessionFactory
from tests.conftest import YEALINK_MAC, World


async def test_device_reads_during_assign_and_unassign_are_whole(
    client: Any, sessions: SessionFactory, world: World
) -> None:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="ops")
    headers = {"Authorization": f"Bearer {operator}"}
    line = world.line_ids[2]
    stop = asyncio.Event()
    writes = 0

    async def writer() -> None:
        nonlocal writes
        while not stop.is_set():
            resp = await client.post(
                f"/api/v1/devices/{YEALINK_MAC}/lines", json={"line_id": line}, headers=headers
            )
            assert resp.status == 201, await resp.text()
            resp = await client.delete(
                f"/api/v1/devices/{YEALINK_MAC}/lines/{line}", headers=headers
            )
            assert resp.status in (200, 204), await resp.text()
            writes += 1

    async def reader(path: str) -> list[tuple[int, Any]]:
        seen = []
        for _ in range(60):
            resp = await client.get(path, headers=headers)
            seen.append((resp.status, await resp.json()))
        return seen

    task = asyncio.create_task(writer())
    try:
        answers = await asyncio.gather(
            *(reader(f"/api/v1/devices/{YEALINK_MAC}") for _ in range(3)),
            *(reader("/api/v1/devices") for _ in range(2)),
        )
    finally:
        stop.set()
        await task
    assert writes > 5
    views = []
    for seen in answers:
        for status, body in seen:
            assert status == 200, body
            views.extend(body.get("items", [body]))
    for view in views:
        for slot in view["slots"]:
            assert slot["number"], view  # a slot always comes with its line
