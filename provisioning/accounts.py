"""Accounts and their SIP lines: the domain operations shared by the CLI, the API and the pages.

Functions take a session inside a transaction the caller owns, validate their input, and raise
domain errors; they never commit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from zoneinfo import available_timezones

from sqlalchemy import Select, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from provisioning.audit import SYSTEM, Actor, event, record, record_many
from provisioning.crypto import Cipher
from provisioning.db.models import Account, Base, Device, Line, LineSlot
from provisioning.errors import InvalidInput, LineExists, NotFound
from provisioning.push.changes import devices_changed
from provisioning.render.escaping import check_text
from provisioning.settings import Settings
from provisioning.sip.address import (
    TRANSPORTS,
    SipAddress,
    SipAddressError,
    default_port,
    parse_sip_address,
)
from provisioning.views import account_view, line_view

if TYPE_CHECKING:  # render.refusals reads devices through modules that import this one
    from provisioning.render.context import LineData
    from provisioning.render.refusals import FilesCheck

_NUMBER = re.compile(r"\+?[0-9]{2,20}")
# RFC 3261 user part, restricted to what every phone's config syntax carries without quoting.
_SIP_USER = re.compile(r"[A-Za-z0-9._~+\-]{1,128}")
_LANGUAGE = re.compile(r"[a-z]{2}")
_ADDRESS = re.compile(
    r"\s*(?P<street>[^,]+?)\s*,\s*(?P<postcode>[0-9A-Za-z -]{3,10}?)\s+(?P<town>\S.*?)\s*"
)


@dataclass(frozen=True)
class Address:
    street: str
    postcode: str
    town: str
    country: str = "FR"

    @classmethod
    def parse(cls, text: str) -> Address:
        """`"12 rue de la Paix, 75002 Paris"` -> street, postcode, town."""
        match = _ADDRESS.fullmatch(text)
        if match is None or not check_text(text):
            raise InvalidInput(
                "address: expected 'street, postcode town', e.g. '12 rue de la Paix, 75002 Paris'",
                field="address",
            )
        return cls(match["street"], match["postcode"], match["town"])


def clean_text(value: str, field: str, *, max_length: int, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field}: must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field}: at most {max_length} characters", field=field)
    if not check_text(value):
        raise InvalidInput(f"{field}: must not contain control characters", field=field)
    return value


@functools.cache
def _timezones() -> frozenset[str]:
    # Listing the time zone database walks its files (~15 ms): once per process, not once per
    # account (a bulk import creates thousands). Zones installed while the server runs are
    # taken after a restart.
    return frozenset(available_timezones())


def check_timezone(timezone: str) -> str:
    if timezone not in _timezones():
        raise InvalidInput(f"timezone: unknown time zone {timezone[:64]!r}", field="timezone")
    return timezone


def new_account(
    settings: Settings,
    name: str,
    *,
    address: Address | None = None,
    timezone: str | None = None,
    language: str | None = None,
) -> Account:
    """An account checked and built, not yet in a session: what `create_account` and a bulk
    import (`insert_accounts`) store."""
    timezone = check_timezone(timezone or settings.default_timezone)
    language = language or settings.default_language
    if not _LANGUAGE.fullmatch(language):
        raise InvalidInput("language: expected a two-letter code such as fr", field="language")
    address = address or Address("", "", "")
    return Account(
        name=clean_text(name, "name", max_length=200),
        street=clean_text(address.street, "address", max_length=200, required=False),
        postcode=clean_text(address.postcode, "address", max_length=20, required=False),
        town=clean_text(address.town, "address", max_length=100, required=False),
        country=address.country,
        timezone=timezone,
        language=language,
    )


async def create_account(
    session: AsyncSession,
    settings: Settings,
    name: str,
    *,
    address: Address | None = None,
    timezone: str | None = None,
    language: str | None = None,
    actor: Actor = SYSTEM,
) -> Account:
    account = new_account(settings, name, address=address, timezone=timezone, language=language)
    session.add(account)
    await session.flush()
    await record(
        session, actor, "account.create", "account", account.id,
        account_id=account.id, after=account_view(account),
    )  # fmt: skip
    return account


# Rows per INSERT of the bulk functions (the driver batches them further; this bounds memory).
CHUNK = 2000


async def store_many(
    session: AsyncSession, built: Sequence[Base], columns: Sequence[str], key: Sequence[str]
) -> list[tuple[Any, ...]]:
    """INSERT objects built (not added to the session) in a few statements, the given columns
    taken from each, and set their ids; returns (id, config_revision for a device) per object,
    in their order. The unit of work of a flush costs more than the insert itself when there
    are tens of thousands (a bulk import); the objects stay out of the session.

    The ids come back by `key` (columns telling the rows of one call apart; objects alike in
    them are alike in every way that matters to the caller), not by the order of the rows:
    RETURNING in the order of the parameters makes SQLite's driver insert one row per
    statement, ten times slower."""
    if not built:
        return []
    model = type(built[0])
    returned = [model.id]  # type: ignore[attr-defined]
    if hasattr(model, "config_revision"):
        returned.append(model.config_revision)
    returned.extend(getattr(model, name) for name in key)
    width = len(returned) - len(key)
    ids: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for start in range(0, len(built), CHUNK):
        chunk = built[start : start + CHUNK]
        rows = [{name: getattr(obj, name) for name in columns} for obj in chunk]
        result = await session.execute(insert(model).returning(*returned), rows)
        for row in result.all():
            ids.setdefault(tuple(row[width:]), []).append(tuple(row[:width]))
    found = []
    for obj in built:
        stored = ids[tuple(getattr(obj, name) for name in key)].pop()
        obj.id = stored[0]  # type: ignore[attr-defined]
        found.append(stored)
    return found


_ACCOUNT_COLUMNS = ("name", "street", "postcode", "town", "country", "timezone", "language")


async def insert_accounts(
    session: AsyncSession, created: Sequence[Account], *, actor: Actor = SYSTEM
) -> None:
    """Store accounts built by `new_account` (their ids set), with their audit events, in a few
    statements (a bulk import)."""
    await store_many(session, created, _ACCOUNT_COLUMNS, _ACCOUNT_COLUMNS)
    events = [
        event(actor, "account.create", "account", a.id, account_id=a.id, after=account_view(a))
        for a in created
    ]
    await record_many(session, events)


async def get_account(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list((await session.scalars(select(Account).order_by(Account.id))).all())


def new_line(
    settings: Settings,
    cipher: Cipher,
    account_id: int | None,
    number: str,
    *,
    password: str,
    username: str | None = None,
    auth_username: str | None = None,
    display_name: str = "",
    registrar: str | None = None,
    transport: str | None = None,
) -> Line:
    """A line checked and built with its password encrypted, not yet in a session. The account
    is the caller's to check; `account_id` None: an account the caller stores first, then sets
    (a bulk import)."""
    number = number.strip()
    if not _NUMBER.fullmatch(number):
        raise InvalidInput("number: expected digits, optionally starting with +", field="number")
    username = (username or number.lstrip("+")).strip()
    if not _SIP_USER.fullmatch(username):
        raise InvalidInput(
            "username: letters, digits and . _ ~ + - only (1 to 128)", field="username"
        )
    if auth_username is not None and not _SIP_USER.fullmatch(auth_username):
        raise InvalidInput(
            "auth_username: letters, digits and . _ ~ + - only (1 to 128)", field="auth_username"
        )
    _check_password(password)
    if transport and transport not in TRANSPORTS:
        raise InvalidInput("transport: expected udp, tcp or tls", field="transport")
    if registrar:
        target = registrar_of(registrar)
        transport = _agreed(transport, target.transport)
    else:
        # The default registrar's transport is the default transport (the settings see to it),
        # which a transport asked for overrides.
        target = settings.default_registrar
    transport = transport or settings.default_transport
    port = line_port(target, transport)
    line = Line(
        number=number,
        sip_username=username,
        auth_username=auth_username,
        password_enc=cipher.encrypt(password),
        registrar_host=target.host,
        registrar_port=port,
        transport=transport,
        display_name=clean_text(display_name, "display_name", max_length=100, required=False),
    )
    if account_id is not None:
        line.account_id = account_id
    return line


async def create_line(
    session: AsyncSession,
    settings: Settings,
    cipher: Cipher,
    account_id: int,
    number: str,
    *,
    password: str,
    username: str | None = None,
    auth_username: str | None = None,
    display_name: str = "",
    registrar: str | None = None,
    transport: str | None = None,
    actor: Actor = SYSTEM,
) -> Line:
    await get_account(session, account_id)
    line = new_line(
        settings,
        cipher,
        account_id,
        number,
        password=password,
        username=username,
        auth_username=auth_username,
        display_name=display_name,
        registrar=registrar,
        transport=transport,
    )
    username, host = line.sip_username, line.registrar_host
    session.add(line)
    try:
        await session.flush()
    except IntegrityError:
        raise LineExists(
            f"a line with SIP username {username} already exists on {host}",
            field="username",
        ) from None
    await record(
        session, actor, "line.create", "line", line.id,
        account_id=account_id, after=line_view(line),
    )  # fmt: skip
    return line


_LINE_COLUMNS = (
    "account_id",
    "number",
    "sip_username",
    "auth_username",
    "password_enc",
    "registrar_host",
    "registrar_port",
    "transport",
    "display_name",
)


async def insert_lines(
    session: AsyncSession, created: Sequence[Line], *, actor: Actor = SYSTEM
) -> None:
    """Store lines built by `new_line` (their accounts stored and set; their ids set), with
    their audit events, in a few statements (a bulk import). A line that exists (same SIP
    username on the same registrar) is the IntegrityError of the insert: the caller checked."""
    await store_many(session, created, _LINE_COLUMNS, ("registrar_host", "sip_username"))
    events = [
        event(
            actor,
            "line.create",
            "line",
            line.id,
            account_id=line.account_id,
            after=line_view(line),
        )
        for line in created
    ]
    await record_many(session, events)


def line_registrar(settings: Settings, registrar: str | None) -> SipAddress:
    """The registrar a line given `registrar` is stored with (None or empty: the default)."""
    return registrar_of(registrar) if registrar else settings.default_registrar


def line_port(target: SipAddress, transport: str) -> int:
    """The port a line on `target` over `transport` is stored with: the one its text named,
    else the transport's own (`pbx` over tls: 5061)."""
    return target.port if target.port_named else default_port(transport)


def registrar_of(text: str) -> SipAddress:
    """A line's registrar, in the forms its setting takes (`provisioning.sip.address`): `pbx`,
    `pbx:5070`, `tcp:pbx`, `sip:pbx;transport=tls`, `[2001:db8::1]:5060`."""
    try:
        return parse_sip_address(text)
    except SipAddressError as exc:
        raise InvalidInput(f"registrar: {exc}", field="registrar") from None


def _agreed(asked: str | None, named: str | None) -> str | None:
    """The transport asked for or the one the registrar's text names (`tcp:pbx`); both given,
    they must agree: which one to trust is no guess to make for the operator."""
    if asked and named and asked != named:
        raise InvalidInput(
            f"transport: {asked}, but the registrar says {named}; make them agree",
            field="transport",
        )
    return asked or named


def _check_password(password: str) -> None:
    if not 1 <= len(password) <= 128:
        raise InvalidInput("password: 1 to 128 characters", field="password")
    if not check_text(password):
        raise InvalidInput("password: must not contain control characters", field="password")


async def get_line(session: AsyncSession, line_id: int) -> Line:
    line = await session.get(Line, line_id)
    if line is None:
        raise NotFound(f"line {line_id} not found")
    return line


def lines_query(account_id: int | None = None) -> Select[Line]:
    query = select(Line).order_by(Line.id).options(selectinload(Line.slot))
    if account_id is not None:
        query = query.where(Line.account_id == account_id)
    return query


async def list_lines(session: AsyncSession, account_id: int | None = None) -> list[Line]:
    return list((await session.scalars(lines_query(account_id))).all())


async def set_line_display_name(
    session: AsyncSession,
    line_id: int,
    display_name: str,
    *,
    actor: Actor = SYSTEM,
    files: FilesCheck | None = None,
) -> Line:
    """Change a line's display name; with `files`, refused (FilesRefused, nothing written) when
    the phone carrying the line could not be given it (a template's `refuse`)."""
    line = await get_line(session, line_id)
    before = line_view(line)
    cleaned = clean_text(display_name, "display_name", max_length=100, required=False)
    if files is not None:
        new = replace(files.line(line), display_name=cleaned)
        await _refuse_for_phone(session, files, line, "display name", new)
    line.display_name = cleaned
    await bump_revision_of_line(session, line_id, "line")
    await session.flush()
    await record(
        session, actor, "line.update", "line", line.id,
        account_id=line.account_id, before=before, after=line_view(line),
    )  # fmt: skip
    return line


async def set_line_password(
    session: AsyncSession,
    cipher: Cipher,
    line_id: int,
    password: str,
    *,
    actor: Actor = SYSTEM,
    files: FilesCheck | None = None,
) -> Line:
    """Change a line's SIP password; the phone carrying it gets a new config revision. With
    `files`, refused (FilesRefused, nothing written) when that phone's files could not carry it
    (a `"` in a Gigaset N510 password, a `#` in an Aastra one)."""
    _check_password(password)
    line = await get_line(session, line_id)
    if files is not None:
        new = replace(files.line(line), password=password)
        await _refuse_for_phone(session, files, line, "password", new)
    line.password_enc = cipher.encrypt(password)
    await bump_revision_of_line(session, line_id, "password")
    await session.flush()
    # The event says that the password changed, never what it is.
    await record(
        session, actor, "line.password", "line", line.id,
        account_id=line.account_id, after={"password": "changed"},
    )  # fmt: skip
    return line


async def _refuse_for_phone(
    session: AsyncSession, files: FilesCheck, line: Line, what: str, new: LineData
) -> None:
    """FilesRefused when a phone carrying `line` could not be given `new`: the one it sits on,
    and a replacement shipped to take it over at its first fetch, whose model may write it
    otherwise (only a handover that will still happen: orders.handover)."""
    # Here, not at the top: orders.handover reaches this module through devices.inventory.
    from provisioning.orders.handover import handovers_due

    held = (
        await session.execute(
            select(LineSlot.device_id, LineSlot.slot).where(LineSlot.line_id == line.id)
        )
    ).all()
    targets = [(row.device_id, row.slot) for row in held]
    holders = {device_id for device_id, _ in targets}
    targets += [t for t in await handovers_due(session, line.id) if t[0] not in holders]
    for device_id, slot in targets:
        mac = await session.scalar(select(Device.mac).where(Device.id == device_id))
        change = f"the new {what} of line {line.id} cannot be written to device {mac}"
        await files.refuse(session, device_id, {slot: new}, change)


async def bump_revision_of_line(session: AsyncSession, line_id: int, reason: str) -> None:
    holder = select(LineSlot.device_id).where(LineSlot.line_id == line_id).scalar_subquery()
    await devices_changed(session, Device.id == holder, reason)
