"""The fetch path's one read per request: a device row by token hash or MAC, straight through the
database driver.

Measured on the project's machine (`benchmarks/boot_storm.py`, README "Boot storms"): the same
indexed select costs about 1.1 ms through an ORM session and 0.3 to 0.7 ms through SQLAlchemy Core
(greenlet and, on SQLite, a thread hop each way), but 9 µs with the sqlite3 module on the event
loop's thread and 36 µs with an asyncpg prepared statement. A booting phone's fetch needs
nothing more than this row until the render cache misses, so the row is read here and the ORM
is kept for everything else.

SQLite runs in WAL mode: a read never waits for a writer, so a synchronous read on the loop's
thread takes microseconds; a short busy timeout bounds the rare wait (a checkpoint restart).
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

COLUMNS = "id, mac, model_id, account_id, config_revision, last_seen_at, created_at"
BY_TOKEN = f"SELECT {COLUMNS} FROM devices WHERE token_hash = "  # noqa: S608 (constants only)
BY_MAC = f"SELECT {COLUMNS} FROM devices WHERE mac = "  # noqa: S608


class DatabaseUnavailable(Exception):
    """The driver failed; the fetch path answers 503 with Retry-After, as for the ORM's errors."""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """What identifying, authorising and caching a fetch need to know about a device."""

    id: int
    mac: str
    model_id: str
    account_id: int | None
    config_revision: int
    last_seen_at: datetime | None
    created_at: datetime


class DeviceRows(ABC):
    @abstractmethod
    async def by_token_hash(self, token_hash: str) -> DeviceRow | None: ...

    @abstractmethod
    async def by_mac(self, mac: str) -> DeviceRow | None: ...

    async def close(self) -> None:
        return None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite keeps UTC as naive ISO text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(values: Any) -> DeviceRow | None:
    if values is None:
        return None
    id_, mac, model_id, account_id, revision, last_seen_at, created_at = values
    created = _utc(created_at)
    assert created is not None
    return DeviceRow(id_, mac, model_id, account_id, revision, _utc(last_seen_at), created)


class SqliteRows(DeviceRows):
    def __init__(self, path: str) -> None:
        # Autocommit: every select sees what other connections and processes committed.
        self._db = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        self._db.execute("PRAGMA query_only = ON")

    def _one(self, sql: str, value: str) -> DeviceRow | None:
        try:
            return _row(self._db.execute(sql + "?", (value,)).fetchone())
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None

    async def by_token_hash(self, token_hash: str) -> DeviceRow | None:
        return self._one(BY_TOKEN, token_hash)

    async def by_mac(self, mac: str) -> DeviceRow | None:
        return self._one(BY_MAC, mac)

    async def close(self) -> None:
        self._db.close()


_PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresRows(DeviceRows):
    def __init__(self, dsn: str, max_size: int) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def _fetch(self, sql: str, value: str) -> DeviceRow | None:
        try:
            if self._pool is None:
                # Connected on first use, so a server starts while the database is down (and
                # answers 503 until it is back).
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=1, max_size=self._max_size, timeout=10
                )
            # asyncpg prepares each statement once per connection and reuses it.
            return _row(await self._pool.fetchrow(sql + "$1", value, timeout=10))
        except _PG_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None

    async def by_token_hash(self, token_hash: str) -> DeviceRow | None:
        return await self._fetch(BY_TOKEN, token_hash)

    async def by_mac(self, mac: str) -> DeviceRow | None:
        return await self._fetch(BY_MAC, mac)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def open_rows(database_url: str) -> DeviceRows:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return SqliteRows(url.database or ":memory:")
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresRows(dsn, max_size=10)
