"""The migrations build exactly the schema the models describe: a column renamed in a model but
not in its migration fails here, not at the first query that uses it."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from provisioning.db.engine import make_engine
from provisioning.db.migrate import upgrade
from provisioning.db.models import Base
from tests.conftest import PG_TEST_DB, fresh_pg_database


async def test_migrated_schema_has_no_difference_with_the_models(
    tmp_path: Path, database_url: str, is_postgres: bool
) -> None:
    if is_postgres:
        url = await fresh_pg_database(database_url, f"{PG_TEST_DB}_schema")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'schema.sqlite3'}"
    engine = make_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert differences == []
