"""What "the database cannot answer" is, for every layer: the API's and the Manager's 503, the
phone path's 503 with Retry-After, the background loops' "try again at the next tick".

SQLAlchemy wraps most driver errors, but not all of them: asyncpg raises its own
`InternalClientError` and `InterfaceError` from a connection the server closed under it (seen in
a PostgreSQL stop/start under load), and the phone path's direct readers (`phones.lookup`) talk
to sqlite3 and asyncpg themselves. Every one of them is the same fact for the caller.
"""

from __future__ import annotations

import sqlite3

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.exc import SQLAlchemyError


class DatabaseUnavailable(Exception):
    """The driver failed; the fetch path answers 503 with Retry-After, as for the ORM's errors."""


DB_ERRORS: tuple[type[Exception], ...] = (
    SQLAlchemyError,
    OSError,
    TimeoutError,
    DatabaseUnavailable,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def describe(exc: BaseException) -> str:
    """A database error for a log line: its class, and for the driver's the driver's class
    (e.g. TooManyConnectionsError) — never the message, which may quote parameters."""
    if isinstance(exc, DatabaseUnavailable):
        return f"{type(exc).__name__} ({exc})"
    return type(exc).__name__
