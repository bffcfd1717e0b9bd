"""Bulk import and export of accounts, lines, phones and slots (`provisioning.imports`,
`provisioning.exports`): problems with their row and column, all or nothing, --continue, the
file's encodings, the round trip, one push per phone, tenancy."""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from provisioning import accounts, exports, imports
from provisioning.api import imports as imports_api
from provisioning.audit import Actor
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Account, AuditEvent, Base, Device, Line, LineSlot, Push
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from tests.conftest import World
from tests.test_api import Api, api  # noqa: F401 (the fixture)
from tests.test_cli import Cli

HEADER = "account_name,account_street,account_postcode,account_town,number,password,mac,model,slot"
NEW_MAC = "001565b00001"


def csv_bytes(*lines: str, header: str = HEADER) -> bytes:
    return "\r\n".join([header, *lines]).encode("utf-8") + b"\r\n"


async def run(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    data: bytes,
    mode: imports.Mode = "all",
) -> imports.ImportReport:
    async with sessions() as session, session.begin():
        return await imports.import_csv(
            session, settings, catalog, Cipher(settings.secret_key), data, mode=mode,
            actor=Actor("cli:tester"),
        )  # fmt: skip


async def count(sessions: SessionFactory, model: type[Base]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def counts(sessions: SessionFactory) -> dict[str, int]:
    return {
        "accounts": await count(sessions, Account),
        "lines": await count(sessions, Line),
        "devices": await count(sessions, Device),
        "slots": await count(sessions, LineSlot),
        "pushes": await count(sessions, Push),
        "audit": await count(sessions, AuditEvent),
    }


def where(report: imports.ImportReport) -> list[tuple[int | None, str | None]]:
    return [(p.row, p.column) for p in report.problems]


async def export_text(
    sessions: SessionFactory, settings: Settings, *, with_secrets: bool = True
) -> str:
    out = io.StringIO(newline="")
    async with sessions() as session, session.begin():
        await exports.export_csv(
            session, Cipher(settings.secret_key), out, with_secrets=with_secrets
        )
    return out.getvalue()


async def wipe(sessions: SessionFactory, catalog: Catalog) -> None:
    async with sessions() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "row_generation":
                await session.execute(table.delete())
        await inventory.sync_models(session, catalog)


# -- problems, with their row and column ----------------------------------------------------


async def test_a_dry_run_reports_every_problem_with_its_row_and_column(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    data = csv_bytes(
        "Alice,1 rue A,75001,Paris,+33100000001,pw-1,001565b00001,yealink-t46u,",  # row 2: good
        "Alice,,,,+33100000002,pw-2,00:15:65,yealink-t46u,",  # 3: mac
        ",,,,,,,,",  # 4: empty, skipped (still a row of the spreadsheet)
        "Bob,,,,+33100000003,pw-3,001565b00003,yealink-t99,",  # 5: model
        "Bob,,,,+33100000004,,001565b00004,yealink-t46u,",  # 6: new line without password
        "Bob,,,,+33100000005,pw-5,001565b00005,yealink-t46u,first",  # 7: slot
        "Bob,,,,phone,pw-6,,,",  # 8: number
        "Carol,,,,+33100000007,pw-7,001565b00007,yealink-t46u,17",  # 9: slot past the 16
        ",,,,+33100000008,pw-8,,,",  # 10: a line without account
        "Alice,2 rue B,75001,Paris,,,,,",  # 11: Alice's address differs from row 2
        "Dave,,,,+33100000009,pw-9,001565b00001,,",  # 12: row 2's phone is Alice's
    )
    report = await run(sessions, settings, catalog, data, mode="dry-run")
    assert where(report) == [
        (3, "mac"),
        (5, "model"),
        (6, "password"),
        (7, "slot"),
        (8, "number"),
        (9, "slot"),
        (10, "account_name"),
        (11, "account_street"),
        (12, "account_name"),
    ]
    assert all(p.message for p in report.problems)
    assert "unknown model" in report.problems[1].message
    assert report.rows == 10 and report.refused_rows == [3, 5, 6, 7, 8, 9, 10, 11, 12]
    assert not report.committed
    assert await counts(sessions) == dict.fromkeys(
        ("accounts", "lines", "devices", "slots", "pushes", "audit"), 0
    )
    human = report.human()
    assert "row 3, column mac:" in human and "nothing written" in human.splitlines()[-1]
    assert report.view()["problems"][0] == {
        "row": 3,
        "column": "mac",
        "message": report.problems[0].message,
    }


async def test_a_good_dry_run_says_what_it_would_create_and_writes_nothing(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    data = csv_bytes(
        "Alice,1 rue A,75001,Paris,+33100000001,pw-1,001565b00001,yealink-t46u,",
        "Alice,,,,+33100000002,pw-2,001565b00001,,",
    )
    report = await run(sessions, settings, catalog, data, mode="dry-run")
    assert report.problems == [] and not report.committed
    assert report.created == {"accounts": 1, "lines": 2, "devices": 1, "slots": 2}
    assert (await counts(sessions))["accounts"] == 0


async def test_the_file_as_a_whole(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    unknown = await run(sessions, settings, catalog, b"account_name,colour\r\nAlice,red\r\n")
    assert where(unknown) == [(1, "colour")]
    twice = await run(sessions, settings, catalog, b"mac,model,mac\r\n")
    assert where(twice) == [(1, "mac")]
    neither = await run(sessions, settings, catalog, b"number,password\r\n+33100000001,pw\r\n")
    assert where(neither) == [(1, None)]
    empty = await run(sessions, settings, catalog, b"")
    assert where(empty) == [(None, None)]
    latin1 = await run(sessions, settings, catalog, HEADER.encode() + b"\r\nZo\xe9,,,,,,,,\r\n")
    assert [p.row for p in latin1.problems] == [2] and "UTF-8" in latin1.problems[0].message
    cells = await run(sessions, settings, catalog, b"account_name\r\nAlice,extra\r\nBob\r\n")
    assert where(cells) == [(2, None)] and cells.rows == 2 and not cells.committed
    # A spreadsheet's trailing separators: a column without a name, which must stay empty.
    trailing = await run(
        sessions, settings, catalog, b"account_name,,\r\nAlice,,\r\nBob,x,\r\n", mode="dry-run"
    )
    assert where(trailing) == [(3, "#2")] and trailing.created["accounts"] == 1
    assert (await counts(sessions))["accounts"] == 0


# -- transactions ---------------------------------------------------------------------------


async def test_all_or_nothing(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    rows = [
        "Alice,1 rue A,75001,Paris,+33100000001,pw-1,001565b00001,yealink-t46u,",
        "Alice,,,,+33100000002,pw-2,001565b00001,,",
        "Bob,,,,+33100000003,pw-3,001565b00002,yealink-t31p,",
        "Bob,,,,+33100000004,pw-4,001565b00002,,",
        "Bob,,,,+33100000005,pw-5,001565b00002,,",  # a T31P has two slots
    ]
    refused = await run(sessions, settings, catalog, csv_bytes(*rows))
    assert where(refused) == [(6, "slot")] and "no free slot" in refused.problems[0].message
    assert not refused.committed and "import refused" in refused.human()
    assert refused.view()["created"] == dict.fromkeys(imports.KINDS, 0)
    assert (await counts(sessions))["accounts"] == 0

    imported = await run(sessions, settings, catalog, csv_bytes(*rows[:4]))
    assert imported.problems == [] and imported.committed
    assert imported.created == {"accounts": 2, "lines": 4, "devices": 2, "slots": 4}
    assert imported.imported_rows == 4
    now = await counts(sessions)
    assert (now["accounts"], now["lines"], now["devices"], now["slots"]) == (2, 4, 2, 4)

    again = await run(sessions, settings, catalog, csv_bytes(*rows[:4]))
    assert again.problems == [] and again.created == dict.fromkeys(imports.KINDS, 0)
    assert again.existing == {"accounts": 2, "lines": 4, "devices": 2, "slots": 4}
    assert again.pushes == 0 and await counts(sessions) == {**now, "audit": now["audit"] + 1}


async def test_continue_imports_the_good_rows(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    data = csv_bytes(
        "Alice,1 rue A,75001,Paris,+33100000001,pw-1,001565b00001,yealink-t46u,",
        "Alice,,,,+33100000002,bad\x01password,001565b00001,,",
        "Alice,,,,+33100000003,pw-3,001565b00001,,",
        "Bob,,,,+33100000004,pw-4,00:15:65,yealink-t46u,",
        "Bob,,,,+33100000005,pw-5,,,",
    )
    report = await run(sessions, settings, catalog, data, mode="continue")
    assert where(report) == [(3, "password"), (5, "mac")]
    assert report.committed and report.imported_rows == 3 and report.rows == 5
    assert report.created == {"accounts": 2, "lines": 3, "devices": 1, "slots": 2}
    assert "imported 3 of 5 row(s), 2 refused" in report.human()
    async with sessions() as session:
        device = await inventory.get_device(session, NEW_MAC)
        assert [(s.slot, s.line.number) for s in device.slots] == [
            (1, "+33100000001"),
            (2, "+33100000003"),
        ]


# -- the file's encodings -------------------------------------------------------------------


async def test_a_bom_and_semicolons(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    text = (
        "\ufeffAccount_Name;Account_Street;account_postcode;account_town;Number;Password;"
        "Display_Name;MAC;Model\r\n"
        'Élodie Müller;"3, place de l\'Église";67000;Strasbourg;+33388000001;"p;w d";'
        "Poste d'accueil;00-15-65-B0-00-01;yealink-t46u\r\n"
    )
    report = await run(sessions, settings, catalog, text.encode("utf-8"))
    assert report.problems == [] and report.committed
    async with sessions() as session:
        account = (await session.scalars(select(Account))).one()
        assert (account.name, account.street, account.town) == (
            "Élodie Müller",
            "3, place de l'Église",
            "Strasbourg",
        )
        line = (await session.scalars(select(Line))).one()
        assert line.display_name == "Poste d'accueil"
        assert Cipher(settings.secret_key).decrypt(line.password_enc) == "p;w d"
        assert (await inventory.get_device(session, NEW_MAC)).account_id == account.id


# -- export, and back -----------------------------------------------------------------------


async def test_export_import_round_trip(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, cipher: Cipher, world: World
) -> None:
    async with sessions() as session, session.begin():
        await inventory.add_device(session, catalog, cipher, "001565c0ffee", "yealink-t31p", None)
        await imports.import_csv(session, settings, catalog, cipher, csv_bytes("Carol,,,,,,,,"))
    exported = await export_text(sessions, settings)
    lines = exported.splitlines()
    assert lines[0] == ",".join(imports.COLUMNS)
    # Alice: two lines on her Yealink, her Linphone without lines, her line on no phone; Bob's
    # line; Carol without anything; the phone in stock.
    assert len(lines) == 1 + 4 + 1 + 1 + 1
    assert "secret-1" in exported and "sip.example.net:5060" in exported

    # Imported again where it came from: everything is already there, nothing changes.
    before = await counts(sessions)
    same = await run(sessions, settings, catalog, exported.encode())
    assert same.problems == [] and same.created == dict.fromkeys(imports.KINDS, 0)
    assert same.existing == {"accounts": 3, "lines": 4, "devices": 3, "slots": 2}
    assert await counts(sessions) == {**before, "audit": before["audit"] + 1}

    # Into an empty server: the same accounts, lines, phones and slots.
    await wipe(sessions, catalog)
    moved = await run(sessions, settings, catalog, exported.encode())
    assert moved.problems == [], moved.problems
    assert moved.created == {"accounts": 3, "lines": 4, "devices": 3, "slots": 2}
    assert await export_text(sessions, settings) == exported

    # Without the secrets: the passwords are left out, existing lines keep theirs, new lines
    # are refused.
    bare = await export_text(sessions, settings, with_secrets=False)
    assert "secret-1" not in bare
    assert (await run(sessions, settings, catalog, bare.encode())).problems == []
    await wipe(sessions, catalog)
    refused = await run(sessions, settings, catalog, bare.encode())
    assert {(p.column, "--with-secrets" in p.message) for p in refused.problems} == {
        ("password", True)
    }


async def test_an_export_with_secrets_is_audited(
    sessions: SessionFactory, settings: Settings, world: World
) -> None:
    await export_text(sessions, settings, with_secrets=False)
    async with sessions() as session:
        assert (
            await session.scalar(select(func.count()).where(AuditEvent.action.like("export%"))) == 0
        )
    await export_text(sessions, settings, with_secrets=True)
    async with sessions() as session:
        event = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "export.secrets"))
        ).one()
        assert "secret" not in (event.after or "")


# -- writes go through the domain functions -------------------------------------------------


async def test_secrets_encrypted_and_changes_audited(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    data = csv_bytes("Alice,,,,+33100000001,pw-secret,001565b00001,yealink-t46u,")
    assert (await run(sessions, settings, catalog, data)).committed
    async with sessions() as session:
        line = (await session.scalars(select(Line))).one()
        assert "pw-secret" not in line.password_enc
        assert Cipher(settings.secret_key).decrypt(line.password_enc) == "pw-secret"
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
        assert [e.action for e in events] == [
            "account.create",
            "line.create",
            "device.create",
            "device.assign",
            "import.csv",
        ]
        assert {e.actor for e in events} == {"cli:tester"}
        assert all("pw-secret" not in (e.after or "") for e in events)


async def test_one_push_per_phone(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World
) -> None:
    async with sessions() as session:
        old = (
            await session.scalars(
                select(Push.id).join(Device).where(Device.mac == world.yealink_mac)
            )
        ).all()
    assert len(old) == 2  # the world's two assignments
    data = csv_bytes(
        # A new phone with three lines...
        "Zoe,,,,+33100000001,pw-1,001565b00001,yealink-t46u,",
        "Zoe,,,,+33100000002,pw-2,001565b00001,,",
        "Zoe,,,,+33100000003,pw-3,001565b00001,,",
        # ...two more lines on the world's Yealink (Alice's), and a phone without lines.
        "Alice Martin,,,,+33100000004,pw-4,0015654aa937,,",
        "Alice Martin,,,,+33100000005,pw-5,0015654aa937,,",
        "Alice Martin,,,,,,001565b00002,yealink-t46u,",
    )
    report = await run(sessions, settings, catalog, data)
    assert report.problems == [] and report.pushes == 2
    async with sessions() as session:
        rows = (
            await session.execute(
                select(
                    Device.mac, Device.config_revision, Push.id, Push.target_revision, Push.reason
                )
                .join(Push, Push.device_id == Device.id)
                .order_by(Push.id)
            )
        ).all()
    by_mac: dict[str, list[tuple[int, int, int, str]]] = {}
    for mac, revision, push_id, target, reason in rows:
        by_mac.setdefault(mac, []).append((revision, push_id, target, reason))
    assert set(by_mac) == {NEW_MAC, world.yealink_mac}
    new = by_mac[NEW_MAC]
    assert len(new) == 1 and new[0][0] == new[0][2] and new[0][3] == imports.PUSH_REASON
    existing = by_mac[world.yealink_mac]
    assert [p[1] for p in existing[:2]] == list(old)  # the pushes it had are left alone
    assert len(existing) == 3
    revision, _, target, reason = existing[2]
    assert target == revision and reason == imports.PUSH_REASON


# -- tenancy --------------------------------------------------------------------------------


async def test_a_line_and_a_phone_of_different_accounts_are_refused(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World
) -> None:
    data = csv_bytes(
        # Bob's new line on Alice's phone.
        f"Bob Durand,,,,+33100000001,pw-1,{world.yealink_mac},,",
        # Alice's line (on no phone) on Bob's new phone.
        "Bob Durand,,,,+33123456703,,001565b00001,yealink-t46u,",
        # One new phone, two accounts.
        "Carol,,,,+33100000002,pw-2,001565b00002,yealink-t46u,",
        "Dave,,,,+33100000003,pw-3,001565b00002,yealink-t46u,",
        # Bob's good row.
        "Bob Durand,,,,+33100000004,pw-4,,,",
    )
    before = await counts(sessions)
    refused = await run(sessions, settings, catalog, data)
    assert where(refused) == [(2, "mac"), (3, "number"), (5, "account_name")]
    assert "another account" in refused.problems[0].message
    assert "another account" in refused.problems[1].message
    assert await counts(sessions) == before

    kept = await run(sessions, settings, catalog, data, mode="continue")
    assert where(kept) == where(refused) and kept.imported_rows == 2
    async with sessions() as session:
        devices = {d.mac: d for d in await inventory.list_devices(session)}
        assert "001565b00001" not in devices  # its only row was refused
        assert [s.line.number for s in devices["001565b00002"].slots] == ["+33100000002"]
        yealink = devices[world.yealink_mac]
        assert all(s.line.account_id == world.account_id for s in yealink.slots)


async def test_an_existing_line_must_agree(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: World
) -> None:
    header = "account_name,number,password,display_name,mac,slot"
    data = csv_bytes(
        "Alice Martin,+33123456701,secret-1,,0015654aa937,1",  # as it is: fine
        "Alice Martin,+33123456702,wrong,,,",  # another password
        "Alice Martin,+33123456703,,Someone else,,",  # another display name
        "Alice Martin,+33123456701,,,0015654aa937,2",  # moved to another slot
        "Alice Martin,+33123456703,,,020000c0ffee,",  # line 3 (on no phone) on the Linphone
        header=header,
    )
    report = await run(sessions, settings, catalog, data, mode="dry-run")
    assert where(report) == [(3, "password"), (4, "display_name"), (5, "slot")]
    assert report.existing == {"accounts": 1, "lines": 2, "devices": 2, "slots": 1}
    assert report.created == {"accounts": 0, "lines": 0, "devices": 0, "slots": 1}


async def test_two_accounts_of_one_name_are_ambiguous(
    sessions: SessionFactory, settings: Settings, catalog: Catalog
) -> None:
    twice = csv_bytes("Alice,,,,,,,,")
    assert (await run(sessions, settings, catalog, twice)).committed
    async with sessions() as session, session.begin():
        session.add(Account(name="Alice", timezone="Europe/Paris", language="fr"))
    report = await run(sessions, settings, catalog, twice)
    assert where(report) == [(2, "account_name")] and "2 accounts" in report.problems[0].message


# -- the command ----------------------------------------------------------------------------


def test_the_import_and_export_commands(
    settings: Settings, sessions: SessionFactory, tmp_path: Path
) -> None:
    cli = Cli(settings, tmp_path)
    good = tmp_path / "phones.csv"
    good.write_bytes(
        b"\xef\xbb\xbfaccount_name;number;password;mac;model\r\n"
        b"Alice;+33100000001;pw-1;001565b00001;yealink-t46u\r\n"
        b"Alice;+33100000002;pw-2;001565b00001;\r\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"account_name,number,password\r\nBob,+33100000003,\r\n")

    dry = cli.run("import", str(bad), "--dry-run", "--json", ok=False)
    assert dry.returncode == 1
    problems = json.loads(dry.stdout)["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(2, "password")]
    assert cli.run("import", str(bad), ok=False).stdout.startswith("row 2, column password:")
    done = cli.json("import", str(good))
    assert done["committed"] and done["created"]["slots"] == 2 and done["pushes"] == 1

    private = tmp_path / "backup.csv"
    shown = cli.json("export", str(private), "--with-secrets")
    assert shown["lines"] == 2 and shown["with_secrets"] is True
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert "pw-1" in private.read_text(encoding="utf-8")
    again = cli.run("export", str(private), ok=False)
    assert again.returncode == 1 and "never overwrites" in again.stderr
    public = cli.run("export", "-", "--delimiter", ";").stdout
    assert public.startswith("account_name;") and "pw-1" not in public
    assert "WITH THE SIP PASSWORDS IN CLEAR" in cli.run("export", "-", "--with-secrets").stderr


# -- the API --------------------------------------------------------------------------------


async def post_csv(
    to: Api,
    body: bytes | io.BytesIO | AsyncIterator[bytes],
    token: str | None,
    content_type: str = "text/csv",
    **params: str,
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp = await to.client.post("/api/v1/imports", data=body, headers=headers, params=params)
    text = await resp.text()
    if resp.status >= 400:
        assert resp.content_type == "application/problem+json", (resp.status, text)
    else:
        assert resp.content_type == "application/json", (resp.status, text)
    return resp.status, json.loads(text)


async def test_the_api_imports_what_the_cli_does(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
) -> None:
    good = csv_bytes(
        "Carol,1 rue A,75001,Paris,+33100000001,pw-1,001565b00001,yealink-t46u,",
        "Carol,,,,+33100000002,pw-2,001565b00001,,2",
    )
    before = await counts(sessions)
    status, dry = await post_csv(api, good, api.operator, dry_run="true")
    assert status == 200 and dry["mode"] == "dry-run" and not dry["committed"]
    assert dry["created"] == {"accounts": 1, "lines": 2, "devices": 1, "slots": 2}
    assert await counts(sessions) == before

    status, done = await post_csv(api, b"\xef\xbb\xbf" + good.replace(b",", b";"), api.operator)
    assert status == 200 and done["committed"] and done["pushes"] == 1
    assert done["created"] == {"accounts": 1, "lines": 2, "devices": 1, "slots": 2}
    async with sessions() as session:
        device = await inventory.get_device(session, NEW_MAC)
        assert [(s.slot, s.line.number) for s in device.slots] == [
            (1, "+33100000001"),
            (2, "+33100000002"),
        ]
        # Who did it, from where: the operator's token, in the audit trail.
        actors = set(
            (await session.scalars(select(AuditEvent.actor).where(AuditEvent.id > 0))).all()
        )
        assert "operator:ops" in actors
        line = await session.scalar(select(Line).where(Line.number == "+33100000001"))
        assert line is not None and "pw-1" not in line.password_enc

    # The report of the CLI's --json, word for word: the same function behind both.
    again = await run(sessions, settings, catalog, good, mode="dry-run")
    status, api_again = await post_csv(api, good, api.operator, dry_run="true")
    assert status == 200 and api_again == again.view()


async def test_the_api_refuses_rows_with_their_row_and_column(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    rows = (
        "Dan,,,,+33100000001,pw-1,001565b00001,yealink-t46u,",
        "Dan,,,,+33100000002,,001565b00002,yealink-t46u,",  # row 3: no password
        "Dan,,,,+33100000003,pw-3,001565b00003,yealink-t99,",  # row 4: unknown model
    )
    before = await counts(sessions)
    status, problem = await post_csv(api, csv_bytes(*rows), api.operator)
    assert status == 422 and problem["type"].endswith("/import-refused")
    assert "nothing written" in problem["detail"]
    report = problem["report"]
    assert [(p["row"], p["column"]) for p in report["problems"]] == [(3, "password"), (4, "model")]
    assert report["refused_rows"] == [3, 4] and not report["committed"]
    assert await counts(sessions) == before

    status, kept = await post_csv(api, csv_bytes(*rows), api.operator, mode="continue")
    assert status == 200 and kept["committed"] and kept["imported_rows"] == 1
    assert kept["refused_rows"] == [3, 4] and kept["created"]["devices"] == 1
    assert (await counts(sessions))["devices"] == before["devices"] + 1


async def test_the_api_refuses_bad_input_with_problems(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    good = csv_bytes("Eve,,,,+33100000001,pw-1,001565b00001,yealink-t46u,")
    before = await counts(sessions)
    # Operators only: a customer's token is refused whatever the file.
    status, problem = await post_csv(api, good, api.customer)
    assert status == 403 and problem["type"].endswith("/operator-only")
    status, problem = await post_csv(api, good, None)
    assert status == 401
    status, problem = await post_csv(api, good, api.operator, content_type="application/json")
    assert status == 415 and problem["field"] == "body"
    for name, value in (("mode", "some"), ("dry_run", "yes"), ("mode", "dry-run")):
        status, problem = await post_csv(api, good, api.operator, **{name: value})
        assert status == 422 and problem["field"] == name, (name, value)
    # The file as a whole: not UTF-8, an unknown column. A problem, whatever the mode.
    for body in (HEADER.encode() + b"\r\nZo\xe9,,,,,,,,\r\n", b"account_name,colour\r\nA,b\r\n"):
        status, problem = await post_csv(api, body, api.operator, mode="continue")
        assert status == 422 and problem["type"].endswith("/import-refused")
        assert problem["report"]["problems"][0]["row"] in (1, 2)
    status, problem = await post_csv(api, b"", api.operator)
    assert status == 422 and problem["report"]["problems"] == [
        {"row": None, "column": None, "message": "empty file: expected a header row"}
    ]
    # Past the limit: refused before the body is read in full (Content-Length), and when sent
    # without a length too (chunked).
    big = HEADER.encode() + b"\r\n" + b"#" * (imports_api.MAX_BYTES + 1)
    status, problem = await post_csv(api, io.BytesIO(big), api.operator)
    assert status == 413 and problem["type"].endswith("/too-large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    status, problem = await post_csv(api, chunks(), api.operator)
    assert status == 413
    assert await counts(sessions) == before


async def test_a_line_added_by_another_writer_meanwhile_refuses_the_import(
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The import plans against what `load` read; the database's constraints stay the last
    word. A line added since (here: one `load` is made not to see) refuses the import as a
    whole with a problem, and nothing is written, not a 500."""
    real_load = imports._Importer.load

    async def load_without_lines(self: imports._Importer) -> None:
        await real_load(self)
        self.lines.clear()
        self.slots.clear()

    monkeypatch.setattr(imports._Importer, "load", load_without_lines)
    before = await counts(sessions)
    # The world's line +33123456701 exists: the import believes it new.
    data = csv_bytes(
        "Alice Martin,,,,+33100000009,pw-9,001565b00001,yealink-t46u,",
        "Alice Martin,,,,+33123456701,pw-1,001565b00001,,",
    )
    for mode in ("all", "continue"):
        report = await run(sessions, settings, catalog, data, mode=mode)  # type: ignore[arg-type]
        assert where(report) == [(None, None)] and not report.committed, mode
        assert "run it again" in report.problems[0].message
        assert await counts(sessions) == before


async def test_an_ipv6_registrar_survives_the_round_trip(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, cipher: Cipher
) -> None:
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Dora")
        await accounts.create_line(
            session, settings, cipher, account.id, "+33100000042", password="pw-42",
            registrar="[2001:db8::1]:5061", transport="tls",
        )  # fmt: skip
    exported = await export_text(sessions, settings)
    assert "[2001:db8::1]:5061" in exported
    again = await run(sessions, settings, catalog, exported.encode())
    assert again.problems == [] and again.existing["lines"] == 1
    await wipe(sessions, catalog)
    moved = await run(sessions, settings, catalog, exported.encode())
    assert moved.problems == [] and moved.created["lines"] == 1
    async with sessions() as session:
        line = await session.scalar(select(Line))
        assert line is not None
        assert (line.registrar_host, line.registrar_port, line.transport) == (
            "2001:db8::1",
            5061,
            "tls",
        )
