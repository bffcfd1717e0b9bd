"""The fetch path's driver-level reads (`phones.lookup`) against the ORM's: the same device row,
the same render data (lines, account, overrides in scope order, digest credential)."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.crypto import Cipher, token_hash
from provisioning.db.engine import SessionFactory
from provisioning.db.errors import DatabaseUnavailable
from provisioning.devices.catalog import Catalog
from provisioning.overrides import set_override
from provisioning.phones.lookup import open_rows
from provisioning.render.snapshot import find_device, load_device_data
from provisioning.security.credentials import rotate_credential
from provisioning.settings import Settings
from tests.conftest import World


def _shipped_order(account_id: int, model_id: str, device_id: int) -> Any:
    from provisioning.db.models import Order, utcnow

    now = utcnow()
    return Order(
        account_id=account_id, kind="new", state="shipped", model_id=model_id,
        model_label="-", carrier="c", carrier_label="-", delivery_name="-",
        delivery_street="-", delivery_postcode="-", delivery_town="-", delivery_country="FR",
        vat_rate_bp=2000, model_price_cents=100, shipping_cents=0, total_excl_cents=100,
        vat_cents=20, total_incl_cents=120, contract_accepted_at=now, validated_at=now,
        ship_by=now, device_id=device_id,
    )  # fmt: skip


async def test_rows_and_render_data_match_the_orm(
    settings: Settings, sessions: SessionFactory, catalog: Catalog, world: World
) -> None:
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        await set_override(
            session, catalog, "model", "yealink-t46u", "local_time.ntp_server1", "ntp.model"
        )
        await set_override(
            session,
            catalog,
            "account",
            str(world.account_id),
            "local_time.ntp_server1",
            "ntp.account",
        )
        await set_override(
            session, catalog, "device", world.yealink_mac, "local_time.ntp_server2", "ntp.device"
        )
        await rotate_credential(session, cipher, world.yealink_mac, "digest", overlap=0)
    rows = open_rows(settings.database_url)
    try:
        async with sessions() as session:
            device = await find_device(session, mac=world.yealink_mac)
            assert device is not None
            expected = await load_device_data(session, device, cipher, settings)
        row = await rows.by_token_hash(token_hash(world.yealink_token))
        assert row is not None and row == await rows.by_mac(world.yealink_mac)
        assert (row.id, row.mac, row.model_id, row.account_id, row.config_revision) == (
            device.id, device.mac, device.model_id, device.account_id, device.config_revision,
        )  # fmt: skip
        assert row.created_at == device.created_at and not row.seen
        assert await rows.by_token_hash(token_hash("no-such-token-at-all")) is None
        found = await rows.render_rows(row.id)
        assert found is not None
        data = found.device_data(cipher, settings)
        assert data == expected
        assert data.overrides == {
            "local_time.ntp_server1": "ntp.account",  # account wins over model
            "local_time.ntp_server2": "ntp.device",
        }
        assert data.http_username == world.yealink_mac and data.http_password
        assert len(data.lines) == 2
        assert await rows.render_rows(10**9) is None
    finally:
        await rows.close()


async def test_a_broken_database_is_reported_as_unavailable(
    settings: Settings, tmp_path: object
) -> None:
    if settings.database_url.startswith("sqlite"):
        rows = open_rows(f"sqlite+aiosqlite:///{tmp_path}/empty.sqlite3")  # no tables
    else:
        rows = open_rows("postgresql+asyncpg://nobody:wrong@127.0.0.1:1/none")  # nothing listens
    try:
        for read in (rows.by_mac("0015654aa937"), rows.render_rows(1)):
            try:
                await read
            except DatabaseUnavailable:
                continue
            raise AssertionError("a read of a broken database succeeded")
    finally:
        await rows.close()


async def test_concurrent_first_requests_share_one_pool(
    settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the connection pool is PostgreSQL's (SQLite reads on the loop's thread)")
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    made = []
    create_pool = asyncpg.create_pool

    async def counting(*args: object, **kwargs: object) -> object:
        made.append(1)
        return await create_pool(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", counting)
    rows = open_rows(settings.database_url)
    try:
        found = await asyncio.gather(*(rows.by_mac(world.yealink_mac) for _ in range(30)))
        assert all(row is not None for row in found)
        assert len(made) == 1
    finally:
        await rows.close()


async def test_rows_and_their_generation_follow_the_database(
    settings: Settings, sessions: SessionFactory, world: World
) -> None:
    """A row read again carries the same generation while nothing it holds changed, whatever
    else was written (last-seen facts refreshed by sightings), so answers decided from it are
    kept; a change to anything it holds, by any statement of any connection (row_generation,
    moved by triggers), moves it: never a stale revision, token, first sighting, pending
    delivery or deleted device."""
    from datetime import timedelta

    from sqlalchemy import delete, update

    from provisioning.db.models import Device, Order, utcnow
    from provisioning.phones.sightings import SightingFacts
    from provisioning.push.changes import devices_changed

    rows = open_rows(settings.database_url)
    hashed = token_hash(world.yealink_token)

    async def sighting(device_id: int, revision: int) -> None:
        await rows.write_sightings(
            [SightingFacts(device_id, utcnow(), "192.0.2.9", "ua", None, "f.cfg", revision)]
        )

    try:
        first = await rows.by_token_hash(hashed)
        assert first is not None and not first.seen
        again_first = await rows.by_token_hash(hashed)
        assert again_first == first and again_first.read_at == first.read_at  # nothing changed
        # The first sighting changes what the row says (seen): read afresh.
        await sighting(first.id, first.config_revision)
        seen = await rows.by_token_hash(hashed)
        assert seen is not None and seen.seen and seen.config_revision == first.config_revision
        # Later sightings refresh last-seen facts only: the row and its generation stay.
        await sighting(first.id, first.config_revision)
        again = await rows.by_token_hash(hashed)
        assert again == seen
        assert again.read_at == seen.read_at  # the generation stays: kept answers stay
        assert seen.read_at != first.read_at
        async with sessions() as session, session.begin():
            await devices_changed(session, Device.id == first.id, "test")
        changed = await rows.by_token_hash(hashed)
        assert changed is not None
        assert changed.config_revision == first.config_revision + 1
        # A device set back to "never seen" (a returned phone made ready again).
        async with sessions() as session, session.begin():
            await session.execute(
                update(Device).where(Device.id == first.id).values(last_seen_at=None)
            )
        unseen = await rows.by_mac(world.yealink_mac)
        assert unseen is not None and not unseen.seen
        assert await rows.by_mac(world.yealink_mac) == unseen
        async with sessions() as session, session.begin():
            created = utcnow() - timedelta(days=3)
            await session.execute(
                update(Device).where(Device.id == first.id).values(created_at=created)
            )
        older = await rows.by_mac(world.yealink_mac)
        assert older is not None and older.created_at == created
        async with sessions() as session, session.begin():
            await session.execute(
                update(Device).where(Device.id == first.id).values(token_hash="0" * 64)
            )
        assert await rows.by_token_hash(hashed) is None  # the old token names nobody now
        assert await rows.by_mac(world.yealink_mac) is not None
        # A shipped order makes a never-seen phone's next fetch its delivery; then not.
        other = await rows.by_mac(world.linphone_mac)
        assert other is not None and not other.awaiting_delivery
        async with sessions() as session, session.begin():
            session.add(_shipped_order(world.account_id, other.model_id, other.id))
        shipped = await rows.by_mac(world.linphone_mac)
        assert shipped is not None and shipped.awaiting_delivery
        async with sessions() as session, session.begin():
            await session.execute(update(Order).values(state="delivered"))
        delivered = await rows.by_mac(world.linphone_mac)
        assert delivered is not None and not delivered.awaiting_delivery
        async with sessions() as session, session.begin():
            await session.execute(delete(Device).where(Device.mac == world.linphone_mac))
        assert await rows.by_mac(world.linphone_mac) is None
    finally:
        await rows.close()


async def test_a_generation_never_comes_back(
    settings: Settings, sessions: SessionFactory, world: World
) -> None:
    """A database restored under a running server, or `row_generation` deleted and inserted
    again by hand, may bring the number back to a value read before, with other rows behind
    it: what this process returns is then another series, so nothing kept under the old value
    (rows, answers) is ever taken for current."""
    from sqlalchemy import text

    world_token = world.yealink_token
    rows = open_rows(settings.database_url)

    async def run(sql: str) -> None:
        async with sessions() as session, session.begin():
            await session.execute(text(sql))

    try:
        seen = [await rows.generation()]
        await run("UPDATE row_generation SET value = value + 3")
        seen.append(await rows.generation())
        await run("UPDATE row_generation SET value = value - 3")  # back in time
        seen.append(await rows.generation())
        await run("UPDATE row_generation SET value = value + 3")  # the value of seen[1] again
        seen.append(await rows.generation())
        await run("DELETE FROM row_generation")
        assert await rows.generation() is None
        await run(f"INSERT INTO row_generation (id, value) VALUES (1, {seen[0] & (2**48 - 1)})")
        seen.append(await rows.generation())
        assert None not in seen and len(set(seen)) == len(seen), seen
        assert seen[1] - seen[0] == 3  # within a series, the database's own steps
        # A row read at a number no read of the number alone has seen; the database goes
        # back below it (not below what those reads saw), then forward to the row's number
        # again: the row's number is of the old series.
        await run("UPDATE row_generation SET value = value + 5")
        row = await rows.by_token_hash(token_hash(world_token))
        assert row is not None and row.read_at is not None
        await run("UPDATE row_generation SET value = value - 3")
        await rows.generation()
        await run("UPDATE row_generation SET value = value + 3")
        assert await rows.generation() != row.read_at
    finally:
        await rows.close()
        # The one row back, whatever happened above: every later test needs it.
        await run(
            "INSERT INTO row_generation (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
        )


async def test_each_change_moves_the_generation_once_and_any_row_read_carries_it(
    settings: Settings, sessions: SessionFactory, world: World
) -> None:
    """Whatever statement changes what the fetch path reads moves the number, in that
    transaction (PostgreSQL: once per transaction, SQLite: once per row changed); a row read
    carries the number of its own snapshot, and the number read afterwards is equal while
    nothing moved."""
    from sqlalchemy import text

    rows = open_rows(settings.database_url)

    async def run(*sql: str) -> None:
        async with sessions() as session, session.begin():
            for statement in sql:
                await session.execute(text(statement))

    try:
        before = await rows.generation()
        row = await rows.by_token_hash(token_hash(world.yealink_token))
        assert before is not None and row is not None and row.read_at == before
        # Last-seen facts only: nothing the fetch path reads.
        await run("UPDATE devices SET last_ip = '192.0.2.1' WHERE last_seen_at IS NULL")
        assert await rows.generation() == before
        # Two statements, every device, one transaction.
        await run(
            "UPDATE devices SET config_revision = config_revision + 1",
            f"UPDATE devices SET model_id = model_id WHERE id = {row.id}",
        )
        after = await rows.generation()
        assert after is not None and after > before
        if settings.database_url.startswith("postgresql"):
            assert after == before + 1
        moved = await rows.by_token_hash(token_hash(world.yealink_token))
        assert moved is not None and moved.read_at == after
        assert moved.config_revision == row.config_revision + 1
        # A transaction rolled back moves nothing.
        async with sessions() as session:
            await session.execute(text("UPDATE devices SET config_revision = 0"))
            await session.rollback()
        assert await rows.generation() == after
        # Each of these, alone, moves it (what `COLUMNS` reads, rows and orders come and go).
        other = await rows.by_mac(world.linphone_mac)
        assert other is not None
        changes: list[Any] = [
            f"UPDATE devices SET token_hash = '{'1' * 64}' WHERE id = {row.id}",
            f"UPDATE devices SET last_seen_at = CURRENT_TIMESTAMP WHERE id = {row.id}",
            f"UPDATE devices SET last_seen_at = NULL WHERE id = {row.id}",
            f"UPDATE devices SET created_at = '2020-01-01 00:00:00' WHERE id = {row.id}",
            f"UPDATE devices SET mac = '0200000000ff' WHERE id = {row.id}",
            _shipped_order(world.account_id, other.model_id, other.id),
            "UPDATE orders SET state = 'delivered'",
            "DELETE FROM orders",
            f"DELETE FROM devices WHERE id = {row.id}",
        ]
        for change in changes:
            number = await rows.generation()
            async with sessions() as session, session.begin():
                if isinstance(change, str):
                    await session.execute(text(change))
                else:
                    session.add(change)
            assert await rows.generation() == number + 1, change  # type: ignore[operator]
        if settings.database_url.startswith("postgresql"):
            # Emptied by hand: no row trigger fires, the statement's does.
            number = await rows.generation()
            await run("TRUNCATE orders CASCADE")
            assert await rows.generation() == number + 1  # type: ignore[operator]
    finally:
        await rows.close()


async def test_concurrent_callers_share_generation_reads_made_after_they_asked(
    settings: Settings, sessions: SessionFactory, world: World
) -> None:
    """PostgreSQL: callers asking together share one read of the number; a caller asking while
    a read is on its way waits for the next one, so a change committed before it asked is
    always seen."""
    import asyncio

    from sqlalchemy import text

    from provisioning.phones.lookup import PostgresRows

    del world
    rows = open_rows(settings.database_url)
    if not isinstance(rows, PostgresRows):
        pytest.skip("SQLite reads the number on the loop's thread, without waiting")
    sent: list[str] = []
    try:
        first = await rows.generation()
        read_number = rows._read_number

        async def counted() -> int | None:
            sent.append("read")
            return await read_number()

        rows._read_number = counted  # type: ignore[method-assign]
        together = await asyncio.gather(*(rows.generation() for _ in range(50)))
        assert together == [first] * 50 and sent == ["read"]

        # A read whose answer is late: it was read before the change below committed.
        read, late_answer = asyncio.Event(), asyncio.Event()

        async def slow() -> int | None:
            sent.append("read")
            value = await read_number()
            read.set()
            await late_answer.wait()
            return value

        rows._read_number = slow  # type: ignore[method-assign]
        early = asyncio.ensure_future(rows.generation())
        await read.wait()
        async with sessions() as session, session.begin():
            await session.execute(text("UPDATE devices SET config_revision = 7"))
        rows._read_number = counted  # type: ignore[method-assign]
        late = asyncio.ensure_future(rows.generation())  # asks while that read is on its way
        await asyncio.sleep(0.05)
        assert not late.done()
        late_answer.set()
        assert await early == first
        assert await late == first + 1  # type: ignore[operator]
        assert len(sent) == 3
        # A database that stops answering fails the callers.
        rows._read_number = read_number  # type: ignore[method-assign]
        await rows.close()
        with pytest.raises(DatabaseUnavailable):
            await rows.generation()
    finally:
        await rows.close()
