"""Fixtures of the deployment tests: a PostgreSQL database of their own for the several-instance
set-up, and data seeded the way an operator's tools would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from provisioning import accounts, tokens
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory, make_engine, make_session_factory
from provisioning.db.models import Account
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.settings import Registrar, Settings
from tests.conftest import PG_TEST_DB, TEST_KEY, fresh_pg_database


def pg_admin_url() -> str:
    """PostgreSQL for the several-instance tests: PROVISIONING_TEST_PG_URL (CI sets it on both
    legs), or the suite's own database URL when it is PostgreSQL."""
    url = os.environ.get("PROVISIONING_TEST_PG_URL") or ""
    suite = os.environ.get("PROVISIONING_TEST_DATABASE_URL") or ""
    if not url and suite.startswith("postgresql"):
        url = suite
    if url:
        return url
    reason = (
        "several instances need PostgreSQL: set PROVISIONING_TEST_PG_URL="
        "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/postgres"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def migrate_with_cli(url: str, folder: Path) -> None:
    """`provisioning db upgrade`, as an operator (or the migration Job) runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")}
    env |= {"PROVISIONING_DATABASE_URL": url, "PROVISIONING_SECRET_KEY": TEST_KEY}
    run = subprocess.run(
        [sys.executable, "-m", "provisioning", "db", "upgrade"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


@pytest.fixture
async def shared_pg(tmp_path: Path) -> str:
    """A fresh PostgreSQL database (`<suite database>_multi`), migrated by the CLI."""
    url = await fresh_pg_database(pg_admin_url(), f"{PG_TEST_DB}_multi")
    await asyncio.to_thread(migrate_with_cli, url, tmp_path)
    return url


@pytest.fixture
async def shared_sessions(shared_pg: str) -> AsyncIterator[SessionFactory]:
    engine = make_engine(shared_pg)
    yield make_session_factory(engine)
    await engine.dispose()


@dataclass
class Seed:
    account_id: int
    api: str  # the customer's API token
    macs: list[str]
    tokens: dict[str, str]  # MAC -> URL token
    lines: dict[str, int]  # name -> line id


async def seed(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, registrar: str, phones: int
) -> Seed:
    """An account with a delivery address, lines `alice`, `alice2` (on `registrar`), `spare1`
    to `spare4` (no phone), and `phones` Yealink phones, the first carrying `alice`."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Alice Martin")
        await session.execute(
            update(Account)
            .where(Account.id == account.id)
            .values(street="12 rue de la Paix", postcode="75002", town="Paris")
        )
        lines = {}
        for n, name in enumerate(("alice", "alice2", "spare1", "spare2", "spare3", "spare4")):
            line = await accounts.create_line(
                session, settings, cipher, account.id, f"+3310000000{n}",
                username=name, password=f"pw-{name}", registrar=registrar,
            )  # fmt: skip
            lines[name] = line.id
        macs, found = [], {}
        for n in range(phones):
            mac = f"0015650000{n:02x}"
            _, token = await inventory.add_device(
                session, catalog, cipher, mac, "yealink-t46u", account.id
            )
            macs.append(mac)
            found[mac] = token
        await inventory.assign_line(session, macs[0], lines["alice"])
        _, api = await tokens.create_token(session, "customer", account_id=account.id)
    return Seed(account.id, api, macs, found, lines)


def server_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "PROVISIONING_DATABASE_URL": url,
        "PROVISIONING_SECRET_KEY": TEST_KEY,
        "PROVISIONING_TRUSTED_PROXIES": "127.0.0.1/32",
        "PROVISIONING_LOG_FORMAT": "json",
        "PROVISIONING_PUSH_T1_MS": "100",
        "PROVISIONING_PUBLIC_URL": "http://phones.test",
        **extra,
    }


def settings_for(url: str) -> Settings:
    return Settings(
        database_url=url, secret_key=(TEST_KEY,), default_registrar=Registrar("sip.example.net")
    )
