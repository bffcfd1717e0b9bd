"""Shared fixtures. The database is the real thing: a SQLite file, or the PostgreSQL named by
PROVISIONING_TEST_DATABASE_URL (CI runs the suite once on each). Migrations run once per session
through Alembic (so they are tested), and every test starts from empty tables."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import accounts
from provisioning.app import create_app
from provisioning.crypto import Cipher, generate_key
from provisioning.db.engine import SessionFactory, make_engine, make_session_factory
from provisioning.db.migrate import upgrade
from provisioning.db.models import Base
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog, load_catalog
from provisioning.settings import PROJECT_ROOT, Registrar, Settings

pytest_plugins = ["tests.peers.plugin"]

TEST_KEY = generate_key()
# Several suites may share one PostgreSQL server (parallel work trees): each names its database.
PG_TEST_DB = os.environ.get("PROVISIONING_TEST_PG_DATABASE", "provisioning_test")


def _test_database_url(tmp_dir: Path) -> str:
    url = os.environ.get("PROVISIONING_TEST_DATABASE_URL")
    if not url:
        return f"sqlite+aiosqlite:///{tmp_dir / 'test.sqlite3'}"
    if not url.startswith("postgresql+asyncpg://"):
        raise pytest.UsageError("PROVISIONING_TEST_DATABASE_URL must be postgresql+asyncpg://")
    return url


async def fresh_pg_database(admin_url: str, name: str) -> str:
    """An empty database `name` next to the one the URL names; returns its URL."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = _test_database_url(tmp_path_factory.mktemp("db"))
    if url.startswith("postgresql"):
        url = asyncio.run(fresh_pg_database(url, PG_TEST_DB))
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
def firmware_dir(tmp_path: Path) -> Path:
    path = tmp_path / "firmware"
    path.mkdir()
    return path


@pytest.fixture
def settings(database_url: str, firmware_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=(TEST_KEY,),
        public_url="http://phones.test:8080",
        firmware_dir=firmware_dir,
        default_registrar=Registrar("sip.example.net", 5060),
        # Tests of pushes turn the worker on; elsewhere it would only add noise.
        push_enabled=False,
        # Each fetch writes its sighting at once, so tests read it back without waiting; the
        # batched mode has its own tests (test_sightings_batched.py).
        sighting_flush_ms=0,
        # Tests block the loop on purpose (a CLI subprocess run in-process): that is not
        # overload. Shedding has its own tests (test_load.py) and the boot-storm benchmark.
        max_lag_ms=60_000,
        # Rendering ahead writes in the background whenever devices change: tests of it turn
        # it on (test_stored_files.py; `serve` subprocesses run with the default).
        prerender_rate=0,
    )


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(PROJECT_ROOT / "templates" / "devices")


@pytest.fixture
def cipher() -> Cipher:
    return Cipher((TEST_KEY,))


@pytest.fixture
async def sessions(settings: Settings, catalog: Catalog) -> AsyncIterator[SessionFactory]:
    """A session factory on a database emptied for this test, with the catalog synced."""
    engine = make_engine(settings.database_url)
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "row_generation":  # the migration's one row, not data
                await conn.execute(table.delete())
    factory = make_session_factory(engine)
    async with factory() as session, session.begin():
        await inventory.sync_models(session, catalog)
    yield factory
    await engine.dispose()


@dataclass
class World:
    """A small set of objects most tests start from."""

    account_id: int
    other_account_id: int
    line_ids: list[int]
    other_line_id: int
    yealink_mac: str
    yealink_token: str
    linphone_mac: str
    linphone_token: str


YEALINK_MAC = "0015654aa937"
YEALINK_UA = "Yealink SIP-T46U 108.86.0.20 00:15:65:4a:a9:37"
LINPHONE_MAC = "020000c0ffee"


async def make_world(session: AsyncSession, settings: Settings, catalog: Catalog) -> World:
    cipher = Cipher(settings.secret_key)
    account = await accounts.create_account(session, settings, "Alice Martin")
    other = await accounts.create_account(session, settings, "Bob Durand")
    line_ids = []
    for n in range(1, 4):
        line = await accounts.create_line(
            session,
            settings,
            cipher,
            account.id,
            f"+3312345670{n}",
            password=f"secret-{n}",
            display_name=f"Alice {n}",
        )
        line_ids.append(line.id)
    other_line = await accounts.create_line(
        session, settings, cipher, other.id, "+33999999999", password="bob-secret"
    )
    _, y_token = await inventory.add_device(
        session, catalog, cipher, YEALINK_MAC, "yealink-t46u", account.id
    )
    _, l_token = await inventory.add_device(
        session, catalog, cipher, LINPHONE_MAC, "linphone-softphone", account.id
    )
    await inventory.assign_line(session, YEALINK_MAC, line_ids[0])
    await inventory.assign_line(session, YEALINK_MAC, line_ids[1])
    return World(
        account_id=account.id,
        other_account_id=other.id,
        line_ids=line_ids,
        other_line_id=other_line.id,
        yealink_mac=YEALINK_MAC,
        yealink_token=y_token,
        linphone_mac=LINPHONE_MAC,
        linphone_token=l_token,
    )


@pytest.fixture
async def world(sessions: SessionFactory, settings: Settings, catalog: Catalog) -> World:
    async with sessions() as session, session.begin():
        return await make_world(session, settings, catalog)


@pytest.fixture
async def client(
    aiohttp_client: object, settings: Settings, sessions: SessionFactory
) -> TestClient:  # type: ignore[type-arg]
    app = create_app(settings)
    return await aiohttp_client(app)  # type: ignore[operator, no-any-return]
