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

Both databases have `row_generation`: triggers (migrations 0009 for SQLite, 0010 for
PostgreSQL) move that number in the same transaction as any change to what these rows hold,
whoever commits it (this process, another worker, another instance, the CLI, manual SQL).
Last-seen facts, which phones refresh all the time, do not move it (rows say whether a device
was ever seen, not when): with SQLite's `PRAGMA data_version`, which moves on any commit, the
sightings written every half second would move it twice a second. Each row is read with the
number in one statement (one snapshot) and carries it (`DeviceRow.read_at`), and
`DeviceRows.generation()` reads the number now, so whatever was decided from a row still holds
while the two are equal (phones.answers). A phone's first fetch by token reads the file asked,
as rendered ahead, in that statement too (`by_token_with_file`): one read.

SQLite kept the rows it read while the number stayed, reading the number before each lookup;
since a token fetch reads row and file in one statement, that saved nothing any more and is
gone. On PostgreSQL each read of the number alone is shared by every caller that asked before
it was sent (`generation`), and none gets a number read before it asked. Under a boot storm
one round trip answers about twenty requests (transactions counted by PostgreSQL: 2,400 a
second for 45,000 requests a second, two workers); sending reads at most every millisecond made
fewer of them, but the wait cost more requests a second than the reads did.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from provisioning.crypto import Cipher
from provisioning.db.errors import DatabaseUnavailable
from provisioning.overrides import merge_overrides
from provisioning.phones.sightings import SightingFacts, summarise
from provisioning.render.context import DeviceData
from provisioning.render.snapshot import line_data
from provisioning.settings import Settings

# A device never seen with a shipped order completes its delivery at this fetch (orders.handover).
COLUMNS = (
    "id, mac, model_id, account_id, config_revision, last_seen_at IS NOT NULL, created_at,"
    " last_seen_at IS NULL AND EXISTS (SELECT 1 FROM orders o WHERE o.device_id = devices.id"
    " AND o.state = 'shipped')"
)
GENERATION = "SELECT value FROM row_generation WHERE id = 1"
# The number in the same statement as the row, so from the same snapshot.
BY_TOKEN = f"SELECT ({GENERATION}), {COLUMNS} FROM devices WHERE token_hash = "  # noqa: S608
BY_MAC = f"SELECT ({GENERATION}), {COLUMNS} FROM devices WHERE mac = "  # noqa: S608
# A phone's first fetch in one statement (one snapshot): the number, the row found by its token,
# and the file asked as rendered ahead (render.stored) at the row's revision with this server's
# fingerprint, if it was. Three reads before (the number, the row, the file): on SQLite about
# 60 µs of a first fetch's CPU, on PostgreSQL a round trip.
BY_TOKEN_WITH_FILE = (
    f"SELECT ({GENERATION}), {COLUMNS}, r.body, r.etag FROM devices"  # noqa: S608
    " LEFT JOIN rendered_files r ON r.device_id = devices.id AND r.file_name = {1}"
    " AND r.revision = devices.config_revision AND r.fingerprint = {2}"
    " WHERE devices.token_hash = {0}"
)


# What rendering needs (a render-cache miss), read in one read-only transaction: the device row
# first, so the lines are at least as new as the revision the file is cached under.
RENDER_DEVICE = (
    "SELECT d.id, d.mac, d.model_id, d.account_id, d.config_revision, d.token_enc, a.name,"
    " a.timezone, a.language FROM devices d LEFT JOIN accounts a ON a.id = d.account_id"
    " WHERE d.id = {0}"
)
RENDER_LINES = (
    "SELECT s.slot, l.number, l.sip_username, l.auth_username, l.password_enc, l.display_name,"
    " l.registrar_host, l.registrar_port, l.transport FROM line_slots s"
    " JOIN lines l ON l.id = s.line_id WHERE s.device_id = {0} ORDER BY s.slot"
)
RENDER_OVERRIDES = (
    "SELECT scope, key, value FROM setting_overrides WHERE (scope = 'model' AND target = {0})"
    " OR (scope = 'account' AND target = {1}) OR (scope = 'device' AND target = {2}) ORDER BY id"
)
RENDER_DIGEST = (
    "SELECT username, secret_enc FROM device_credentials WHERE device_id = {0}"
    " AND kind = 'digest' AND expires_at IS NULL ORDER BY id DESC LIMIT 1"
)


# Rendered files kept durably (render.stored): used only at the revision the fetch read and with
# this server's fingerprint.
STORED = (
    "SELECT body, etag FROM rendered_files WHERE device_id = {0} AND file_name = {1}"
    " AND revision = {2} AND fingerprint = {3}"
)
# Devices (of this process's share) none of whose files is stored at its revision and with this
# fingerprint: a device's files are stored together (`write_rendered`), so one says all.
PENDING = (
    "SELECT d.id FROM devices d WHERE d.id > {0} AND d.id % {1} = {2} AND NOT EXISTS"
    " (SELECT 1 FROM rendered_files r WHERE r.device_id = d.id"
    " AND r.revision = d.config_revision AND r.fingerprint = {3}) ORDER BY d.id LIMIT {4}"
)
# A device's files replace what was kept for it, unless a newer revision was kept meanwhile
# (a slower renderer elsewhere); nothing for a device deleted meanwhile.
WRITE_RENDERED = (
    "INSERT INTO rendered_files (device_id, file_name, revision, fingerprint, etag, body)"
    " SELECT {0}, {1}, {2}, {3}, {4}, {5} WHERE EXISTS (SELECT 1 FROM devices WHERE id = {0})"
    " ON CONFLICT (device_id, file_name) DO UPDATE SET revision = excluded.revision,"
    " fingerprint = excluded.fingerprint, etag = excluded.etag, body = excluded.body"
    " WHERE rendered_files.revision <= excluded.revision"
)
# Files of an older revision (a model change renames them) are of no use any more.
FORGET_RENDERED = "DELETE FROM rendered_files WHERE device_id = {0} AND revision < {1}"
PG_RENDERED_TYPED = [
    "$1::bigint",
    "$2::varchar",
    "$3::integer",
    "$4::varchar",
    "$5::varchar",
    "$6::bytea",
]


class StoredRow(NamedTuple):
    device_id: int
    file_name: str
    revision: int
    fingerprint: str
    etag: str
    body: bytes  # sealed (render.stored)


# A batch of sightings (phones.sightings): last-seen facts that never go back in time, the pushes
# a fetched revision proves applied, the rows themselves (not for a device deleted meanwhile).
WRITE_LAST_SEEN = (
    "UPDATE devices SET last_seen_at = {0}, last_ip = {1}, last_user_agent = {2},"
    " last_firmware = {3}, last_revision_served = {4},"
    " state = CASE WHEN state = 'assigned' THEN 'active' ELSE state END"
    " WHERE id = {5} AND (last_seen_at IS NULL OR last_seen_at <= {0})"
)
WRITE_APPLIED = (
    "UPDATE pushes SET state = 'applied', applied_at = {0}"
    " WHERE device_id = {1} AND state <> 'applied' AND target_revision <= {2}"
)
WRITE_SIGHTING = (
    "INSERT INTO sightings (device_id, seen_at, ip, user_agent, firmware, file_name, revision)"
    " SELECT d.id, {1}, {2}, {3}, {4}, {5}, {6} FROM devices d WHERE d.id = {0}"
)
# Named, with a mapping per row: from Python 3.12 sqlite3 deprecates numbered placeholders
# (`?1`) bound from a sequence, and the statements above use a value twice.
SQLITE_PARAMS = [f":p{n}" for n in range(7)]
PG_PARAMS = [f"${n}" for n in range(1, 8)]
# The insert's values sit in a select list, where PostgreSQL cannot infer their types.
PG_TYPED = [
    "$1::bigint", "$2::timestamptz", "$3::varchar", "$4::varchar", "$5::varchar", "$6::varchar",
    "$7::integer",
]  # fmt: skip


def _sighting_params(
    batch: Sequence[SightingFacts], when: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    # Devices whose last-seen facts are due (phones.sightings), and the revisions proven.
    latest, newest = summarise(batch)
    return (
        [
            (when(f.seen_at), f.ip, f.user_agent, f.firmware, f.revision, f.device_id)
            for f in latest
        ],
        [(when(f.seen_at), f.device_id, f.revision) for f in newest],
        [
            (f.device_id, when(f.seen_at), f.ip, f.user_agent, f.firmware, f.file_name, f.revision)
            for f in batch
            if f.history
        ],
    )


def _named(values: tuple[Any, ...]) -> dict[str, Any]:
    return {f"p{n}": value for n, value in enumerate(values)}


def _sqlite_time(value: datetime) -> str:
    # How SQLAlchemy stores a UTC datetime in SQLite (models.UTCDateTime): naive, microseconds.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_time(value: datetime) -> datetime:
    return value


class LineRow(NamedTuple):
    slot: int
    number: str
    sip_username: str
    auth_username: str | None
    password_enc: str
    display_name: str
    registrar_host: str
    registrar_port: int
    transport: str


@dataclass(frozen=True, slots=True)
class RenderRows:
    device: tuple[Any, ...]
    lines: list[LineRow]
    overrides: list[tuple[str, str, str]]  # (scope, key, value) in the order they were set
    digest: tuple[str | None, str] | None

    def device_data(self, cipher: Cipher, settings: Settings) -> DeviceData:
        """The same `DeviceData` as `render.snapshot.load_device_data` builds from the ORM."""
        id_, mac, model_id, account_id, revision, token_enc, name, timezone, language = self.device
        merged = merge_overrides(self.overrides)
        user, password = ("", "") if self.digest is None else self.digest
        return DeviceData(
            id=id_,
            mac=mac,
            model_id=model_id,
            revision=revision,
            token=cipher.decrypt(token_enc),
            account_name=name if account_id is not None else "",
            timezone=timezone if account_id is not None else settings.default_timezone,
            language=language if account_id is not None else settings.default_language,
            lines={line.slot: line_data(line, cipher) for line in self.lines},
            overrides=merged,
            http_username=user or "" if self.digest else "",
            http_password=cipher.decrypt(password) if self.digest else "",
        )


def _override_targets(device: tuple[Any, ...]) -> tuple[str, str, str]:
    account_id = device[3]
    return device[2], "" if account_id is None else str(account_id), device[1]


class DeviceRow(NamedTuple):
    """What identifying, authorising and caching a fetch need to know about a device (a named
    tuple: made once per fetch, several times cheaper than a frozen dataclass)."""

    id: int
    mac: str
    model_id: str
    account_id: int | None
    config_revision: int
    seen: bool  # fetched at least once (whether, not when: kept rows do not follow sightings)
    created_at: datetime
    awaiting_delivery: bool
    # The generation (`DeviceRows.generation`) this row is at least as new as; None: unknown.
    read_at: int | None = None
    # Read with the file asked (`by_token_with_file`), and that file as rendered ahead at
    # `config_revision` (sealed body, ETag) if it was.
    with_file: bool = False
    kept: tuple[bytes, str] | None = None


class Series:
    """The database's `row_generation` made this process's generation. If the number goes
    back (a database restored under a running server) or its row is gone, it may come back
    to a value met before with other rows behind it: what is returned from then on is another
    series, never equal to one returned before. "Back" is below the highest number seen so far,
    rows' numbers included (`note`)."""

    __slots__ = ("epoch", "highest")

    def __init__(self) -> None:
        self.epoch = 0
        self.highest: int | None = None  # the highest number seen in this series

    def seen(self, value: int | None, floor: int | None) -> int | None:
        """A number read after every one noted up to `floor` (`highest` when the read was
        sent): below it, the database went back."""
        if value is None or (floor is not None and value < floor):
            self.epoch += 1
            self.highest = value
        elif self.highest is None or value > self.highest:
            self.highest = value
        return self.tag(value, self.epoch)

    def note(self, value: int | None, epoch: int) -> int | None:
        """A number a row was read with, its read sent during `epoch`."""
        if (
            value is not None
            and epoch == self.epoch
            and (self.highest is None or value > self.highest)
        ):
            self.highest = value
        return self.tag(value, epoch)

    @staticmethod
    def tag(value: int | None, epoch: int) -> int | None:
        return None if value is None else (epoch << 48) | value


class DeviceRows(ABC):
    # Reads answered on the event loop's thread without waiting (the phone lane then runs a
    # fetch's first step without a task of its own; asyncpg needs one to connect).
    immediate = False

    @abstractmethod
    async def by_token_hash(self, token_hash: str) -> DeviceRow | None: ...

    @abstractmethod
    async def by_mac(self, mac: str) -> DeviceRow | None: ...

    @abstractmethod
    async def by_token_with_file(
        self, token_hash: str, file_name: str, fingerprint: str
    ) -> DeviceRow | None:
        """`by_token_hash`, the row carrying the file asked as rendered ahead (`kept`) at its
        revision with `fingerprint`, if it was: a first fetch's one read."""

    @abstractmethod
    async def render_rows(self, device_id: int) -> RenderRows | None: ...

    @abstractmethod
    async def write_sightings(self, batch: Sequence[SightingFacts]) -> None:
        """One transaction for the whole batch."""

    @abstractmethod
    async def stored_file(
        self, device_id: int, file_name: str, revision: int, fingerprint: str
    ) -> tuple[bytes, str] | None:
        """(sealed body, ETag) kept for this device, file, revision and fingerprint."""

    @abstractmethod
    async def pending(
        self, after: int, fingerprint: str, share: tuple[int, int], limit: int
    ) -> list[int]:
        """Ids above `after` (ascending) of devices whose files are not stored at their
        revision with `fingerprint`; `share` (index, count) picks this process's ids."""

    @abstractmethod
    async def write_rendered(self, rows: Sequence[StoredRow]) -> None:
        """One transaction for the batch; older revisions of these devices' files dropped."""

    async def close(self) -> None:
        return None

    def generation_now(self) -> int | None:
        """`generation`, read without waiting when the rows are `immediate`; None when it
        cannot be (nothing decided from these rows is then given again without waiting)."""
        return None

    def generation_later(self) -> asyncio.Future[int | None]:
        """`generation` as a future (the phone lane waits for it in a callback)."""
        return asyncio.ensure_future(self.generation())

    async def generation(self) -> int | None:
        """A number read after this call began, that moves in the same transaction as any
        change to what these rows hold (module docstring). None when there is none (its row
        deleted by hand): then nothing decided from these rows may be kept."""
        return self.generation_now()


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite keeps UTC as naive ISO text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(values: Any, read_at: int | None) -> DeviceRow | None:
    if values is None:
        return None
    id_, mac, model_id, account_id, revision, seen, created_at, awaiting = values[:8]
    created = _utc(created_at)
    assert created is not None
    with_file = len(values) > 8
    kept = (bytes(values[8]), values[9]) if with_file and values[8] is not None else None
    return DeviceRow(
        id_, mac, model_id, account_id, revision, bool(seen), created, bool(awaiting), read_at,
        with_file, kept,
    )  # fmt: skip


class SqliteRows(DeviceRows):
    immediate = True

    def __init__(self, path: str) -> None:
        self._path = path
        self._reader: sqlite3.Connection | None = None
        self._series = Series()
        # Batches are written by one thread of their own, which spends its time inside SQLite
        # (GIL released) and waits its turn for the write lock with SQLite's busy timeout.
        self._writer: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sightings")

    @property
    def _writing(self) -> sqlite3.Connection:
        """The writer thread's connection (used in that thread only)."""
        if self._writer is None:
            self._writer = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._writer.execute("PRAGMA foreign_keys = ON")
            # As the engine's connections (db.engine): WAL syncs at checkpoints, not each batch.
            self._writer.execute("PRAGMA synchronous = NORMAL")
        return self._writer

    def _write_batch(self, batch: Sequence[SightingFacts]) -> None:
        self._write(_sighting_params(batch, _sqlite_time))

    def _write(self, params: tuple[list[Any], list[Any], list[Any]]) -> None:
        if not any(params):
            return  # every fetch repeated what was written: nothing to say, no lock to take
        db = self._writing
        last_seen, applied, rows = params
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, values in (
                (WRITE_LAST_SEEN, last_seen),
                (WRITE_APPLIED, applied),
                (WRITE_SIGHTING, rows),
            ):
                db.executemany(sql.format(*SQLITE_PARAMS), map(_named, values))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def write_sightings(self, batch: Sequence[SightingFacts]) -> None:
        try:
            # The parameters are made in the writer's thread too: a large batch would otherwise
            # hold the event loop for milliseconds.
            await asyncio.get_running_loop().run_in_executor(self._thread, self._write_batch, batch)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None

    @property
    def _db(self) -> sqlite3.Connection:
        # Opened on first use, so a server starts while the file cannot be opened (and answers
        # 503 until it can). Autocommit: every select sees what others committed.
        if self._reader is None:
            reader = sqlite3.connect(self._path, timeout=0.2, isolation_level=None)
            reader.execute("PRAGMA query_only = ON")
            self._reader = reader
        return self._reader

    def generation_now(self) -> int | None:
        try:
            found = self._db.execute(GENERATION).fetchone()
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return self._at(None if found is None else found[0])

    def _at(self, value: int | None) -> int | None:
        series = self._series
        return series.seen(value, series.highest)

    def _one(self, sql: str, params: tuple[str] | dict[str, str]) -> DeviceRow | None:
        try:
            found = self._db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return None if found is None else _row(found[1:], self._at(found[0]))

    async def by_token_hash(self, token_hash: str) -> DeviceRow | None:
        return self._one(BY_TOKEN + "?", (token_hash,))

    async def by_mac(self, mac: str) -> DeviceRow | None:
        return self._one(BY_MAC + "?", (mac,))

    async def by_token_with_file(
        self, token_hash: str, file_name: str, fingerprint: str
    ) -> DeviceRow | None:
        return self._one(
            BY_TOKEN_WITH_FILE.format(":token", ":file", ":fingerprint"),
            {"token": token_hash, "file": file_name, "fingerprint": fingerprint},
        )

    async def render_rows(self, device_id: int) -> RenderRows | None:
        try:
            db = self._db
            db.execute("BEGIN")  # one snapshot for the four reads
            try:
                device = db.execute(RENDER_DEVICE.format("?"), (device_id,)).fetchone()
                if device is None:
                    return None
                lines = db.execute(RENDER_LINES.format("?"), (device_id,)).fetchall()
                overrides = db.execute(
                    RENDER_OVERRIDES.format("?", "?", "?"), _override_targets(device)
                ).fetchall()
                digest = db.execute(RENDER_DIGEST.format("?"), (device_id,)).fetchone()
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return RenderRows(
            tuple(device), [LineRow(*line) for line in lines], [tuple(o) for o in overrides], digest
        )

    async def stored_file(
        self, device_id: int, file_name: str, revision: int, fingerprint: str
    ) -> tuple[bytes, str] | None:
        try:
            found = self._db.execute(
                STORED.format("?", "?", "?", "?"), (device_id, file_name, revision, fingerprint)
            ).fetchone()
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return None if found is None else (bytes(found[0]), found[1])

    async def pending(
        self, after: int, fingerprint: str, share: tuple[int, int], limit: int
    ) -> list[int]:
        index, count = share
        try:
            # Off the event loop: a scan over many devices already stored takes milliseconds.
            found = await asyncio.get_running_loop().run_in_executor(
                self._thread,
                self._select,
                PENDING.format("?", "?", "?", "?", "?"),
                (after, count, index, fingerprint, limit),
            )
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return [row[0] for row in found]

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._writing.execute(sql, params).fetchall()

    def _write_rendered(self, rows: Sequence[StoredRow]) -> None:
        db = self._writing
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(WRITE_RENDERED.format(*SQLITE_PARAMS[:6]), map(_named, rows))
            latest = {(row.device_id, row.revision) for row in rows}
            db.executemany(FORGET_RENDERED.format(":p0", ":p1"), map(_named, latest))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def write_rendered(self, rows: Sequence[StoredRow]) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._write_rendered, rows
            )
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._thread.shutdown(wait=True)
        if self._writer is not None:
            self._writer.close()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """asyncpg resets a connection's session state on every release (one more round trip per
    fetch); these connections only run closed transactions and selects, so there is none. A
    transaction left open (a cancellation at the wrong moment) is rolled back: a connection
    kept in an old snapshot would read old generations."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


_PG_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def _settle(
    waiters: list[asyncio.Future[int | None]], value: int | None = None, error: str = ""
) -> None:
    for waiter in waiters:
        if waiter.done():  # its caller gave up (cancelled)
            continue
        if error:
            waiter.set_exception(DatabaseUnavailable(error))
        else:
            waiter.set_result(value)


class PostgresRows(DeviceRows):
    def __init__(self, dsn: str, max_size: int) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._creating = asyncio.Lock()
        self._series = Series()
        # Callers of `generation` waiting for a read sent after they asked, and the task that
        # sends those reads one after the other.
        self._waiting: list[asyncio.Future[int | None]] = []
        self._reading: asyncio.Task[None] | None = None

    async def _connected(self) -> asyncpg.Pool:
        if self._pool is None:
            # Connected on first use, so a server starts while the database is down (and
            # answers 503 until it is back); one pool, however many requests arrive first.
            async with self._creating:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        # No floor: asyncpg would keep reconnecting to restore it while the
                        # database is down, logging a traceback each time; connections are
                        # made when asked and kept while in use (a fetch answers 503 meanwhile).
                        min_size=0,
                        max_size=self._max_size,
                        timeout=10,
                        reset=_keep_session,
                    )
        return self._pool

    async def _fetch(self, sql: str, *values: str) -> DeviceRow | None:
        epoch = self._series.epoch  # a number read from now on is of this series or a later one
        try:
            pool = await self._connected()
            # asyncpg prepares each statement once per connection and reuses it.
            async with pool.acquire(timeout=10) as connection:
                found = await connection.fetchrow(sql, *values, timeout=10)
        except _PG_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        if found is None:
            return None
        return _row(tuple(found)[1:], self._series.note(found[0], epoch))

    async def generation(self) -> int | None:
        return await self.generation_later()

    def generation_later(self) -> asyncio.Future[int | None]:
        """`generation`, as a future (the phone lane waits for it with a callback, without a
        task of its own)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int | None] = loop.create_future()
        self._waiting.append(waiter)
        if self._reading is None:
            self._reading = loop.create_task(self._read_generations())
        return waiter

    async def _read_number(self) -> int | None:
        pool = await self._connected()
        async with pool.acquire(timeout=10) as connection:
            value = await connection.fetchval(GENERATION, timeout=10)
        return None if value is None else int(value)

    async def _read_generations(self) -> None:
        """One read at a time, each for every caller that asked before it was sent: a caller
        who asks while one is on its way waits for the next."""
        sent: list[asyncio.Future[int | None]] = []
        try:
            while self._waiting:
                sent, self._waiting = self._waiting, []
                # Every row read that ended before this read is sent saw an older snapshot.
                floor = self._series.highest
                try:
                    value = await self._read_number()
                except Exception as exc:  # the driver's, or anything else: none is left waiting
                    _settle(sent, error=type(exc).__name__)
                else:
                    _settle(sent, self._series.seen(value, floor))
                sent = []
        finally:
            # Cancelled (closing) or failed otherwise: nobody is left waiting for nothing.
            self._reading = None
            left, self._waiting = sent + self._waiting, []
            _settle(left, error="closed")

    async def render_rows(self, device_id: int) -> RenderRows | None:
        try:
            pool = await self._connected()
            async with (
                pool.acquire(timeout=10) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                device = await conn.fetchrow(RENDER_DEVICE.format("$1"), device_id)
                if device is None:
                    return None
                lines = await conn.fetch(RENDER_LINES.format("$1"), device_id)
                overrides = await conn.fetch(
                    RENDER_OVERRIDES.format("$1", "$2", "$3"), *_override_targets(tuple(device))
                )
                digest = await conn.fetchrow(RENDER_DIGEST.format("$1"), device_id)
        except _PG_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return RenderRows(
            tuple(device),
            [LineRow(*line) for line in lines],
            [tuple(o) for o in overrides],
            tuple(digest) if digest else None,
        )

    async def by_token_hash(self, token_hash: str) -> DeviceRow | None:
        return await self._fetch(BY_TOKEN + "$1", token_hash)

    async def by_mac(self, mac: str) -> DeviceRow | None:
        return await self._fetch(BY_MAC + "$1", mac)

    async def by_token_with_file(
        self, token_hash: str, file_name: str, fingerprint: str
    ) -> DeviceRow | None:
        return await self._fetch(
            BY_TOKEN_WITH_FILE.format("$1", "$2", "$3"), token_hash, file_name, fingerprint
        )

    async def write_sightings(self, batch: Sequence[SightingFacts]) -> None:
        last_seen, applied, rows = _sighting_params(batch, _pg_time)
        try:
            pool = await self._connected()
            async with pool.acquire(timeout=10) as conn, conn.transaction():
                await conn.executemany(WRITE_LAST_SEEN.format(*PG_PARAMS), last_seen)
                await conn.executemany(WRITE_APPLIED.format(*PG_PARAMS), applied)
                await conn.executemany(WRITE_SIGHTING.format(*PG_TYPED), rows)
        except _PG_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None

    async def stored_file(
        self, device_id: int, file_name: str, revision: int, fingerprint: str
    ) -> tuple[bytes, str] | None:
        try:
            pool = await self._connected()
            async with pool.acquire(timeout=10) as connection:
                found = await connection.fetchrow(
                    STORED.format("$1", "$2", "$3", "$4"),
                    device_id, file_name, revision, fingerprint, timeout=10,
                )  # fmt: skip
        except _PG_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return None if found is None else (bytes(found[0]), found[1])

    async def pending(
        self, after: int, fingerprint: str, share: tuple[int, int], limit: int
    ) -> list[int]:
        index, count = share
        try:
            pool = await self._connected()
            async with pool.acquire(timeout=10) as connection:
                found = await connection.fetch(
                    PENDING.format("$1", "$2", "$3", "$4", "$5"),
                    after, count, index, fingerprint, limit, timeout=60,
                )  # fmt: skip
        except _PG_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return [row[0] for row in found]

    async def write_rendered(self, rows: Sequence[StoredRow]) -> None:
        latest = sorted({(row.device_id, row.revision) for row in rows})
        try:
            pool = await self._connected()
            async with pool.acquire(timeout=10) as conn, conn.transaction():
                await conn.executemany(WRITE_RENDERED.format(*PG_RENDERED_TYPED), rows)
                await conn.executemany(FORGET_RENDERED.format("$1", "$2"), latest)
        except _PG_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except TimeoutError:
                self._pool.terminate()


def open_rows(database_url: str) -> DeviceRows:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return SqliteRows(url.database or ":memory:")
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresRows(dsn, max_size=10)
