"""Sightings written behind in batches: nothing on the fetch's own path, everything by the next
flush, and the last facts kept over a clean shutdown and a database outage."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from provisioning.app import create_app
from provisioning.db.engine import SessionFactory
from provisioning.db.errors import DatabaseUnavailable
from provisioning.db.models import Device, Push, Sighting, utcnow
from provisioning.phones.lookup import open_rows
from provisioning.phones.sightings import (
    SightingBuffer,
    SightingFacts,
    SightingHistory,
)
from provisioning.push.changes import devices_changed
from provisioning.settings import Settings
from provisioning.state import SERVICES
from tests.conftest import YEALINK_MAC, YEALINK_UA, World


async def _yealink(sessions: SessionFactory) -> Device:
    async with sessions() as session:
        device = await session.scalar(select(Device).where(Device.mac == YEALINK_MAC))
        assert device is not None
        return device


async def _sightings(sessions: SessionFactory, device_id: int) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Sighting).where(Sighting.device_id == device_id)
        )
        return int(count or 0)


async def test_fetches_are_recorded_at_the_flush_and_at_clean_shutdown(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World
) -> None:
    app = create_app(replace(settings, sighting_flush_ms=60_000))
    client: TestClient = await aiohttp_client(app)
    device = await _yealink(sessions)
    async with sessions() as session, session.begin():
        await devices_changed(session, Device.id == device.id, "test")
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    for _ in range(3):
        resp = await client.get(path, headers={"User-Agent": YEALINK_UA})
        assert resp.status == 200
    # Served, but nothing written yet: the first sighting waits for the batch; the two that
    # repeat it have nothing new to say and are not even kept.
    assert (await _yealink(sessions)).last_seen_at is None
    assert await _sightings(sessions, device.id) == 0
    assert len(app[SERVICES].sightings) == 1

    await app[SERVICES].sightings.flush()
    seen = await _yealink(sessions)
    assert seen.last_seen_at is not None and seen.state == "active"
    assert seen.last_revision_served == device.config_revision + 1
    assert seen.last_user_agent == YEALINK_UA
    # The history keeps the first of three identical fetches.
    assert await _sightings(sessions, device.id) == 1
    async with sessions() as session:
        states = (
            await session.scalars(select(Push.state).where(Push.device_id == device.id))
        ).all()
    assert states and set(states) == {"applied"}  # the fetch is the proof, batched or not

    # Another file, and the same file from another User-Agent (a firmware upgrade), then a
    # clean shutdown: the cleanup writes them, each a history row of its own.
    resp = await client.get(
        f"/{world.yealink_token}/y000000000108.cfg", headers={"User-Agent": YEALINK_UA}
    )
    assert resp.status == 200
    upgraded = YEALINK_UA.replace("108.86.0.20", "108.86.0.45")
    resp = await client.get(path, headers={"User-Agent": upgraded})
    assert resp.status == 200
    await client.close()
    assert await _sightings(sessions, device.id) == 3
    last = await _yealink(sessions)
    assert last.last_user_agent == upgraded and last.last_firmware == "108.86.0.45"
    assert seen.last_seen_at is not None and last.last_seen_at is not None
    assert last.last_seen_at > seen.last_seen_at


async def test_every_fetch_a_history_row_when_asked(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World
) -> None:
    client: TestClient = await aiohttp_client(
        create_app(replace(settings, sighting_history_seconds=0))
    )
    device = await _yealink(sessions)
    for _ in range(3):
        resp = await client.get(
            f"/{world.yealink_token}/{YEALINK_MAC}.cfg", headers={"User-Agent": YEALINK_UA}
        )
        assert resp.status == 200
    assert await _sightings(sessions, device.id) == 3


def test_history_keeps_what_is_new_or_old_enough() -> None:
    history = SightingHistory(seconds=60, size=2)
    facts = (3, "192.0.2.1", "UA", "1.0")
    assert history.keep(1, "a.cfg", facts, now=0)
    assert not history.keep(1, "a.cfg", facts, now=59)  # the same, within the period
    assert history.keep(1, "a.cfg", facts, now=61)  # the same, a period after the last row
    assert history.keep(1, "a.cfg", (4, "192.0.2.1", "UA", "1.0"), now=62)  # new revision
    assert history.keep(1, "a.cfg", (4, "192.0.2.9", "UA", "1.0"), now=63)  # new address
    assert history.keep(1, "b.cfg", (4, "192.0.2.9", "UA", "1.0"), now=64)  # another file
    assert history.keep(2, "a.cfg", facts, now=65)  # another device: a.cfg of 1 forgotten
    assert history.keep(1, "a.cfg", (4, "192.0.2.9", "UA", "1.0"), now=66)
    every = SightingHistory(seconds=0, size=2)
    assert all(every.keep(1, "a.cfg", facts, now=n) for n in range(5))


async def test_a_batch_keeps_the_latest_facts_and_the_highest_revision(
    settings: Settings, sessions: SessionFactory, world: World
) -> None:
    rows = open_rows(settings.database_url)
    try:
        await _batches(rows.write_sightings, sessions, world)
    finally:
        await rows.close()


async def _batches(write: Any, sessions: SessionFactory, world: World) -> None:
    device = await _yealink(sessions)
    async with sessions() as session, session.begin():
        await devices_changed(session, Device.id == device.id, "first")
        await devices_changed(session, Device.id == device.id, "second")
    revision = device.config_revision + 2
    now = utcnow()

    def facts(seconds: int, ip: str, rev: int) -> SightingFacts:
        return SightingFacts(
            device_id=device.id, seen_at=now + timedelta(seconds=seconds), ip=ip,
            user_agent=YEALINK_UA, firmware="108.86.0.20", file_name=f"{YEALINK_MAC}.cfg",
            revision=rev,
        )  # fmt: skip

    # Out of order on purpose: the newest sighting carries an older revision.
    batch = [
        facts(2, "192.0.2.2", revision),
        facts(5, "192.0.2.5", revision - 1),
        facts(1, "192.0.2.1", revision - 2),
    ]
    await write(batch)
    seen = await _yealink(sessions)
    assert seen.last_ip == "192.0.2.5" and seen.last_revision_served == revision - 1
    async with sessions() as session:
        states = (
            await session.scalars(select(Push.state).where(Push.device_id == device.id))
        ).all()
    assert states and set(states) == {"applied"}  # the top revision was fetched at second 2
    assert await _sightings(sessions, device.id) == 3

    # Several devices in one batch: one statement each, executed for many rows.
    async with sessions() as session:
        other = await session.scalar(select(Device).where(Device.mac == world.linphone_mac))
    assert other is not None
    await write(
        [
            facts(6, "192.0.2.6", revision),
            facts(6, "192.0.2.7", other.config_revision)._replace(device_id=other.id),
        ],
    )
    async with sessions() as session:
        assert (
            await session.scalar(select(Device.last_ip).where(Device.id == other.id)) == "192.0.2.7"
        )
        pending = await session.scalar(
            select(func.count())
            .select_from(Push)
            .where(Push.device_id == other.id, Push.state != "applied")
        )
    assert pending == 0
    assert (await _yealink(sessions)).last_ip == "192.0.2.6"

    # A device deleted meanwhile: its sighting is dropped, the batch still goes in.
    await write(
        [facts(7, "192.0.2.8", revision)._replace(device_id=10**9), facts(8, "192.0.2.9", revision)]
    )
    assert (await _yealink(sessions)).last_ip == "192.0.2.9"

    # An older batch (another instance lagging) never moves last-seen back in time.
    await write([facts(-60, "198.51.100.1", revision)])
    assert (await _yealink(sessions)).last_ip == "192.0.2.9"


async def _down(_batch: object) -> None:
    """A writer whose database is unreachable."""
    raise DatabaseUnavailable("ConnectionRefusedError")


async def test_an_outage_keeps_the_newest_facts_within_the_limit(
    settings: Settings, sessions: SessionFactory, world: World
) -> None:
    device = await _yealink(sessions)
    buffer = SightingBuffer(_down, interval=1, limit=3)
    base = utcnow()
    for n in range(5):
        await buffer.add(
            SightingFacts(
                device.id, base + timedelta(seconds=n), f"192.0.2.{n}", "ua", None, "f", 1
            )
        )
    assert len(buffer) == 3 and buffer.dropped == 2
    await buffer.flush()  # fails: kept for the next round
    assert [f.ip for f in buffer._pending] == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]
    rows = open_rows(settings.database_url)
    buffer.write = rows.write_sightings  # the database is back
    try:
        await buffer.flush()
    finally:
        await rows.close()
    assert len(buffer) == 0 and buffer.written == 3
    assert (await _yealink(sessions)).last_ip == "192.0.2.4"


async def test_repeated_facts_rewritten_only_after_the_refresh_period(
    aiohttp_client: Any, settings: Settings, sessions: SessionFactory, world: World
) -> None:
    """Last-seen facts a fetch repeats are not written again within SIGHTING_REFRESH_SECONDS;
    a new address, User-Agent, firmware or revision is."""
    app = create_app(replace(settings, sighting_refresh_seconds=3600))
    client: TestClient = await aiohttp_client(app)
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    resp = await client.get(path, headers={"User-Agent": YEALINK_UA})
    assert resp.status == 200
    first = (await _yealink(sessions)).last_seen_at
    assert first is not None
    resp = await client.get(path, headers={"User-Agent": YEALINK_UA})
    assert resp.status == 200
    assert (await _yealink(sessions)).last_seen_at == first  # repeated: not rewritten
    device = await _yealink(sessions)
    async with sessions() as session, session.begin():
        await devices_changed(session, Device.id == device.id, "test")
    resp = await client.get(path, headers={"User-Agent": YEALINK_UA})
    assert resp.status == 200
    changed = await _yealink(sessions)
    assert changed.last_seen_at is not None and changed.last_seen_at > first
    assert changed.last_revision_served == device.config_revision + 1  # the push proof
    async with sessions() as session:
        states = (
            await session.scalars(select(Push.state).where(Push.device_id == device.id))
        ).all()
    assert states and set(states) == {"applied"}


async def test_facts_never_written_are_forgotten() -> None:
    """A fact dropped or whose write failed is not counted as written: the next fetch that
    repeats it (a new revision's proof above all) is written."""

    async def down(_batch: Any) -> None:
        raise DatabaseUnavailable("OperationalError")

    now = utcnow()
    told = (5, "192.0.2.1", YEALINK_UA, "108.86.0.20")
    facts = SightingFacts(1, now, "192.0.2.1", YEALINK_UA, "108.86.0.20", "a.cfg", 5)
    at_once = SightingBuffer(
        down, interval=0, limit=10,
        history=SightingHistory(3600, 10), refresh=SightingHistory(60, 10),
    )  # fmt: skip
    assert at_once.refresh.keep(1, "", told, 0) and at_once.history.keep(1, "a.cfg", told, 0)
    await at_once.add(facts)  # the write fails
    assert at_once.refresh.keep(1, "", told, 1) and at_once.history.keep(1, "a.cfg", told, 1)

    batched = SightingBuffer(
        down, interval=60, limit=1,
        history=SightingHistory(3600, 10), refresh=SightingHistory(60, 10),
    )  # fmt: skip
    assert batched.refresh.keep(1, "", told, 0)
    await batched.add(facts)
    await batched.add(facts._replace(device_id=2))  # over the limit: the first is dropped
    assert batched.refresh.keep(1, "", told, 1)
    assert not batched.refresh.keep(1, "", told, 2)  # remembered again from here
