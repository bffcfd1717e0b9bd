"""Phones that ask for files but are not registered, kept so an operator can claim them.

Only requests that look like a real phone are kept: the User-Agent names a known family whose
file is asked for, and the MACs the request states (file name, User-Agent) agree. The table is
capped, so a scanner guessing MACs cannot fill the database."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.audit import SYSTEM, Actor
from provisioning.crypto import Cipher
from provisioning.db.models import Account, Device, UnknownDevice
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.devices.identify import FileMatch, UserAgentInfo
from provisioning.errors import DomainError
from provisioning.imports import Problem
from provisioning.numbers import parse_id

MAX_UNKNOWN = 10_000


@dataclass(frozen=True)
class UnknownFacts:
    mac: str
    family: str
    ua_model: str | None
    seen_at: datetime
    ip: str
    user_agent: str
    file_name: str


def plausible_phone(
    matches: list[FileMatch], ua: UserAgentInfo | None, path_mac: str | None
) -> tuple[str, str, str | None] | None:
    """(mac, family, model named by the UA) when the request looks like a real phone. Scanner
    defence weighs such a request asking without a credential once per MAC and address
    (`security.bans.unseen_phone`): never make this depend on whether the MAC is registered."""
    if ua is None or not any(m.family is ua.family for m in matches):
        return None
    if path_mac and ua.mac and path_mac != ua.mac:
        return None
    mac = path_mac or ua.mac
    if mac is None:
        return None
    return mac, ua.family.name, ua.ua_model[:64] if ua.ua_model else None


async def record_unknown(session: AsyncSession, facts: UnknownFacts) -> None:
    known = await session.get(UnknownDevice, facts.mac)
    if known is None:
        count = await session.scalar(select(func.count()).select_from(UnknownDevice))
        if (count or 0) >= MAX_UNKNOWN:
            return
    values = {
        "mac": facts.mac,
        "family": facts.family,
        "ua_model": facts.ua_model,
        "first_seen_at": facts.seen_at,
        "last_seen_at": facts.seen_at,
        "last_ip": facts.ip,
        "last_user_agent": facts.user_agent,
        "last_file": facts.file_name,
        "requests": 1,
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(UnknownDevice).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[UnknownDevice.mac],
            set_={
                "family": statement.excluded.family,
                "ua_model": statement.excluded.ua_model,
                "last_seen_at": statement.excluded.last_seen_at,
                "last_ip": statement.excluded.last_ip,
                "last_user_agent": statement.excluded.last_user_agent,
                "last_file": statement.excluded.last_file,
                "requests": UnknownDevice.requests + 1,
            },
        )
    )


async def list_unknown(session: AsyncSession, limit: int = 1000) -> list[UnknownDevice]:
    query = select(UnknownDevice).order_by(UnknownDevice.last_seen_at.desc()).limit(limit)
    return list((await session.scalars(query)).all())


# -- claiming them in bulk ------------------------------------------------------------------
#
# `claim_unknown` registers many of the listed phones at once, as the Manager's Claim button
# (`inventory.add_device`) registers one: the same checks (a MAC, a model of the catalog, an
# existing account or none for stock, no device of that MAC yet), the URL token made and kept
# hashed and encrypted, each device audited and taken off the list. All or nothing: one
# problem and none is claimed, the report saying which MAC (or CSV row and column) and why.

# At most the list's own size in one claim.
MAX_CLAIMS = MAX_UNKNOWN
CLAIM_COLUMNS = ("mac", "model", "account_id")


@dataclass(frozen=True)
class ClaimRequest:
    """One phone to claim: its MAC as given, its model (None: the one its User-Agent names) and
    account (None: stock); `row` numbers it in the caller's input (a CSV row, a MAC's place in
    a list) for the report."""

    row: int
    mac: str
    model: str | None = None
    account_id: int | None = None


@dataclass
class ClaimReport:
    dry_run: bool
    # mac, model, account_id, and url (the provisioning URL: given once, when claimed)
    claimed: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    committed: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "committed": self.committed,
            "claimed": self.claimed,
            "problems": [p.view() for p in self.problems],
        }

    def human(self) -> str:
        lines = [str(p) for p in self.problems]
        lines += [
            f"{c['mac']}\t{c['model']}\t"
            f"{'stock' if c['account_id'] is None else 'account ' + str(c['account_id'])}"
            f"{chr(9) + c['url'] if 'url' in c else ''}"
            for c in self.claimed
        ]
        if self.problems:
            lines.append(
                f"claim refused: {len(self.problems)} problem(s); nothing claimed (an unknown "
                "device is claimed with its model and account, all or none)"
            )
        elif self.dry_run:
            lines.append(f"dry run: {len(self.claimed)} phone(s) would be claimed")
        else:
            lines.append(f"claimed {len(self.claimed)} phone(s)")
        return "\n".join(lines)


def parse_claims_csv(data: bytes, problems: list[Problem]) -> list[ClaimRequest]:
    """Claims from a CSV file as `provisioning import` reads one (UTF-8 with or without BOM,
    comma or semicolon, a header row naming columns of CLAIM_COLUMNS, `mac` required)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(row, None, f"not UTF-8 text (byte {exc.start + 1} of the file)"))
        return []
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    claims: list[ClaimRequest] = []
    number = 1
    try:
        header = [cell.strip().lower() for cell in next(records, [])]
        if not any(header):
            problems.append(Problem(None, None, "empty file: expected a header row"))
            return []
        for name in header:
            if name and name not in CLAIM_COLUMNS:
                known = ", ".join(CLAIM_COLUMNS)
                problems.append(Problem(1, name, f"unknown column (known: {known})"))
            elif name and header.count(name) > 1:
                problems.append(Problem(1, name, "column named twice"))
                break
        if "mac" not in header:
            problems.append(Problem(1, None, "the header must name the mac column"))
        if problems:
            return []
        for record in records:
            number += 1
            if not any(cell.strip() for cell in record):
                continue
            if len(record) > len(header) and any(c.strip() for c in record[len(header) :]):
                problems.append(
                    Problem(number, None, f"{len(record)} cells; the header names {len(header)}")
                )
                continue
            cells = {name: value.strip() for name, value in zip(header, record, strict=False)}
            account_text = cells.get("account_id", "")
            account_id = parse_id(account_text) if account_text else None
            if account_text and account_id is None:
                problems.append(Problem(number, "account_id", "an account id: digits only"))
                continue
            claims.append(
                ClaimRequest(number, cells["mac"], cells.get("model") or None, account_id)
            )
            if len(claims) > MAX_CLAIMS:
                problems.append(Problem(number, None, f"at most {MAX_CLAIMS} phones a claim"))
                return []
    except csv.Error as exc:
        problems.append(Problem(number + 1, None, f"not CSV from here on: {exc}"))
    return claims


async def claim_unknown(
    session: AsyncSession,
    catalog: Catalog,
    cipher: Cipher,
    base_url: str,
    claims: Sequence[ClaimRequest],
    *,
    dry_run: bool = False,
    actor: Actor = SYSTEM,
) -> ClaimReport:
    """Register the unknown devices `claims` names, all or none, in the caller's transaction
    (a savepoint, rolled back for a dry run or a problem): the report lists every problem with
    its row (and column), or each phone claimed with its provisioning URL."""
    report = ClaimReport(dry_run)
    if len(claims) > MAX_CLAIMS:
        report.problems.append(Problem(None, None, f"at most {MAX_CLAIMS} phones a claim"))
        return report
    if not claims:
        report.problems.append(Problem(None, None, "no phone to claim"))
        return report
    macs: dict[str, int] = {}
    parsed: list[tuple[ClaimRequest, str]] = []
    for claim in claims:
        try:
            mac = inventory.parse_mac(claim.mac)
        except DomainError as exc:
            report.problems.append(Problem(claim.row, "mac", exc.message))
            continue
        if mac in macs:
            report.problems.append(Problem(claim.row, "mac", f"{mac} is also on row {macs[mac]}"))
            continue
        macs[mac] = claim.row
        parsed.append((claim, mac))
    wanted = list(macs)
    seen: dict[str, UnknownDevice] = {}
    registered: set[str] = set()
    for start in range(0, len(wanted), inventory.CHUNK):
        chunk = wanted[start : start + inventory.CHUNK]
        found = await session.scalars(select(UnknownDevice).where(UnknownDevice.mac.in_(chunk)))
        seen.update((u.mac, u) for u in found)
        there = await session.scalars(select(Device.mac).where(Device.mac.in_(chunk)))
        registered.update(there)
    account_ids = {c.account_id for c, _ in parsed if c.account_id is not None}
    existing_accounts = set(
        (await session.scalars(select(Account.id).where(Account.id.in_(account_ids)))).all()
        if account_ids
        else ()
    )
    built: list[tuple[Device, str]] = []
    for claim, mac in parsed:
        if mac in registered:
            report.problems.append(Problem(claim.row, "mac", f"{mac} is registered already"))
            continue
        unknown = seen.get(mac)
        if unknown is None:
            report.problems.append(
                Problem(
                    claim.row,
                    "mac",
                    f"{mac} is not among the unknown devices (register it with `device add` or "
                    "an import)",
                )
            )
            continue
        model = claim.model or _guessed_model(catalog, unknown)
        if model is None:
            report.problems.append(
                Problem(
                    claim.row,
                    "model",
                    f"give {mac}'s model: its User-Agent ({unknown.ua_model or 'no model'}) names "
                    "none of the catalog",
                )
            )
            continue
        if claim.account_id is not None and claim.account_id not in existing_accounts:
            report.problems.append(
                Problem(claim.row, "account_id", f"account {claim.account_id} not found")
            )
            continue
        try:
            built.append(inventory.new_device(catalog, cipher, mac, model, claim.account_id))
        except DomainError as exc:
            report.problems.append(Problem(claim.row, exc.field or "mac", exc.message))
    report.problems.sort(key=lambda p: p.row or 0)
    report.claimed = [
        {"mac": d.mac, "model": d.model_id, "account_id": d.account_id} for d, _ in built
    ]
    if report.problems or dry_run:
        if report.problems:
            report.claimed = []
        return report
    savepoint = await session.begin_nested()
    try:
        await inventory.insert_devices(session, [d for d, _ in built], actor=actor)
    except IntegrityError:
        await savepoint.rollback()
        report.claimed = []
        report.problems.append(
            Problem(
                None,
                None,
                "a phone of the claim was registered by someone else meanwhile; nothing claimed, "
                "run it again",
            )
        )
        return report
    await savepoint.commit()
    report.committed = True
    for view, (_, token) in zip(report.claimed, built, strict=True):
        view["url"] = f"{base_url}/{token}/"
    return report


def _guessed_model(catalog: Catalog, unknown: UnknownDevice) -> str | None:
    """The catalog model the device's User-Agent names, in the family it was seen as."""
    family = catalog.families.get(unknown.family)
    if family is None or not unknown.ua_model:
        return None
    model = family.model_for_ua(unknown.ua_model)
    return model.id if model is not None else None
