"""Migrations run up, down and up again on an empty database of the engine under test."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from provisioning.db.engine import make_engine
from provisioning.db.migrate import downgrade, is_current, upgrade
from provisioning.db.models import Base
from tests.conftest import PG_TEST_DB, fresh_pg_database


async def _empty_database(tmp_path: Path, database_url: str, is_postgres: bool) -> str:
    if not is_postgres:
        return f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}"
    return await fresh_pg_database(database_url, f"{PG_TEST_DB}_migrations")


async def test_upgrade_downgrade_upgrade(
    tmp_path: Path, database_url: str, is_postgres: bool
) -> None:
    engine = make_engine(await _empty_database(tmp_path, database_url, is_postgres))

    async def tables() -> set[str]:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    expected = {table.name for table in Base.metadata.sorted_tables}
    try:
        assert not await is_current(engine)
        await upgrade(engine)
        assert await is_current(engine)
        assert expected <= await tables()
        await downgrade(engine, "base")
        assert not (expected & await tables())
        await upgrade(engine)
        assert expected <= await tables()
    finally:
        await engine.dispose()


async def test_instances_starting_together_migrate_one_after_the_other(
    tmp_path: Path, database_url: str, is_postgres: bool
) -> None:
    import asyncio

    url = await _empty_database(tmp_path, database_url, is_postgres)
    engines = [make_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert await is_current(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()
