"""Bulk import: accounts, SIP lines, phones and which line is in which slot, from one CSV file.

`provisioning import FILE.csv` reads it; `provisioning export FILE.csv` writes the same format.

The file
  UTF-8, with or without a byte-order mark (as spreadsheets save "CSV UTF-8"). Columns are
  separated by commas or by semicolons: whichever the header row has more of. The first row is
  the header: column names from the list below, in any order, case ignored; a column may be
  left out (it is then empty on every row), an unknown name is refused. Rows are numbered as a
  spreadsheet shows them: the header is row 1. Cells are trimmed, except passwords, taken as
  they are; empty rows are skipped.

The columns
  account_name      the customer's account. An existing account of exactly that name is used,
                    else one is created (two accounts of that name: refused, ambiguous)
  account_street    default delivery address of a new account ("12 rue de la Paix"),
  account_postcode  ("75002")
  account_town      ("Paris")
  account_timezone  IANA time zone of a new account (default: PROVISIONING_DEFAULT_TIMEZONE)
  account_language  two-letter language code of a new account (default: the setting's)
  number            the line's phone number, digits with an optional leading + (+33123456789)
  sip_username      default: the number without its +
  auth_username     authentication username, when not the SIP username
  password          the SIP password: required for a new line; empty for an existing line
  display_name      shown on the phone
  registrar         HOST[:PORT] (default: PROVISIONING_DEFAULT_REGISTRAR)
  transport         udp, tcp or tls (default: PROVISIONING_DEFAULT_TRANSPORT)
  mac               the phone's MAC, in any usual notation (00:15:65:4A:A9:37, 0015654aa937)
  model             the phone's model id (`provisioning catalog list`): required for a new phone
  slot              the line's slot on the phone, 1 to the model's count (default: first free)

The rows
  One row per line. A row with a number is a line of the row's account; with a mac too, the
  line goes in a slot of that phone. A row with a mac and no number is a phone without lines;
  with no account_name either, a phone in stock. A row with only account_* cells is an account
  without lines or phones. Rows of one phone (same mac) are one phone: the same account on each,
  the model given on one of them at least (and never another one); they need not be adjacent,
  and without a slot column their lines take the phone's slots in the order of the rows.

Existing data
  An import adds; it never changes nor removes. A line that exists (same SIP username on the
  same registrar), a phone that exists (same MAC) or an account that exists (same name) is used
  as it is, if the row agrees with it: same account, and every value the row gives equal to the
  stored one (a password given for an existing line must be its password). A row that disagrees
  is refused: change existing data with `provisioning line password`, `device assign`, etc. So
  a file can be imported again (after fixing the rows refused the first time, say): what is
  already there is counted as such, not created twice.

Transactions
  By default the whole file is one transaction: every row is imported, or none (the report
  lists every problem, with its row and column). `--continue` imports the good rows and reports
  the refused ones. `--dry-run` checks everything the import would (the database included) and
  writes nothing. The exit status is 0 only when every row was (or would be) imported.

Every write goes through the domain functions the CLI, the API and the pages use
(`accounts.create_account`, `accounts.create_line`, `inventory.add_device`,
`inventory.assign_line`): the same checks, secrets encrypted by them, each change in the audit
trail. A phone that got lines gets one config revision and one push for the whole import, not
one per line (see `_queue_pushes`).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import accounts, audit
from provisioning.crypto import Cipher
from provisioning.db.models import Account, Device, Line, LineSlot, Push
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.errors import DomainError, NoFreeSlot, SlotTaken
from provisioning.push.associations import LEAVING
from provisioning.push.changes import devices_changed
from provisioning.settings import Registrar, Settings, SettingsError

ACCOUNT_COLUMNS = (
    "account_name",
    "account_street",
    "account_postcode",
    "account_town",
    "account_timezone",
    "account_language",
)
LINE_COLUMNS = (
    "number",
    "sip_username",
    "auth_username",
    "password",
    "display_name",
    "registrar",
    "transport",
)
DEVICE_COLUMNS = ("mac", "model", "slot")
COLUMNS = (*ACCOUNT_COLUMNS, *LINE_COLUMNS, *DEVICE_COLUMNS)

Mode = Literal["all", "continue", "dry-run"]
# The reason of the one push each phone that got lines is given.
PUSH_REASON = "import"
# Ids per statement when queueing pushes (well under every driver's parameter limit).
CHUNK = 500
# Phones applied in one savepoint while no row is refused (fewer savepoints; a refused row
# costs its batch again, phone by phone).
BATCH = 50

# A domain error's field, as a column of the file.
_FIELD_COLUMNS = {
    "name": "account_name",
    "address": "account_street",
    "timezone": "account_timezone",
    "language": "account_language",
    "username": "sip_username",
    **{name: name for name in COLUMNS},
}


@dataclass(frozen=True)
class Problem:
    """Why a row (None: the whole file) was or would be refused; `column` None: the row."""

    row: int | None
    column: str | None
    message: str

    def view(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


KINDS = ("accounts", "lines", "devices", "slots")


@dataclass
class ImportReport:
    mode: Mode
    rows: int = 0
    imported_rows: int = 0
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    existing: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    pushes: int = 0
    problems: list[Problem] = field(default_factory=list)
    # Whether what was imported stays (False: a dry run, or an import refused as a whole).
    committed: bool = False

    @property
    def refused_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems if p.row is not None})

    def view(self) -> dict[str, Any]:
        """With `committed` false the counts are what a dry run would create; an import refused
        as a whole created nothing."""
        shown = self.committed or self.mode == "dry-run"
        return {
            "mode": self.mode,
            "committed": self.committed,
            "rows": self.rows,
            "imported_rows": self.imported_rows if shown else 0,
            "refused_rows": self.refused_rows,
            "created": self.created if shown else dict.fromkeys(KINDS, 0),
            "existing": self.existing,
            "pushes": self.pushes if self.committed else 0,
            "problems": [p.view() for p in self.problems],
        }

    def human(self) -> str:
        """The problems, one a line, then the verdict."""
        lines = [str(p) for p in self.problems]
        problems = f"{len(self.problems)} problem(s) in {len(self.refused_rows)} row(s)"
        if any(p.row is None for p in self.problems):
            problems += " and the file"
        created, there = _counted(self.created), _counted(self.existing)
        if self.mode == "dry-run":
            verdict = f"dry run: {self.rows} row(s) checked, {problems}; nothing written"
            if not self.problems:
                verdict += f"; the import would create {created} (already there: {there})"
        elif not self.committed:
            verdict = (
                f"import refused: {problems}; nothing written (fix them, check again with "
                "--dry-run, or import the good rows with --continue)"
            )
        else:
            refused = len(self.refused_rows)
            verdict = (
                f"imported {self.imported_rows} of {self.rows} row(s)"
                f"{f', {refused} refused' if refused else ''}: created {created} (already "
                f"there: {there}); {self.pushes} push(es) queued"
            )
        lines.append(verdict)
        return "\n".join(lines)


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "nothing"


class Progress(Protocol):
    def update(self, done: int, total: int) -> None: ...

    def finish(self) -> None: ...


class TerminalProgress:
    """`importing: 1200/20000 row(s) (6%)` rewritten in place, a few times a second."""

    def __init__(self, stream: TextIO, every: float = 0.2) -> None:
        self.stream = stream
        self.every = every
        self._last = 0.0
        self._shown = False

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every and done < total:
            return
        self._last = now
        percent = done * 100 // total if total else 100
        self.stream.write(f"\rimporting: {done}/{total} row(s) ({percent}%)")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


# -- reading the file -----------------------------------------------------------------------


@dataclass
class Row:
    number: int  # the spreadsheet's row number
    cells: dict[str, str]
    mac: str = ""  # normalised
    slot: int | None = None

    def __getitem__(self, column: str) -> str:
        return self.cells.get(column, "")


class _Refused(Exception):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _refused(exc: DomainError, default: str) -> _Refused:
    column = _FIELD_COLUMNS.get(exc.field or "", default)
    return _Refused(column, exc.message)


@dataclass
class _Read:
    rows: list[Row] = field(default_factory=list)
    # Data rows read, the refused ones included (empty rows are not rows).
    count: int = 0
    # False: the file as a whole is refused (its encoding, its header, a broken quote).
    whole: bool = True


def read_rows(data: bytes, problems: list[Problem]) -> _Read:
    """The rows of the file with their cells by column. A problem of the file as a whole (or
    one making the rest unreadable) refuses the file; a row with too many cells is left out.
    Both go to `problems`."""
    read = _Read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(row, None, f"not UTF-8 text (byte {exc.start + 1} of the file)"))
        read.whole = False
        return read
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    records = iter(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    number = 1
    try:
        header = next(records, None)
        if header is None or not any(cell.strip() for cell in header):
            problems.append(Problem(None, None, "empty file: expected a header row"))
            read.whole = False
            return read
        columns = [cell.strip().lower() for cell in header]
        if not _header_ok(columns, problems):
            read.whole = False
            return read
        for record in records:
            number += 1
            if not any(cell.strip() for cell in record):
                continue
            read.count += 1
            extra = record[len(columns) :]
            if any(cell.strip() for cell in extra):
                problems.append(
                    Problem(number, None, f"{len(record)} cells; the header names {len(columns)}")
                )
                continue
            unnamed = [i for i, cell in enumerate(record) if cell.strip() and not columns[i]]
            if unnamed:
                problems.append(Problem(number, f"#{unnamed[0] + 1}", "a cell under no column"))
                continue
            cells = {
                name: (value if name == "password" else value.strip())
                for name, value in zip(columns, record, strict=False)
                if name
            }
            read.rows.append(Row(number, cells))
    except csv.Error as exc:
        problems.append(Problem(number + 1, None, f"not CSV from here on: {exc}"))
        read.whole = False
    return read


def _header_ok(columns: list[str], problems: list[Problem]) -> bool:
    ok = True
    for index, name in enumerate(columns):
        if not name:
            continue  # a column without a name (a spreadsheet's trailing separator): empty
        if name not in COLUMNS:
            known = ", ".join(COLUMNS)
            problems.append(Problem(1, name, f"unknown column (known: {known})"))
            ok = False
        elif columns.index(name) != index:
            problems.append(Problem(1, name, "column named twice"))
            ok = False
    if "account_name" not in columns and "mac" not in columns:
        problems.append(Problem(1, None, "the header names neither account_name nor mac"))
        ok = False
    return ok


def check_rows(rows: list[Row], problems: list[Problem]) -> list[Row]:
    """What can be checked without the database, across rows too (one phone's rows agree on
    its account and model; one account's rows on its address). Returns the rows to apply."""
    good = []
    phones: dict[str, Row] = {}
    models: dict[str, str] = {}
    account_values: dict[str, dict[str, str]] = {}
    for row in rows:
        try:
            _check_row(row, phones, models, account_values)
        except _Refused as exc:
            problems.append(Problem(row.number, exc.column, exc.message))
            continue
        good.append(row)
    for row in good:  # a phone's model may be given on any of its rows
        if row.mac and not row["model"] and row.mac in models:
            row.cells["model"] = models[row.mac]
    return good


def _check_row(
    row: Row,
    phones: dict[str, Row],
    models: dict[str, str],
    account_values: dict[str, dict[str, str]],
) -> None:
    name = row["account_name"]
    if not name and not row["mac"]:
        raise _Refused("account_name", "a row needs an account_name, a mac or both")
    if row["number"] and not name:
        raise _Refused("account_name", "a line needs an account")
    if not name:
        for column in ACCOUNT_COLUMNS[1:]:
            if row[column]:
                raise _Refused(column, "given without an account_name")
    if not row["number"]:
        for column in LINE_COLUMNS[1:]:
            if row[column]:
                raise _Refused(column, "given without a number (a line's columns)")
    if not row["mac"]:
        for column in ("model", "slot"):
            if row[column]:
                raise _Refused(column, "given without a mac (a phone's columns)")
    if row["slot"]:
        if not row["number"]:
            raise _Refused("slot", "a slot is for a line: give its number")
        try:
            row.slot = int(row["slot"])
        except ValueError:
            raise _Refused("slot", f"expected a whole number, got {row['slot'][:20]!r}") from None
        if row.slot < 1:
            raise _Refused("slot", "slots are numbered from 1")
    given = {c: row[c] for c in ACCOUNT_COLUMNS[1:] if row[c]}
    known_values = account_values.get(name, {}) if name else {}
    for column, value in given.items():
        if known_values.get(column, value) != value:
            raise _Refused(column, f"account {name!r} has another {column} on an earlier row")
    model = row["model"]
    if row["mac"]:
        try:
            row.mac = inventory.parse_mac(row["mac"])
        except DomainError as exc:
            raise _refused(exc, "mac") from None
        first = phones.get(row.mac)
        if first is not None and first["account_name"] != name:
            owner = repr(first["account_name"]) if first["account_name"] else "no account"
            raise _Refused(
                "account_name",
                f"phone {row.mac} is of {owner} on row {first.number}: a phone and its lines "
                "belong to one account",
            )
        if model and models.get(row.mac, model) != model:
            raise _Refused("model", f"phone {row.mac} is a {models[row.mac]} on an earlier row")
    # The row agrees with the earlier ones: it sets what they left open.
    if name:
        account_values[name] = {**given, **known_values}
    if row.mac:
        phones.setdefault(row.mac, row)
        if model:
            models.setdefault(row.mac, model)


def _groups(rows: list[Row]) -> list[list[Row]]:
    """A phone's rows together (in the order of its first row), every other row alone."""
    groups: list[list[Row]] = []
    by_mac: dict[str, list[Row]] = {}
    for row in rows:
        if not row.mac:
            groups.append([row])
        elif row.mac in by_mac:
            by_mac[row.mac].append(row)
        else:
            by_mac[row.mac] = [row]
            groups.append(by_mac[row.mac])
    return groups


# -- applying it ----------------------------------------------------------------------------


@dataclass
class _Account:
    id: int
    values: dict[str, str]
    new: bool


@dataclass
class _Line:
    id: int
    account_id: int
    new: bool


@dataclass
class _Device:
    id: int
    account_id: int | None
    model_id: str
    state: str
    new: bool


@dataclass(frozen=True)
class _Slot:
    device_id: int
    slot: int
    new: bool


_MISSING = object()


class _Journal:
    """Undo log of the lookup tables, so that they follow the savepoints rolled back."""

    def __init__(self) -> None:
        self._undo: list[tuple[dict[Any, Any], Any, Any]] = []

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self._undo.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    def mark(self) -> int:
        return len(self._undo)

    def undo_to(self, mark: int) -> None:
        while len(self._undo) > mark:
            table, key, old = self._undo.pop()
            if old is _MISSING:
                del table[key]
            else:
                table[key] = old

    def clear(self) -> None:
        self._undo.clear()


@dataclass
class _Outcome:
    """What one row created, and which existing objects it used: (kind, id) pairs."""

    created: list[tuple[str, int]] = field(default_factory=list)
    existing: list[tuple[str, int]] = field(default_factory=list)


class _Importer:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        catalog: Catalog,
        cipher: Cipher,
        actor: audit.Actor,
    ) -> None:
        self.session = session
        self.settings = settings
        self.catalog = catalog
        self.cipher = cipher
        self.actor = actor
        self.journal = _Journal()
        self.accounts: dict[str, list[_Account]] = {}
        self.lines: dict[tuple[str, str], _Line] = {}
        self.devices: dict[str, _Device] = {}
        # line id -> its slot (None: on no phone), for the lines looked at or put on a phone
        self.slots: dict[int, _Slot | None] = {}
        # device id -> its highest push id before the import put lines on it (0: none)
        self.touched: dict[int, int] = {}
        self.created = dict.fromkeys(KINDS, 0)
        self.existing: dict[str, set[int]] = {kind: set() for kind in KINDS}
        # The objects the import created, held so that the domain functions' lookups by id
        # (`session.get`) find them in the session instead of asking the database again.
        self.held: list[object] = []

    async def load(self) -> None:
        """What exists, in three queries: rows are then matched without a query each."""
        found = await self.session.execute(
            select(
                Account.id,
                Account.name,
                Account.street,
                Account.postcode,
                Account.town,
                Account.timezone,
                Account.language,
            )
        )
        for id_, name, *values in found.all():
            values_by_column = dict(zip(ACCOUNT_COLUMNS[1:], values, strict=True))
            self.accounts.setdefault(name, []).append(_Account(id_, values_by_column, new=False))
        lines = await self.session.execute(
            select(Line.id, Line.account_id, Line.registrar_host, Line.sip_username)
        )
        for id_, account_id, host, username in lines.all():
            self.lines[(host, username)] = _Line(id_, account_id, new=False)
        devices = await self.session.execute(
            select(Device.id, Device.mac, Device.account_id, Device.model_id, Device.state)
        )
        for id_, mac, owner, model_id, state in devices.all():
            self.devices[mac] = _Device(id_, owner, model_id, state, new=False)

    async def apply(self, groups: list[list[Row]], problems: list[Problem]) -> int:
        """Apply phones' rows (`groups`), optimistically all in one savepoint. When a row is
        refused, each phone again in its own, then that phone's rows each in its own: the
        other rows are kept, and the refused ones reported. Returns how many were applied."""
        rows = [row for group in groups for row in group]
        try:
            await self._attempt(rows)
            return len(rows)
        except _Refused as exc:
            if len(rows) == 1:
                problems.append(Problem(rows[0].number, exc.column, exc.message))
                return 0
        if len(groups) > 1:
            return sum([await self.apply([group], problems) for group in groups])
        return sum([await self.apply([[row]], problems) for row in rows])

    async def _attempt(self, rows: list[Row]) -> None:
        """Apply rows in one savepoint: all of them, or none (the lookup tables follow)."""
        mark = self.journal.mark()
        outcomes: list[_Outcome] = []
        try:
            async with self.session.begin_nested():
                for row in rows:
                    outcomes.append(await self.apply_row(row))
        except _Refused:
            self.journal.undo_to(mark)
            raise
        self._done(outcomes)

    def _done(self, outcomes: Iterable[_Outcome]) -> None:
        self.journal.clear()  # past the savepoint: nothing to undo any more
        for outcome in outcomes:
            for kind, _ in outcome.created:
                self.created[kind] += 1
            for kind, id_ in outcome.existing:
                self.existing[kind].add(id_)

    async def apply_row(self, row: Row) -> _Outcome:
        outcome = _Outcome()
        account_id = await self._account(row, outcome) if row["account_name"] else None
        line_id = None
        if row["number"]:
            assert account_id is not None  # check_rows refused a line without an account
            line_id = await self._line(row, account_id, outcome)
        if row.mac:
            device = await self._device(row, account_id, outcome)
            if line_id is not None:
                await self._assign(row, device, line_id, outcome)
        return outcome

    async def _account(self, row: Row, outcome: _Outcome) -> int:
        name = row["account_name"]
        found = self.accounts.get(name, [])
        if len(found) > 1:
            ids = ", ".join(str(a.id) for a in found[:5])
            raise _Refused("account_name", f"{len(found)} accounts are named {name!r} ({ids})")
        if found:
            account = found[0]
            for column, stored in account.values.items():
                if row[column] and row[column] != stored:
                    what = column.removeprefix("account_")
                    raise _Refused(
                        column,
                        f"account {name!r} exists with another {what} (an import never "
                        "changes an account)",
                    )
            if not account.new:
                outcome.existing.append(("accounts", account.id))
            return account.id
        street, postcode, town = (row[c] for c in ACCOUNT_COLUMNS[1:4])
        try:
            created = await accounts.create_account(
                self.session,
                self.settings,
                name,
                address=accounts.Address(street, postcode, town),
                timezone=row["account_timezone"] or None,
                language=row["account_language"] or None,
                actor=self.actor,
            )
        except DomainError as exc:
            raise _refused(exc, "account_name") from None
        stored_values = (
            created.street,
            created.postcode,
            created.town,
            created.timezone,
            created.language,
        )
        values = dict(zip(ACCOUNT_COLUMNS[1:], stored_values, strict=True))
        self.journal.put(self.accounts, name, [_Account(created.id, values, new=True)])
        self.held.append(created)
        outcome.created.append(("accounts", created.id))
        return created.id

    def _line_key(self, row: Row) -> tuple[str, str] | None:
        """(registrar host, SIP username), as `create_line` would store them."""
        username = (row["sip_username"] or row["number"].lstrip("+")).strip()
        try:
            registrar = (
                Registrar.parse("registrar", row["registrar"])
                if row["registrar"]
                else self.settings.default_registrar
            )
        except SettingsError:
            return None  # create_line says what is wrong with it
        return (registrar.host, username)

    async def _line(self, row: Row, account_id: int, outcome: _Outcome) -> int:
        key = self._line_key(row)
        known = self.lines.get(key) if key is not None else None
        if known is not None:
            await self._line_agrees(row, known, account_id)
            if not known.new:
                outcome.existing.append(("lines", known.id))
            return known.id
        if not row["password"]:
            raise _Refused(
                "password",
                "a new line needs its SIP password (was the file exported without --with-secrets?)",
            )
        try:
            line = await accounts.create_line(
                self.session,
                self.settings,
                self.cipher,
                account_id,
                row["number"],
                password=row["password"],
                username=row["sip_username"] or None,
                auth_username=row["auth_username"] or None,
                display_name=row["display_name"],
                registrar=row["registrar"] or None,
                transport=row["transport"] or None,
                actor=self.actor,
            )
        except DomainError as exc:
            raise _refused(exc, "number") from None
        stored_key = (line.registrar_host, line.sip_username)
        self.journal.put(self.lines, stored_key, _Line(line.id, account_id, new=True))
        self.journal.put(self.slots, line.id, None)
        self.held.append(line)
        outcome.created.append(("lines", line.id))
        return line.id

    async def _line_agrees(self, row: Row, known: _Line, account_id: int) -> None:
        """An existing line a row names: of the row's account, and as the row describes it."""
        line = await self.session.get(Line, known.id)
        assert line is not None
        name = f"{line.sip_username}@{line.registrar_host}"
        if known.account_id != account_id:
            raise _Refused("number", f"line {name} belongs to another account")
        stored = {
            "number": line.number,
            "auth_username": line.auth_username or "",
            "display_name": line.display_name,
            "transport": line.transport,
        }
        if (
            row["registrar"]
            and Registrar.parse("registrar", row["registrar"]).port != line.registrar_port
        ):
            raise _Refused("registrar", f"line {name} exists with another registrar port")
        for column, value in stored.items():
            if row[column] and row[column] != value:
                raise _Refused(
                    column,
                    f"line {name} exists with another {column.replace('_', ' ')} (an import "
                    "never changes a line)",
                )
        if row["password"] and self.cipher.decrypt(line.password_enc) != row["password"]:
            raise _Refused(
                "password",
                f"line {name} exists with another password (an import never changes a line: "
                "`provisioning line password` does)",
            )

    async def _device(self, row: Row, account_id: int | None, outcome: _Outcome) -> _Device:
        known = self.devices.get(row.mac)
        if known is not None:
            if known.account_id != account_id:
                owner = "no account (stock)" if known.account_id is None else "another account"
                raise _Refused("mac", f"phone {row.mac} exists and belongs to {owner}")
            if row["model"] and row["model"] != known.model_id:
                raise _Refused("model", f"phone {row.mac} exists and is a {known.model_id}")
            if not known.new:
                outcome.existing.append(("devices", known.id))
            return known
        if not row["model"]:
            raise _Refused("model", f"a new phone needs its model (phone {row.mac})")
        try:
            device, _token = await inventory.add_device(
                self.session,
                self.catalog,
                self.cipher,
                row.mac,
                row["model"],
                account_id,
                actor=self.actor,
            )
        except DomainError as exc:
            raise _refused(exc, "mac") from None
        created = _Device(device.id, account_id, device.model_id, device.state, new=True)
        self.journal.put(self.devices, row.mac, created)
        self.held.append(device)
        outcome.created.append(("devices", device.id))
        return created

    async def _assign(self, row: Row, device: _Device, line_id: int, outcome: _Outcome) -> None:
        if line_id not in self.slots:
            held = (
                await self.session.execute(
                    select(LineSlot.device_id, LineSlot.slot).where(LineSlot.line_id == line_id)
                )
            ).one_or_none()
            slot = None if held is None else _Slot(held[0], held[1], new=False)
            self.journal.put(self.slots, line_id, slot)
        held_at = self.slots[line_id]
        if held_at is not None:
            if held_at.device_id == device.id and row.slot in (None, held_at.slot):
                if not held_at.new:
                    outcome.existing.append(("slots", line_id))
                return
            raise _Refused(
                "slot" if held_at.device_id == device.id else "mac",
                f"line {row['number']} is already on a phone (slot {held_at.slot}): an import "
                "never moves a line (`provisioning device unassign` does)",
            )
        if device.state in LEAVING:
            raise _Refused("mac", f"phone {row.mac} is being returned: it gets no new line")
        if device.id not in self.touched:
            await self._touch(row.mac, device)
        try:
            assignment = await inventory.assign_line(
                self.session, row.mac, line_id, row.slot, actor=self.actor
            )
        except (SlotTaken, NoFreeSlot) as exc:
            raise _refused(exc, "slot") from None
        except DomainError as exc:
            raise _refused(exc, "mac") from None
        self.journal.put(self.slots, line_id, _Slot(device.id, assignment.slot, new=True))
        outcome.created.append(("slots", line_id))

    async def _touch(self, mac: str, device: _Device) -> None:
        """Before the import's first line on a phone: its last push until then, which the
        import leaves alone. A phone the import created has none. An existing one is locked
        first: no other transaction can then queue a push for it (that bumps its row), so its
        later pushes in this transaction are the import's own."""
        before = 0
        if not device.new:
            await inventory.get_device(self.session, mac, lock=True)
            top = await self.session.scalar(
                select(func.max(Push.id)).where(Push.device_id == device.id)
            )
            before = int(top or 0)
        self.journal.put(self.touched, device.id, before)

    async def queue_pushes(self) -> int:
        """One push per phone that got lines, instead of one per line.

        `inventory.assign_line` bumps the phone's revision and queues a push each time, as it
        must when used alone. A phone given two lines by the import would get two pushes: the
        worker would send both, and each deadline would run from its row, not from the end of
        the import (a long import could commit pushes already overdue). So the pushes the
        import's own assignments queued (those past `touched[device]`; none of another
        transaction can be among them, see `_touch`) are deleted before anyone saw them, and
        `devices_changed` queues one push per phone, for a revision past all its new lines:
        the same function every change goes through, once per phone, in batches."""
        new = [device_id for device_id, before in self.touched.items() if before == 0]
        for chunk in _chunks(new):
            await self.session.execute(
                delete(Push)
                .where(Push.device_id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
        for device_id, before in self.touched.items():
            if before:
                await self.session.execute(
                    delete(Push)
                    .where(Push.device_id == device_id, Push.id > before)
                    .execution_options(synchronize_session=False)
                )
        queued = 0
        for chunk in _chunks(list(self.touched)):
            pushes = await devices_changed(self.session, Device.id.in_(chunk), PUSH_REASON)
            queued += len(pushes)
        return queued


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


async def import_csv(
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    cipher: Cipher,
    data: bytes,
    *,
    mode: Mode = "all",
    actor: audit.Actor = audit.SYSTEM,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the CSV file `data` (its format: this module's docstring) in the caller's
    transaction, which commits it. The import runs in a savepoint, rolled back for a dry run
    and for an import refused as a whole (mode "all" with a problem): the caller then has
    nothing to commit. The report lists every problem with its row and column, and counts."""
    report = ImportReport(mode)
    read = read_rows(data, report.problems)
    report.rows = read.count
    good = check_rows(read.rows, report.problems)
    if not read.whole:
        return report
    importer = _Importer(session, settings, catalog, cipher, actor)
    outer = await session.begin_nested()
    try:
        await importer.load()
        done = report.rows - len(good)
        groups = _groups(good)
        for start in range(0, len(groups), BATCH):
            batch = groups[start : start + BATCH]
            report.imported_rows += await importer.apply(batch, report.problems)
            done += sum(len(group) for group in batch)
            if progress is not None:
                progress.update(done, report.rows)
        keep = mode == "continue" or (mode == "all" and not report.problems)
        if keep:
            report.pushes = await importer.queue_pushes()
            await audit.record(
                session, actor, "import.csv", "import", "csv",
                after={"rows": report.rows, "imported_rows": report.imported_rows,
                       "refused_rows": len(report.refused_rows), "created": importer.created},
            )  # fmt: skip
    except BaseException:
        await outer.rollback()
        raise
    finally:
        if progress is not None:
            progress.finish()
    report.created = importer.created
    report.existing = {kind: len(ids) for kind, ids in importer.existing.items()}
    report.problems.sort(key=lambda p: p.row or 0)
    if keep:
        await outer.commit()
        report.committed = True
    else:
        await outer.rollback()
    return report


def write_rows(handle: TextIO, rows: Iterable[dict[str, str]], delimiter: str = ",") -> int:
    """Write the header and `rows` (dicts by column, missing ones empty); returns how many."""
    writer = csv.DictWriter(
        handle, fieldnames=COLUMNS, delimiter=delimiter, restval="", lineterminator="\r\n"
    )
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count
