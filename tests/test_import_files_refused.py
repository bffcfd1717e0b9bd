"""The bulk import refuses a row whose line a phone's files could not carry, at planning time,
as `device assign` does (render.refusals): through the real API (`POST /api/v1/imports`) and
the real `provisioning import` command. A refused row is reported with its row, the phone, the
file, the slot and the reason (never the value); with the default mode nothing is written,
with `continue` only the other rows are. The refusing templates: Aastra's (a `#` starts a
comment anywhere on a line) and the Gigaset N510's (no `"` in a credential)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from provisioning import accounts
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, Line
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from tests.conftest import World
from tests.test_api import Api, api  # noqa: F401 (the fixture)
from tests.test_cli import Cli
from tests.test_import import counts, csv_bytes, post_csv

AASTRA_MAC = "00085d2374b1"
GIGASET_MAC = "7c2f80000051"
YEALINK_MAC = "001565b00051"
HASH_SECRET = "pw#HASHSECRET"
QUOTE_SECRET = 'pw"QUOTESECRET'

# Row 2 and 3: one Aastra, its second line's password has a `#`; row 4: a Gigaset N510 whose
# only line's password has a `"`; row 5: a Yealink, which carries both.
ROWS = (
    "Erin,,,,+33100000051,pw-51,00:08:5D:23:74:B1,aastra-6731i,",
    f"Erin,,,,+33100000052,{HASH_SECRET},00085d2374b1,,",
    f'Erin,,,,+33100000053,"{QUOTE_SECRET.replace(chr(34), chr(34) * 2)}",{GIGASET_MAC},'
    "gigaset-n510,",
    "Erin,,,,+33100000054,pw-54,001565b00051,yealink-t46u,",
)


def assert_refusals(report: dict[str, Any]) -> None:
    """Rows 3 and 4 refused, each naming the phone, its file, the slot and the reason."""
    problems = report["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(3, None), (4, None)]
    assert report["refused_rows"] == [3, 4]
    aastra, gigaset = (p["message"] for p in problems)
    assert aastra.startswith(f"line +33100000052 cannot go in slot 2 of phone {AASTRA_MAC}")
    assert "00085D2374B1.cfg" in aastra and "slot 2:" in aastra
    assert "contains a #, which starts a comment in an Aastra file" in aastra
    assert gigaset.startswith(f"line +33100000053 cannot go in slot 1 of phone {GIGASET_MAC}")
    assert "7C2F80000051.xml" in gigaset and "slot 1:" in gigaset
    assert "contains a double quote, which an N510 file cannot carry" in gigaset


def no_secret(text: str) -> None:
    assert "HASHSECRET" not in text and "QUOTESECRET" not in text


async def phones(sessions: SessionFactory) -> dict[str, list[tuple[int, str]]]:
    """Each phone the import may create or change: its (slot, number) pairs."""
    found = {}
    async with sessions() as session:
        for mac in (AASTRA_MAC, GIGASET_MAC, YEALINK_MAC, "00085d2374aa"):
            device = await session.scalar(select(Device).where(Device.mac == mac))
            if device is not None:
                device = await inventory.get_device(session, mac)
                found[mac] = sorted((s.slot, s.line.number) for s in device.slots)
    return found


async def test_the_api_refuses_rows_a_phones_files_cannot_carry(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    body = csv_bytes(*ROWS)
    before = await counts(sessions)

    # The default mode: the report names the rows, and nothing at all is written.
    status, problem = await post_csv(api, body, api.operator)
    assert status == 422 and problem["type"].endswith("/import-refused"), problem
    assert "2 problem(s) in 2 row(s)" in problem["detail"]
    assert not problem["report"]["committed"]
    assert_refusals(problem["report"])
    no_secret(json.dumps(problem))
    assert await counts(sessions) == before and await phones(sessions) == {}

    # A dry run says the same and writes nothing either.
    status, dry = await post_csv(api, body, api.operator, dry_run="true")
    assert status == 200 and not dry["committed"]
    assert_refusals(dry)
    no_secret(json.dumps(dry))
    assert await counts(sessions) == before

    # `continue`: the other rows are imported, the refused ones leave nothing behind (no N510
    # created for its one refused row, no line with a `#`).
    status, kept = await post_csv(api, body, api.operator, mode="continue")
    assert status == 200 and kept["committed"] and kept["imported_rows"] == 2
    assert_refusals(kept)
    assert kept["created"] == {"accounts": 1, "lines": 2, "devices": 2, "slots": 2}
    assert kept["pushes"] == 2
    assert await phones(sessions) == {
        AASTRA_MAC: [(1, "+33100000051")],
        YEALINK_MAC: [(1, "+33100000054")],
    }
    async with sessions() as session:
        numbers = set((await session.scalars(select(Line.number))).all())
    assert "+33100000052" not in numbers and "+33100000053" not in numbers


async def test_a_line_for_a_phone_already_stored_is_checked_with_its_lines(
    api: Api,  # noqa: F811
    sessions: SessionFactory,
    settings: Settings,
    catalog: Catalog,
    world: World,
) -> None:
    """A stored Aastra of the world's account gets a line with a `#`: refused from what the
    database holds (its stored line in slot 1), the row naming slot 2."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        await inventory.add_device(
            session, catalog, cipher, "00085d2374aa", "aastra-6731i", world.account_id
        )
        held = await accounts.create_line(
            session, settings, cipher, world.account_id, "+33100000060", password="plain-pw"
        )
        await inventory.assign_line(session, "00085d2374aa", held.id)
    header = "account_name,number,password,display_name,mac"
    body = csv_bytes(
        "Alice Martin,+33100000061,pw-61,Bureau,00085d2374aa",
        "Alice Martin,+33100000062,pw-62,Accueil #2,00085d2374aa",
        header=header,
    )
    before, stored = await counts(sessions), await phones(sessions)
    status, problem = await post_csv(api, body, api.operator)
    assert status == 422
    report = problem["report"]
    assert [(p["row"], p["column"]) for p in report["problems"]] == [(3, None)]
    message = report["problems"][0]["message"]
    assert message.startswith("line +33100000062 cannot go in slot 3 of phone 00085d2374aa")
    assert "00085D2374AA.cfg" in message and "slot 3:" in message and "#" in message
    assert "Accueil" not in message
    assert await counts(sessions) == before and await phones(sessions) == stored


async def test_the_import_command_refuses_them_and_writes_nothing(
    settings: Settings, sessions: SessionFactory, tmp_path: Path
) -> None:
    cli = Cli(settings, tmp_path)
    path = tmp_path / "phones.csv"
    path.write_bytes(csv_bytes(*ROWS))
    before = await counts(sessions)

    refused = cli.run("import", str(path), ok=False)
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout.startswith(
        f"row 3: line +33100000052 cannot go in slot 2 of phone {AASTRA_MAC}"
    )
    assert "\nrow 4: line +33100000053 cannot go in slot 1" in refused.stdout
    assert "import refused: 2 problem(s) in 2 row(s); nothing written" in refused.stdout
    no_secret(refused.stdout + refused.stderr)
    assert "Traceback" not in refused.stderr

    report = json.loads(cli.run("import", str(path), "--json", ok=False).stdout)
    assert not report["committed"]
    assert_refusals(report)
    assert await counts(sessions) == before and await phones(sessions) == {}

    kept = json.loads(cli.run("import", str(path), "--continue", "--json", ok=False).stdout)
    assert kept["committed"] and kept["imported_rows"] == 2
    assert_refusals(kept)
    assert await phones(sessions) == {
        AASTRA_MAC: [(1, "+33100000051")],
        YEALINK_MAC: [(1, "+33100000054")],
    }
