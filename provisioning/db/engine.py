"""Engine and session factory. Created by the app's cleanup context or a CLI command, never at
import time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        # A busy timeout instead of "database is locked" when two writers meet.
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def make_writer_engine(url: str) -> AsyncEngine | None:
    """SQLite has one writer at a time. Several pooled connections racing for the write lock
    spend their time in SQLite's busy handler, which sleeps; one writer connection makes them
    queue in the pool instead, without sleeping. PostgreSQL needs no such thing (None)."""
    if not url.startswith("sqlite"):
        return None
    return make_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN; we issue BEGIN IMMEDIATE ourselves so
    # that check-then-write sequences are serialised instead of failing on lock upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Foreign keys are what enforce the slot invariants; SQLite leaves them off by default.
    cursor.execute("PRAGMA foreign_keys=ON")
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception as exc:
        # Instances opening a new file together: switching it to WAL needs it to itself, and
        # SQLite answers "locked" at once rather than wait. The mode is kept in the file, so
        # the connection that made the switch made it for every other one.
        if "database is locked" not in str(exc):
            raise
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Read-only work (the phone fetch path) must not queue behind writers: WAL lets it read.
    mode = "DEFERRED" if conn.get_execution_options().get("read_only") else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_session_factory(engine: AsyncEngine, *, read_only: bool = False) -> SessionFactory:
    if read_only:
        options: dict[str, Any] = {"read_only": True}
        if engine.dialect.name == "postgresql":
            # Reads that build one answer (a device and its slots, a page and its count) see
            # one snapshot: under READ COMMITTED each statement had its own, and a device read
            # during an unassign showed a slot whose line was gone. A read-only transaction
            # at this level never fails for serialisation. (SQLite's WAL reader already sees
            # one snapshot per transaction.)
            options["isolation_level"] = "REPEATABLE READ"
        engine = engine.execution_options(**options)
    return async_sessionmaker(engine, expire_on_commit=False)
