"""Migrations run up, down and up again on an empty database of the engine under test."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from provisioning.db.engine import make_engine
from provisioning.db.migrate import downgrade, is_current, upgrade
from provisioning.db.models import Base
from tests.conftest import PG_TEST_DB


async def _empty_database(tmp_path: Path, database_url: str, is_postgres: bool) -> str:
    if not is_postgres:
        return f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}"
    name = f"{PG_TEST_DB}_migrations"
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


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
