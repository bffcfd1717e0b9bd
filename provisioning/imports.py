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

Every row is checked by the domain functions the CLI, the API and the pages use
(`accounts.new_account` and `new_line`, `inventory.new_device` and `choose_slot`: the same
checks, secrets encrypted by them), and stored by their bulk counterparts (`insert_accounts`,
`insert_lines`, `insert_devices`, `assign_lines`): each change in the audit trail, and a phone
that got lines gets one config revision and one push for the whole import, not one per line.
A row whose line a phone's files could not carry (a template's `refuse`: a `"` in a Gigaset
N510 password, a `#` in an Aastra one; or a value the file's format cannot carry) is refused
as `device assign` refuses it (render.refusals), before anything is written: its problem
names the phone, the file, the slot and the reason, never the value.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning import accounts, audit
from provisioning.crypto import Cipher
from provisioning.db.models import Account, Device, Line, LineSlot, SettingOverride
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.errors import DomainError
from provisioning.overrides import merge_overrides
from provisioning.push.associations import LEAVING
from provisioning.render.context import DeviceData, LineData
from provisioning.render.files import refusal_of
from provisioning.render.refusals import FilesCheck
from provisioning.render.snapshot import line_data
from provisioning.settings import Settings

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
# Phones planned between two progress updates (and two chances for the server's other tasks
# to run: planning holds the event loop).
BATCH = 500

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
#
# In two steps. Planning: each row is checked against what exists (read in a few queries by
# `load`) and what the rows before it planned, with the checks of the domain functions
# (`accounts.new_account`, `new_line`, `inventory.new_device`, `choose_slot`), no query per
# row; a refused row leaves nothing planned (the journal undoes its part). Writing: what was
# planned, stored by the domain's bulk functions (`insert_accounts`, `insert_lines`,
# `insert_devices`, `assign_lines`): a few statements per thousand rows, every object in the
# audit trail, one push per phone that got lines. The database's constraints stay the last
# word: a line, MAC or slot taken by another writer meanwhile refuses the import as a whole.


@dataclass
class _Account:
    id: int | None  # None: planned, not stored yet
    values: dict[str, str]
    new: bool
    row: Account | None = None  # the planned one
    name: str = ""


@dataclass
class _Line:
    id: int | None
    account: _Account
    new: bool
    stored: dict[str, Any] = field(default_factory=dict)  # an existing line's values
    row: Line | None = None


@dataclass
class _Device:
    id: int | None
    mac: str
    account: _Account | None
    model_id: str
    slot_count: int
    state: str
    new: bool
    row: Device | None = None
    token: str = ""  # a planned device's URL token (what its files are rendered with)


@dataclass(frozen=True)
class _Slot:
    mac: str
    slot: int
    new: bool


_MISSING = object()


class _Journal:
    """Undo log of the planning tables, so that a refused row leaves nothing planned."""

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


LineKey = tuple[str, str]  # (registrar host, SIP username), as a line is stored


@dataclass
class _Outcome:
    """What one row created, and which existing objects it used: (kind, id) pairs."""

    created: list[str] = field(default_factory=list)
    existing: list[tuple[str, int]] = field(default_factory=list)
    # The line the row put in a slot of its phone (None: no new slot).
    placed: tuple[LineKey, _Slot] | None = None


@dataclass(frozen=True)
class _StoredLine:
    """An existing line's columns as `load` read them (render.snapshot.LineFields)."""

    number: str
    sip_username: str
    auth_username: str | None
    password_enc: str
    display_name: str
    registrar_host: str
    registrar_port: int
    transport: str


class _Importer:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        catalog: Catalog,
        cipher: Cipher,
        actor: audit.Actor,
        files: FilesCheck,
    ) -> None:
        self.session = session
        self.settings = settings
        self.catalog = catalog
        self.cipher = cipher
        self.actor = actor
        self.files = files
        self.journal = _Journal()
        self.accounts: dict[str, list[_Account]] = {}
        self.lines: dict[LineKey, _Line] = {}
        self.devices: dict[str, _Device] = {}
        # line -> its slot (None: on no phone); device MAC -> its slots taken
        self.slots: dict[LineKey, _Slot | None] = {}
        self.taken: dict[str, frozenset[int]] = {}
        # The planned assignments, by line, in the order of the rows.
        self.assignments: dict[LineKey, _Slot] = {}
        self.created = dict.fromkeys(KINDS, 0)
        self.existing: dict[str, set[int]] = {kind: set() for kind in KINDS}
        # The operators' overrides by (scope, target), in the order they were set: a planned
        # phone's files are rendered with them, as `overrides_for` would merge them.
        self.overrides: dict[tuple[str, str], list[tuple[str, str, str]]] = {}

    async def load(self) -> None:
        """What exists, in four queries: rows are then matched without a query each."""
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
        accounts_by_id: dict[int, _Account] = {}
        for id_, name, *values in found.all():
            values_by_column = dict(zip(ACCOUNT_COLUMNS[1:], values, strict=True))
            account = _Account(id_, values_by_column, new=False, name=name)
            accounts_by_id[id_] = account
            self.accounts.setdefault(name, []).append(account)
        lines = await self.session.execute(
            select(
                Line.id,
                Line.account_id,
                Line.registrar_host,
                Line.sip_username,
                Line.registrar_port,
                Line.number,
                Line.auth_username,
                Line.display_name,
                Line.transport,
                Line.password_enc,
            )
        )
        line_keys: dict[int, LineKey] = {}
        for found_line in lines.all():
            id_, account_id, host, username = found_line[:4]
            stored: dict[str, Any] = dict(zip(_LINE_STORED, found_line[4:], strict=True))
            key = (host, username)
            self.lines[key] = _Line(id_, accounts_by_id[account_id], new=False, stored=stored)
            line_keys[id_] = key
        devices = await self.session.execute(
            select(
                Device.id,
                Device.mac,
                Device.account_id,
                Device.model_id,
                Device.slot_count,
                Device.state,
            )
        )
        macs: dict[int, str] = {}
        for id_, mac, owner, model_id, slot_count, state in devices.all():
            held_by = accounts_by_id[owner] if owner is not None else None
            self.devices[mac] = _Device(id_, mac, held_by, model_id, slot_count, state, new=False)
            macs[id_] = mac
        slots = await self.session.execute(
            select(LineSlot.device_id, LineSlot.slot, LineSlot.line_id)
        )
        taken: dict[str, set[int]] = {}
        for device_id, slot, line_id in slots.all():
            mac = macs[device_id]
            self.slots[line_keys[line_id]] = _Slot(mac, slot, new=False)
            taken.setdefault(mac, set()).add(slot)
        self.taken = {mac: frozenset(held) for mac, held in taken.items()}
        overrides = await self.session.execute(
            select(
                SettingOverride.scope,
                SettingOverride.target,
                SettingOverride.key,
                SettingOverride.value,
            ).order_by(SettingOverride.id)
        )
        for scope, target, setting, value in overrides.all():
            self.overrides.setdefault((scope, target), []).append((scope, setting, value))

    async def plan(self, groups: list[list[Row]], problems: list[Problem]) -> int:
        """Plan groups of rows (`_groups`: a phone's rows together), each row on its own: a
        refused one is reported and leaves nothing planned. Returns how many were planned."""
        planned = 0
        for group in groups:
            planned += await self._plan_group(group, problems)
        self.journal.clear()  # what is planned stays planned
        return planned

    async def _plan_group(self, group: list[Row], problems: list[Problem]) -> int:
        """A phone's rows, then its files rendered once with every line they put on it (what
        `assign_lines` will write). Files refused: the rows are planned again one at a time,
        the files rendered after each line, and a row whose line makes them refused is refused
        (as `device assign` would refuse it): only then is the culprit known."""
        start, found = self.journal.mark(), len(problems)
        outcomes = [o for row in group if (o := self._plan_one(row, problems)) is not None]
        placed = [o.placed for o in outcomes if o.placed is not None]
        if placed and await self._refusal(group[0].mac, placed) is not None:
            self.journal.undo_to(start)
            del problems[found:]
            outcomes, placed = [], []
            for row in group:
                mark = self.journal.mark()
                outcome = self._plan_one(row, problems)
                if outcome is None:
                    continue
                if outcome.placed is not None:
                    why = await self._refusal(row.mac, [*placed, outcome.placed])
                    if why is not None:
                        self.journal.undo_to(mark)
                        slot = outcome.placed[1].slot
                        problems.append(
                            Problem(
                                row.number,
                                None,
                                f"line {row['number']} cannot go in slot {slot} of phone "
                                f"{row.mac}: the phone's files would be refused ({why})",
                            )
                        )
                        continue
                    placed.append(outcome.placed)
                outcomes.append(outcome)
        for outcome in outcomes:
            for kind in outcome.created:
                self.created[kind] += 1
            for kind, id_ in outcome.existing:
                self.existing[kind].add(id_)
        return len(outcomes)

    def _plan_one(self, row: Row, problems: list[Problem]) -> _Outcome | None:
        mark = self.journal.mark()
        try:
            return self.plan_row(row)
        except _Refused as exc:
            self.journal.undo_to(mark)
            problems.append(Problem(row.number, exc.column, exc.message))
            return None

    async def _refusal(self, mac: str, placed: list[tuple[LineKey, _Slot]]) -> str | None:
        """Why the phone's files could not be written once the `placed` lines join its lines
        (render.refusals), or None. A stored phone is read as the database has it; a planned
        one is rendered from the plan (its account's time zone and language, the overrides of
        its model and MAC), without a query."""
        device = self.devices[mac]
        lines = {slot.slot: self._line_data(key) for key, slot in placed}
        if device.id is not None:
            return await self.files.refusal(self.session, device.id, lines)
        assert device.row is not None
        account = device.account
        scopes = [("model", device.model_id), ("device", mac)]
        if account is not None and account.id is not None:
            scopes.insert(1, ("account", str(account.id)))
        data = DeviceData(
            id=0,  # not stored yet
            mac=mac,
            model_id=device.model_id,
            revision=device.row.config_revision or 1,
            token=device.token,
            account_name=account.name if account is not None else "",
            timezone=(
                account.values["account_timezone"]
                if account is not None
                else self.settings.default_timezone
            ),
            language=(
                account.values["account_language"]
                if account is not None
                else self.settings.default_language
            ),
            lines=lines,
            overrides=merge_overrides(
                override for scope in scopes for override in self.overrides.get(scope, [])
            ),
        )
        return refusal_of(self.files.renderer, self.settings, data)

    def _line_data(self, key: LineKey) -> LineData:
        line = self.lines[key]
        if line.row is not None:
            return line_data(line.row, self.cipher)
        stored = _StoredLine(sip_username=key[1], registrar_host=key[0], **line.stored)
        return line_data(stored, self.cipher)

    def plan_row(self, row: Row) -> _Outcome:
        outcome = _Outcome()
        account = self._account(row, outcome) if row["account_name"] else None
        line = None
        if row["number"]:
            assert account is not None  # check_rows refused a line without an account
            line = self._line(row, account, outcome)
        if row.mac:
            device = self._device(row, account, outcome)
            if line is not None:
                self._assign(row, device, line, outcome)
        return outcome

    def _account(self, row: Row, outcome: _Outcome) -> _Account:
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
            if account.id is not None:
                outcome.existing.append(("accounts", account.id))
            return account
        street, postcode, town = (row[c] for c in ACCOUNT_COLUMNS[1:4])
        try:
            created = accounts.new_account(
                self.settings,
                name,
                address=accounts.Address(street, postcode, town),
                timezone=row["account_timezone"] or None,
                language=row["account_language"] or None,
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
        planned = _Account(None, values, new=True, row=created, name=created.name)
        self.journal.put(self.accounts, name, [planned])
        outcome.created.append("accounts")
        return planned

    def _line_key(self, row: Row) -> LineKey | None:
        """(registrar host, SIP username), as `accounts.new_line` would store them."""
        username = (row["sip_username"] or row["number"].lstrip("+")).strip()
        try:
            registrar = accounts.line_registrar(self.settings, row["registrar"] or None)
        except DomainError:
            return None  # new_line says what is wrong with it
        return (registrar.host, username)

    def _line(self, row: Row, account: _Account, outcome: _Outcome) -> LineKey:
        key = self._line_key(row)
        known = self.lines.get(key) if key is not None else None
        if key is not None and known is not None:
            self._line_agrees(row, key, known, account)
            if known.id is not None:
                outcome.existing.append(("lines", known.id))
            return key
        if not row["password"]:
            raise _Refused(
                "password",
                "a new line needs its SIP password (was the file exported without --with-secrets?)",
            )
        try:
            line = accounts.new_line(
                self.settings,
                self.cipher,
                account.id,
                row["number"],
                password=row["password"],
                username=row["sip_username"] or None,
                auth_username=row["auth_username"] or None,
                display_name=row["display_name"],
                registrar=row["registrar"] or None,
                transport=row["transport"] or None,
            )
        except DomainError as exc:
            raise _refused(exc, "number") from None
        stored_key = (line.registrar_host, line.sip_username)
        self.journal.put(self.lines, stored_key, _Line(None, account, new=True, row=line))
        self.journal.put(self.slots, stored_key, None)
        outcome.created.append("lines")
        return stored_key

    def _line_agrees(self, row: Row, key: LineKey, known: _Line, account: _Account) -> None:
        """An existing line a row names: of the row's account, and as the row describes it."""
        name = f"{key[1]}@{key[0]}"
        if known.account is not account:
            raise _Refused("number", f"line {name} belongs to another account")
        if known.row is not None:
            line = known.row
            stored: dict[str, Any] = {
                "registrar_port": line.registrar_port,
                "number": line.number,
                "auth_username": line.auth_username,
                "display_name": line.display_name,
                "transport": line.transport,
                "password_enc": line.password_enc,
            }
        else:
            stored = known.stored
        if (
            row["registrar"]
            and accounts.line_registrar(self.settings, row["registrar"]).port
            != stored["registrar_port"]
        ):
            raise _Refused("registrar", f"line {name} exists with another registrar port")
        for column in ("number", "auth_username", "display_name", "transport"):
            if row[column] and row[column] != (stored[column] or ""):
                raise _Refused(
                    column,
                    f"line {name} exists with another {column.replace('_', ' ')} (an import "
                    "never changes a line)",
                )
        if row["password"] and self.cipher.decrypt(stored["password_enc"]) != row["password"]:
            raise _Refused(
                "password",
                f"line {name} exists with another password (an import never changes a line: "
                "`provisioning line password` does)",
            )

    def _device(self, row: Row, account: _Account | None, outcome: _Outcome) -> _Device:
        known = self.devices.get(row.mac)
        if known is not None:
            if known.account is not account:
                owner = "no account (stock)" if known.account is None else "another account"
                raise _Refused("mac", f"phone {row.mac} exists and belongs to {owner}")
            if row["model"] and row["model"] != known.model_id:
                raise _Refused("model", f"phone {row.mac} exists and is a {known.model_id}")
            if known.id is not None:
                outcome.existing.append(("devices", known.id))
            return known
        if not row["model"]:
            raise _Refused("model", f"a new phone needs its model (phone {row.mac})")
        try:
            device, token = inventory.new_device(
                self.catalog,
                self.cipher,
                row.mac,
                row["model"],
                account.id if account is not None else None,
            )
        except DomainError as exc:
            raise _refused(exc, "mac") from None
        planned = _Device(
            None,
            device.mac,
            account,
            device.model_id,
            device.slot_count,
            device.state,
            new=True,
            row=device,
            token=token,
        )
        self.journal.put(self.devices, row.mac, planned)
        outcome.created.append("devices")
        return planned

    def _assign(self, row: Row, device: _Device, key: LineKey, outcome: _Outcome) -> None:
        held_at = self.slots.get(key)
        if held_at is not None:
            if held_at.mac == device.mac and row.slot in (None, held_at.slot):
                if not held_at.new:
                    line_id = self.lines[key].id
                    assert line_id is not None
                    outcome.existing.append(("slots", line_id))
                return
            raise _Refused(
                "slot" if held_at.mac == device.mac else "mac",
                f"line {row['number']} is already on a phone (slot {held_at.slot}): an import "
                "never moves a line (`provisioning device unassign` does)",
            )
        if device.state in LEAVING:
            raise _Refused("mac", f"phone {row.mac} is being returned: it gets no new line")
        taken = self.taken.get(device.mac, frozenset())
        try:
            slot = inventory.choose_slot(device.mac, device.slot_count, taken, row.slot)
        except DomainError as exc:
            raise _refused(exc, "slot") from None
        placed = _Slot(device.mac, slot, new=True)
        self.journal.put(self.taken, device.mac, taken | {slot})
        self.journal.put(self.slots, key, placed)
        self.journal.put(self.assignments, key, placed)
        outcome.created.append("slots")
        outcome.placed = (key, placed)

    async def write(self) -> int:
        """Store what was planned, with the domain's bulk functions; returns the pushes queued
        (one per phone that got lines). Raises IntegrityError when another writer took a
        line, MAC or slot meanwhile."""
        new_accounts = [a for found in self.accounts.values() for a in found if a.new]
        await accounts.insert_accounts(
            self.session, [a.row for a in new_accounts if a.row is not None], actor=self.actor
        )
        for account in new_accounts:
            assert account.row is not None
            account.id = account.row.id
        new_lines = [line for line in self.lines.values() if line.new]
        for line in new_lines:
            assert line.row is not None and line.account.id is not None
            line.row.account_id = line.account.id
        await accounts.insert_lines(
            self.session, [line.row for line in new_lines if line.row], actor=self.actor
        )
        for line in new_lines:
            assert line.row is not None
            line.id = line.row.id
        new_devices = [d for d in self.devices.values() if d.new]
        for device in new_devices:
            assert device.row is not None
            if device.account is not None:
                assert device.account.id is not None
                device.row.account_id = device.account.id
        await inventory.insert_devices(
            self.session, [d.row for d in new_devices if d.row], actor=self.actor
        )
        for device in new_devices:
            assert device.row is not None
            device.id = device.row.id
        planned = []
        for key, placed in self.assignments.items():
            line, device = self.lines[key], self.devices[placed.mac]
            assert line.id is not None and device.id is not None and line.account.id is not None
            planned.append(
                inventory.Assignment(
                    device.id, device.mac, placed.slot, line.id, line.account.id, device.slot_count
                )
            )
        return await inventory.assign_lines(self.session, planned, PUSH_REASON, actor=self.actor)


# The columns of an existing line `load` keeps to compare rows with (besides its key).
_LINE_STORED = (
    "registrar_port",
    "number",
    "auth_username",
    "display_name",
    "transport",
    "password_enc",
)


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
    files: FilesCheck | None = None,
) -> ImportReport:
    """Import the CSV file `data` (its format: this module's docstring) in the caller's
    transaction, which commits it. The import runs in a savepoint, rolled back for a dry run
    and for an import refused as a whole (mode "all" with a problem): the caller then has
    nothing to commit. The report lists every problem with its row and column, and counts.
    `files` renders the phones' files (the API passes its renderer); without it, one is made
    from the settings: a line a phone's files could not carry is always refused."""
    report = ImportReport(mode)
    read = read_rows(data, report.problems)
    report.rows = read.count
    good = check_rows(read.rows, report.problems)
    if not read.whole:
        return report
    if files is None:
        files = FilesCheck.for_settings(catalog, settings, cipher)
    importer = _Importer(session, settings, catalog, cipher, actor, files)
    outer = await session.begin_nested()
    keep = False
    try:
        await importer.load()
        done = report.rows - len(good)
        groups = _groups(good)
        for start in range(0, len(groups), BATCH):
            batch = groups[start : start + BATCH]
            report.imported_rows += await importer.plan(batch, report.problems)
            done += sum(len(group) for group in batch)
            if progress is not None:
                progress.update(done, report.rows)
            # Planning is CPU only: let the server's other tasks run between batches.
            await asyncio.sleep(0)
        keep = mode == "continue" or (mode == "all" and not report.problems)
        # A dry run writes too (then rolls back): the database's constraints check it as well.
        if keep or (mode == "dry-run" and not report.problems):
            try:
                report.pushes = await importer.write()
            except IntegrityError:
                # Another writer took a line, a MAC or a slot since `load` read them.
                report.problems.append(
                    Problem(
                        None,
                        None,
                        "the database refused the import: a line, phone or slot it adds was "
                        "added by someone else meanwhile; nothing written, run it again",
                    )
                )
                keep = False
        if keep:
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
