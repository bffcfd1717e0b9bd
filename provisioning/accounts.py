"""Accounts and their SIP lines: the domain operations shared by the CLI, the API and the pages.

Functions take a session inside a transaction the caller owns, validate their input, and raise
domain errors; they never commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import available_timezones

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from provisioning.audit import SYSTEM, Actor, record
from provisioning.crypto import Cipher
from provisioning.db.models import Account, Device, Line, LineSlot
from provisioning.errors import InvalidInput, LineExists, NotFound
from provisioning.push.changes import devices_changed
from provisioning.render.escaping import check_text
from provisioning.settings import Settings
from provisioning.sip.address import TRANSPORTS, SipAddress, SipAddressError, parse_sip_address
from provisioning.views import account_view, line_view

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
    timezone = timezone or settings.default_timezone
    if timezone not in available_timezones():
        raise InvalidInput(f"timezone: unknown time zone {timezone[:64]!r}", field="timezone")
    language = language or settings.default_language
    if not _LANGUAGE.fullmatch(language):
        raise InvalidInput("language: expected a two-letter code such as fr", field="language")
    address = address or Address("", "", "")
    account = Account(
        name=clean_text(name, "name", max_length=200),
        street=clean_text(address.street, "address", max_length=200, required=False),
        postcode=clean_text(address.postcode, "address", max_length=20, required=False),
        town=clean_text(address.town, "address", max_length=100, required=False),
        country=address.country,
        timezone=timezone,
        language=language,
    )
    session.add(account)
    await session.flush()
    await record(
        session, actor, "account.create", "account", account.id,
        account_id=account.id, after=account_view(account),
    )  # fmt: skip
    return account


async def get_account(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list((await session.scalars(select(Account).order_by(Account.id))).all())


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
    line = Line(
        account_id=account_id,
        number=number,
        sip_username=username,
        auth_username=auth_username,
        password_enc=cipher.encrypt(password),
        registrar_host=target.host,
        registrar_port=target.port,
        transport=transport,
        display_name=clean_text(display_name, "display_name", max_length=100, required=False),
    )
    session.add(line)
    try:
        await session.flush()
    except IntegrityError:
        raise LineExists(
            f"a line with SIP username {username} already exists on {target.host}",
            field="username",
        ) from None
    await record(
        session, actor, "line.create", "line", line.id,
        account_id=account_id, after=line_view(line),
    )  # fmt: skip
    return line


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
    session: AsyncSession, line_id: int, display_name: str, *, actor: Actor = SYSTEM
) -> Line:
    line = await get_line(session, line_id)
    before = line_view(line)
    line.display_name = clean_text(display_name, "display_name", max_length=100, required=False)
    await bump_revision_of_line(session, line_id, "line")
    await session.flush()
    await record(
        session, actor, "line.update", "line", line.id,
        account_id=line.account_id, before=before, after=line_view(line),
    )  # fmt: skip
    return line


async def set_line_password(
    session: AsyncSession, cipher: Cipher, line_id: int, password: str, *, actor: Actor = SYSTEM
) -> Line:
    """Change a line's SIP password; the phone carrying it gets a new config revision."""
    _check_password(password)
    line = await get_line(session, line_id)
    line.password_enc = cipher.encrypt(password)
    await bump_revision_of_line(session, line_id, "password")
    await session.flush()
    # The event says that the password changed, never what it is.
    await record(
        session, actor, "line.password", "line", line.id,
        account_id=line.account_id, after={"password": "changed"},
    )  # fmt: skip
    return line


async def bump_revision_of_line(session: AsyncSession, line_id: int, reason: str) -> None:
    holder = select(LineSlot.device_id).where(LineSlot.line_id == line_id).scalar_subquery()
    await devices_changed(session, Device.id == holder, reason)
