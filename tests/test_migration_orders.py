"""Migration 0005 on a database with phones in service: their lines and sightings survive (on
SQLite the devices table is not rebuilt, which would cascade-delete them), the new device state
is enforced, and the schema matches the models exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from provisioning.db.engine import make_engine
from provisioning.db.migrate import downgrade, upgrade
from provisioning.db.models import Base
from tests.conftest import PG_TEST_DB, fresh_pg_database

ROWS = [
    "INSERT INTO models (id, vendor, family, label, slots, orderable) "
    "VALUES ('m', 'v', 'f', 'M', 4, false)",
    "INSERT INTO accounts (id, name, street, postcode, town, country, timezone, language, "
    "created_at) VALUES (1, 'A', '', '', '', 'FR', 'Europe/Paris', 'fr', CURRENT_TIMESTAMP)",
    "INSERT INTO lines (id, account_id, number, sip_username, password_enc, registrar_host, "
    "registrar_port, transport, display_name, created_at) "
    "VALUES (1, 1, '1', 'u1', 'x', 'h', 5060, 'udp', '', CURRENT_TIMESTAMP)",
    "INSERT INTO devices (id, mac, model_id, slot_count, account_id, state, token_hash, "
    "token_enc, config_revision, created_at) "
    "VALUES (1, '001122334455', 'm', 4, 1, 'active', 'h', 'e', 1, CURRENT_TIMESTAMP)",
    "INSERT INTO line_slots (device_id, slot, line_id, account_id, slot_count) "
    "VALUES (1, 1, 1, 1, 4)",
    "INSERT INTO sightings (device_id, seen_at, ip, user_agent, file_name, revision) "
    "VALUES (1, CURRENT_TIMESTAMP, '192.0.2.1', 'ua', 'f.cfg', 1)",
]


@pytest.fixture
async def url(tmp_path: Path, database_url: str, is_postgres: bool) -> str:
    if not is_postgres:
        return f"sqlite+aiosqlite:///{tmp_path / 'm5.sqlite3'}"
    return await fresh_pg_database(database_url, f"{PG_TEST_DB}_m5")


async def test_0005_keeps_phones_in_service_and_enforces_states(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine, "0004")
        async with engine.begin() as conn:
            for statement in ROWS:
                await conn.execute(text(statement))
        await upgrade(engine)

        async def counts() -> tuple[int, int]:
            async with engine.connect() as conn:
                slots = (await conn.execute(text("SELECT count(*) FROM line_slots"))).scalar()
                seen = (await conn.execute(text("SELECT count(*) FROM sightings"))).scalar()
                return int(slots or 0), int(seen or 0)

        assert await counts() == (1, 1)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE devices SET state = 'to_return'"))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE devices SET state = 'lost'"))

        await downgrade(engine, "0004")
        assert await counts() == (1, 1)
        async with engine.connect() as conn:
            state = (await conn.execute(text("SELECT state FROM devices"))).scalar()
        assert state == "returned"
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE devices SET state = 'to_return'"))
        await upgrade(engine)
        if engine.dialect.name == "sqlite":
            async with engine.connect() as conn:
                check = (await conn.execute(text("PRAGMA integrity_check"))).scalar()
            assert check == "ok"
    finally:
        await engine.dispose()


async def test_the_migrated_schema_is_the_models(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == []
