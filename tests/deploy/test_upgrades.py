"""Upgrades: migrations are additive, so `provisioning db upgrade` of a newer release can run
while an instance of the current one serves; backups and restores as deploy/README.md says."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from provisioning.db.engine import SessionFactory, make_engine
from provisioning.db.migrate import MIGRATIONS, alembic_config
from provisioning.db.models import Device, Line
from provisioning.devices.catalog import Catalog
from provisioning.settings import PROJECT_ROOT, Settings
from tests.deploy.conftest import seed, server_env
from tests.deploy.servers import Instance, instances
from tests.peers.require import require_binary

# What an upgrade may not do while the previous release still runs.
CONTRACTING = {"drop_table", "drop_column", "drop_constraint", "alter_column", "rename_table"}


def _migration_calls(path: Path) -> list[tuple[str, ast.Call]]:
    tree = ast.parse(path.read_text())
    upgrade = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "upgrade"
    )
    calls = []
    for node in ast.walk(upgrade):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            calls.append((node.func.attr, node))
    return calls


def test_migrations_are_additive() -> None:
    """A migration adds tables, indexes, nullable (or defaulted) columns; it drops or changes
    nothing the previous release reads. A release that must contract says so with
    `CONTRACT = True` in the migration, and deploy/README.md's upgrade order then says when."""
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text()
        if re.search(r"^CONTRACT = True$", source, re.M):
            continue
        for name, call in _migration_calls(path):
            assert name not in CONTRACTING, f"{path.name}: {name} in upgrade()"
            if name == "add_column":
                column = next(a for a in call.args if isinstance(a, ast.Call))
                keywords = {k.arg: k.value for k in column.keywords}
                nullable = keywords.get("nullable")
                assert (
                    nullable is None
                    or (isinstance(nullable, ast.Constant) and nullable.value is True)
                    or "server_default" in keywords
                ), f"{path.name}: a NOT NULL column without a server default"


async def _future_release(url: str, head: str, apply: bool) -> None:
    """What a newer release's additive migration does (a table, a nullable column, its
    revision), or undoes it."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            if apply:
                await conn.execute(text("CREATE TABLE future_things (id INTEGER PRIMARY KEY)"))
                await conn.execute(text("ALTER TABLE devices ADD COLUMN future_note TEXT"))
                await conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
            else:
                await conn.execute(text("DROP TABLE future_things"))
                await conn.execute(text("ALTER TABLE devices DROP COLUMN future_note"))
                await conn.execute(
                    text("UPDATE alembic_version SET version_num = :head"), {"head": head}
                )
    finally:
        await engine.dispose()


async def test_an_instance_keeps_serving_while_a_newer_release_migrates(
    database_url: str, sessions: SessionFactory, settings: Settings, catalog: Catalog,
    tmp_path: Path,
) -> None:  # fmt: skip
    world = await seed(sessions, settings, catalog, "sip.example.net", 2)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    server = Instance("old-release", tmp_path, server_env(database_url))
    with instances(server):
        server.start()
        await server.ready()
        await _future_release(database_url, head, apply=True)
        try:
            async with aiohttp.ClientSession() as client:
                mac = world.macs[0]
                async with client.get(f"{server.url}/{world.tokens[mac]}/{mac}.cfg") as resp:
                    assert resp.status == 200
                    assert "account.1.password = pw-alice" in await resp.text()
                async with client.get(f"{server.url}/readyz") as resp:
                    assert (resp.status, (await resp.json())["schema"]) == (200, "ahead")
                # Writes too: an association and an order.
                headers = {"Authorization": f"Bearer {world.api}"}
                body = {"line_id": world.lines["alice2"], "mac": world.macs[1]}
                url = f"{server.url}/api/v1/associations"
                async with client.post(url, json=body, headers=headers) as resp:
                    assert resp.status == 202, await resp.text()
                body = {
                    "line_id": world.lines["spare1"], "model": "yealink-t46u",
                    "carrier": "dhl", "accept_contract": True,
                }  # fmt: skip
                url = f"{server.url}/api/v1/orders"
                async with client.post(url, json=body, headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
        finally:
            await _future_release(database_url, head, apply=False)
    assert "Traceback" not in server.log()


def _readme_command(start: str) -> str:
    readme = (PROJECT_ROOT / "deploy" / "README.md").read_text()
    return next(line.strip() for line in readme.splitlines() if line.strip().startswith(start))


async def test_sqlite_backup_and_restore_as_documented(
    database_url: str, sessions: SessionFactory, settings: Settings, catalog: Catalog,
    tmp_path: Path, is_postgres: bool,
) -> None:  # fmt: skip
    if is_postgres:
        pytest.skip("the SQLite backup is tested on the SQLite leg")
    await seed(sessions, settings, catalog, "sip.example.net", 2)
    database = make_url(database_url).database
    assert database is not None
    folder = tmp_path / "state"
    folder.mkdir()
    # The README's online backup, on a copy of the live database (the suite's stays in use).
    live = folder / "provisioning.sqlite3"
    shutil.copy(database, live)
    command = _readme_command(
        "python3 -c \"import sqlite3; sqlite3.connect('provisioning.sqlite3')"
    )
    run = await asyncio.to_thread(
        subprocess.run,
        ["sh", "-c", command.replace("python3", sys.executable, 1)],
        cwd=folder, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # Restore: the backup replaces the database; the data is all there.
    live.unlink()
    (folder / "backup.sqlite3").rename(live)
    engine = make_engine(f"sqlite+aiosqlite:///{live}")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(Line)) == 6
            assert await conn.scalar(select(func.count()).select_from(Device)) == 2
    finally:
        await engine.dispose()


async def test_postgresql_backup_and_restore_as_documented(
    database_url: str, sessions: SessionFactory, settings: Settings, catalog: Catalog,
    tmp_path: Path, is_postgres: bool,
) -> None:  # fmt: skip
    if not is_postgres:
        pytest.skip("the PostgreSQL backup is tested on the PostgreSQL leg")
    pg_dump, pg_restore = require_binary("pg_dump"), require_binary("pg_restore")
    await seed(sessions, settings, catalog, "sip.example.net", 2)
    plain = make_url(database_url).set(drivername="postgresql")
    dump = tmp_path / "provisioning.dump"
    env = {**os.environ, "PGPASSWORD": plain.password or ""}
    source = f"postgresql://{plain.username}@{plain.host}:{plain.port}/{plain.database}"
    run = await asyncio.to_thread(
        subprocess.run, [pg_dump, "--format=custom", f"--file={dump}", source],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    from tests.conftest import fresh_pg_database

    restored_url = await fresh_pg_database(database_url, f"{plain.database}_restored")
    target = f"postgresql://{plain.username}@{plain.host}:{plain.port}/{plain.database}_restored"
    run = await asyncio.to_thread(
        subprocess.run,
        [pg_restore, "--clean", "--if-exists", "--no-owner", f"--dbname={target}", str(dump)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    engine = make_engine(restored_url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(Line)) == 6
            assert await conn.scalar(select(func.count()).select_from(Device)) == 2
    finally:
        await engine.dispose()
