"""Files rendered ahead and kept in the database (render.stored, phones.prerender): a phone's
first fetch after a restart reads them instead of rendering; it never gets bytes older than the
revision the database holds when it asks, nor bytes made from other templates, settings or keys.
On SQLite and PostgreSQL alike (the suite runs on both)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select, update

from provisioning import accounts
from provisioning.app import PRERENDERER
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, RenderedFile
from provisioning.phones import files as phone_files
from provisioning.phones.prerender import Prerenderer
from provisioning.render.files import device_files, render_file
from provisioning.render.snapshot import find_device, load_device_data
from provisioning.render.stored import Sealer
from provisioning.settings import Settings
from provisioning.state import SERVICES
from tests.conftest import TEST_KEY, YEALINK_MAC, YEALINK_UA, World
from tests.test_lane import exchange, get, serving, split_responses


def _fetch(world: World) -> bytes:
    return get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", f"User-Agent: {YEALINK_UA}")


async def _rendered_ahead(app: Any) -> None:
    async with asyncio.timeout(20):
        await app[PRERENDERER].passed.wait()


async def _stored(sessions: SessionFactory) -> list[RenderedFile]:
    async with sessions() as session:
        return list((await session.scalars(select(RenderedFile))).all())


def _no_rendering(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Rendering at fetch time made impossible: a fetch that tries answers 503."""
    tried: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        tried.append("render")
        raise RuntimeError("this fetch was to read a file rendered ahead")

    monkeypatch.setattr(phone_files, "render_file", refuse)
    return tried


async def test_a_first_fetch_after_a_restart_reads_what_was_rendered_ahead(
    settings: Settings, world: World, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead = replace(settings, prerender_rate=10_000)
    async with serving(ahead) as (url, app):
        await _rendered_ahead(app)
        before = split_responses(await exchange(url, _fetch(world)))[0]
    assert before[0] == 200
    kept = {(row.device_id, row.file_name) for row in await _stored(sessions)}
    async with sessions() as session:
        devices = (await session.scalars(select(Device))).all()
    # Every file of every device, at its revision.
    assert len(kept) >= len(devices) and {d for d, _ in kept} == {d.id for d in devices}

    tried = _no_rendering(monkeypatch)
    async with serving(settings) as (url, app):  # restarted: nothing in memory
        after = split_responses(await exchange(url, _fetch(world)))[0]
    assert tried == []
    assert after[0] == 200
    assert after[2] == before[2] and after[1]["etag"] == before[1]["etag"]
    assert b"Alice 1" in after[2]


async def test_a_change_is_never_answered_with_an_older_render(
    settings: Settings, world: World, sessions: SessionFactory
) -> None:
    async with serving(replace(settings, prerender_rate=10_000)) as (url, app):
        await _rendered_ahead(app)
    # Changed while no server renders ahead (or before it gets to it): the kept file is now
    # one revision behind.
    async with sessions() as session, session.begin():
        await accounts.set_line_display_name(session, world.line_ids[0], "Renamed Desk")
    async with serving(settings) as (url, _):
        answer = split_responses(await exchange(url, _fetch(world)))[0]
    assert answer[0] == 200
    assert b"Renamed Desk" in answer[2] and b"Alice 1" not in answer[2]


async def test_a_raw_revision_bump_is_enough_to_stop_a_kept_file(
    settings: Settings,
    world: World,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(replace(settings, prerender_rate=10_000)) as (url, app):
        await _rendered_ahead(app)
    async with sessions() as session, session.begin():
        await session.execute(
            update(Device)
            .where(Device.mac == YEALINK_MAC)
            .values(config_revision=Device.config_revision + 1)
        )
    tried = _no_rendering(monkeypatch)
    async with serving(settings) as (url, _):
        answer = split_responses(await exchange(url, _fetch(world)))[0]
    assert tried == ["render"]  # the kept file was not used: it had to render (and could not)
    assert answer[0] == 503


async def test_other_settings_do_not_use_kept_files(
    settings: Settings,
    world: World,
    sessions: SessionFactory,
    tmp_path: Any,
) -> None:
    async with serving(replace(settings, prerender_rate=10_000)) as (url, app):
        await _rendered_ahead(app)
    moved = replace(settings, public_url="http://elsewhere.test:8080")
    async with serving(moved) as (url, _):
        answer = split_responses(await exchange(url, _fetch(world)))[0]
    assert answer[0] == 200
    assert b"elsewhere.test" in answer[2] and b"phones.test" not in answer[2]


async def test_kept_files_are_sealed_and_bound_to_their_row(
    settings: Settings, world: World, sessions: SessionFactory
) -> None:
    async with serving(replace(settings, prerender_rate=10_000)) as (_, app):
        await _rendered_ahead(app)
    rows = await _stored(sessions)
    assert rows
    for row in rows:
        for secret in (b"secret-1", b"secret-2", world.yealink_token.encode(), b"Alice"):
            assert secret not in row.body
    sealer = Sealer(TEST_KEY)
    row = next(r for r in rows if r.file_name == f"{YEALINK_MAC}.cfg")
    body = sealer.open(row.body, row.device_id, row.file_name, row.revision)
    assert body is not None and b"secret-1" in body
    # Another device's, another file's, another revision's row does not open; nor another key.
    assert sealer.open(row.body, row.device_id + 1, row.file_name, row.revision) is None
    assert sealer.open(row.body, row.device_id, "x.cfg", row.revision) is None
    assert sealer.open(row.body, row.device_id, row.file_name, row.revision + 1) is None
    other = Sealer("8Bv2Ng1hXy4vYb5oZ3oR3mI0d9QmY2m0p1Lq5lV2E1k=")
    assert other.open(row.body, row.device_id, row.file_name, row.revision) is None
    assert other.key_id != sealer.key_id


async def _now(sessions: SessionFactory, settings: Settings, app: Any) -> bytes:
    """What the phone must get now: its file rendered from the database as it is (the ORM
    path `provisioning render` uses, not the fetch path's reads)."""
    services = app[SERVICES]
    async with sessions() as session:
        device = await find_device(session, mac=YEALINK_MAC)
        assert device is not None
        data = await load_device_data(session, device, services.cipher, settings)
    (spec,) = [s for n, s in device_files(services.catalog, device.model_id, device.mac)
               if n == f"{YEALINK_MAC}.cfg"]  # fmt: skip
    return render_file(services.renderer, settings, data, spec).body


async def test_any_sequence_of_changes_renders_and_restarts_answers_what_the_database_says(
    settings: Settings, world: World, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes of every kind (through the domain, or a raw revision bump), passes of the
    renderer ahead, restarts (an empty render cache) and fetches, in a random order: every
    fetch answers the file as the database says it is at that moment, never an older one."""
    rng = random.Random(20261203)
    opened, rendered = phone_files._opened, phone_files.render_file
    from_store: list[bool] = []  # per render-cache miss: the kept file used, or rendered

    def counted(*args: Any) -> Any:
        found = opened(*args)
        if found is not None:
            from_store.append(True)
        return found

    def counted_render(*args: Any) -> Any:
        from_store.append(False)
        return rendered(*args)

    monkeypatch.setattr(phone_files, "_opened", counted)
    monkeypatch.setattr(phone_files, "render_file", counted_render)
    ahead = replace(settings, prerender_rate=0)  # passes are driven here, one at a time
    async with serving(ahead) as (url, app):
        services = app[SERVICES]
        prerenderer = Prerenderer(services)
        prerenderer.rate = 1_000_000
        fetched = 0
        for step in range(60):
            action = rng.choice(["rename", "password", "bump", "render", "restart", "fetch"])
            if action in ("rename", "password", "bump"):
                async with sessions() as session, session.begin():
                    line_id = rng.choice(world.line_ids[:2])
                    if action == "rename":
                        await accounts.set_line_display_name(session, line_id, f"Desk {step}")
                    elif action == "password":
                        await accounts.set_line_password(
                            session, services.cipher, line_id, f"pw-{step}-Aa1!"
                        )
                    else:
                        await session.execute(
                            update(Device)
                            .where(Device.mac == YEALINK_MAC)
                            .values(config_revision=Device.config_revision + 1)
                        )
            elif action == "render":
                prerenderer._done_at = None  # a pass whatever the generation says
                await prerenderer.pass_once()
            elif action == "restart":
                services.cache.clear()
                services.answers.clear()
            else:
                answer = split_responses(await exchange(url, _fetch(world)))[0]
                assert answer[0] == 200, step
                assert answer[2] == await _now(sessions, settings, app), step
                fetched += 1
        assert fetched >= 5
    assert prerenderer.rendered > 0
    # Both ways were taken: files read from the store, and stale ones rendered again.
    assert True in from_store and False in from_store, from_store


async def test_a_restart_with_nothing_changed_does_not_read_every_device_again(
    settings: Settings,
    world: World,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker's whole pass is noted (share, fingerprint, row_generation at its start): a
    restart with the same templates and no change since skips the scan for pending devices,
    which reads every device. Any change, or another fingerprint, and it scans (and renders)."""
    ahead = replace(settings, prerender_rate=0)  # passes are driven here, one at a time
    scans: list[tuple[int, int]] = []

    async def restart(with_settings: Settings) -> Prerenderer:
        async with serving(with_settings) as (_, app):
            monkeypatch.setattr(app[SERVICES].guard.rows, "pending", _counting(scans, app))
            prerenderer = Prerenderer(app[SERVICES], (0, 1))
            prerenderer.rate = 1_000_000
            await prerenderer.pass_once()
            return prerenderer

    first = await restart(ahead)
    assert scans and first.rendered > 0  # nothing noted yet: scanned and rendered
    scans.clear()
    again = await restart(ahead)
    assert scans == [] and again.rendered == 0 and again.passes == 1  # skipped, still a pass
    # A change through any connection (a raw revision bump): scanned, that device rendered.
    async with sessions() as session, session.begin():
        await session.execute(
            update(Device)
            .where(Device.mac == YEALINK_MAC)
            .values(config_revision=Device.config_revision + 1)
        )
    changed = await restart(ahead)
    assert scans and changed.rendered == 1
    scans.clear()
    assert (await restart(ahead)).rendered == 0 and scans == []
    # Another fingerprint (a setting rendering reads): every device rendered again.
    moved = await restart(replace(ahead, public_url="http://elsewhere.test:8080"))
    assert scans and moved.rendered == len(await _device_ids(sessions))
    # Another share (the worker count changed): its own pass, scanned.
    scans.clear()
    async with serving(ahead) as (_, app):
        other = Prerenderer(app[SERVICES], (0, 2))
        other.rate = 1_000_000
        monkeypatch.setattr(other.services.guard.rows, "pending", _counting(scans, app))
        await other.pass_once()
    assert scans


def _counting(scans: list[tuple[int, int]], app: Any) -> Any:
    pending = app[SERVICES].guard.rows.pending

    async def counted(*args: Any) -> list[int]:
        scans.append(args[2])
        return await pending(*args)

    return counted


async def _device_ids(sessions: SessionFactory) -> list[int]:
    async with sessions() as session:
        return list((await session.scalars(select(Device.id))).all())
