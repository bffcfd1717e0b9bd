"""Bulk import of a big file: N phones with two lines each, through `provisioning.imports`.

    python benchmarks/bulk_import.py [--devices 10000] [--lines 2] [--per-account 2]
                                     [--postgres postgresql+asyncpg://user:pw@host/db]
                                     [--pg-database bulk_import_bench] [--no-dry-run]

Writes the CSV file (the documented format, semicolon separated with a BOM, as a spreadsheet
saves it), then on a fresh embedded SQLite database (and, with --postgres, on a fresh database
`--pg-database` next to the one the URL names) times: a dry run, the import (one
transaction, committed), and the export of everything back. Checks that the import created
what the file holds and queued one push per phone. Target: the import under 30 s. Prints the
figures (wall-clock seconds, and the CPU seconds of this process, threads included: on a
shared machine the wall clock also counts the time waiting for a core; PostgreSQL's own CPU is
not in the latter) with the machine's load average, and writes them to
benchmarks/results/bulk_import.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioning import exports, imports
from provisioning.commands import prepare_database
from provisioning.crypto import Cipher, generate_key
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import Device, Line, LineSlot, Push
from provisioning.devices.catalog import load_catalog
from provisioning.settings import PROJECT_ROOT, Registrar, Settings

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "bulk_import.json"
TARGET_SECONDS = 30.0
PG_DATABASE = "bulk_import_bench"


def make_file(devices: int, lines: int, per_account: int) -> bytes:
    rows = []
    for d in range(devices):
        account = d // per_account
        mac = f"0015{d:08x}"
        for n in range(lines):
            number = f"+3310{d:06d}{n}"
            rows.append(
                {
                    "account_name": f"Customer {account:05d}",
                    "account_street": f"{account % 200 + 1} rue de la République",
                    "account_postcode": f"{75001 + account % 20}",
                    "account_town": "Paris",
                    "number": number,
                    "password": f"pw-{d}-{n}",
                    "display_name": f"Poste {n + 1}",
                    "mac": mac,
                    "model": "yealink-t46u",
                }
            )
    buffer = io.StringIO(newline="")
    imports.write_rows(buffer, rows, delimiter=";")
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


async def fresh_postgres(url: str, database: str) -> str:
    if not database.replace("_", "").isalnum():
        raise SystemExit(f"--pg-database: letters, digits and _ only, not {database!r}")
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            await conn.execute(text(f"CREATE DATABASE {database}"))
    finally:
        await admin.dispose()
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def run(
    url: str, data: bytes, devices: int, lines: int, modes: tuple[imports.Mode, ...]
) -> dict[str, Any]:
    settings = Settings(
        database_url=url,
        secret_key=(generate_key(),),
        default_registrar=Registrar("sip.example.net", 5060),
    )
    catalog = load_catalog(settings.templates_dir)
    cipher = Cipher(settings.secret_key)
    engine = make_engine(url)
    figures: dict[str, Any] = {}
    try:
        await prepare_database(engine, catalog, migrate=True)
        sessions = make_session_factory(engine)
        for mode in modes:
            started, cpu = time.perf_counter(), time.process_time()
            async with sessions() as session, session.begin():
                report = await imports.import_csv(
                    session,
                    settings,
                    catalog,
                    cipher,
                    data,
                    mode=mode,
                )
            figures[mode] = round(time.perf_counter() - started, 2)
            figures[f"{mode}_cpu"] = round(time.process_time() - cpu, 2)
            figures[f"{mode}_load"] = round(os.getloadavg()[0], 1)
            assert not report.problems, report.problems[:5]
            print(
                f"  {mode:8} {figures[mode]:7.2f} s ({figures[f'{mode}_cpu']:.2f} s CPU, load "
                f"{figures[f'{mode}_load']})  {report.human().splitlines()[-1]}"
            )
        async with sessions() as session:
            counts = {
                "devices": await session.scalar(select(func.count()).select_from(Device)),
                "lines": await session.scalar(select(func.count()).select_from(Line)),
                "slots": await session.scalar(select(func.count()).select_from(LineSlot)),
                "pushes": await session.scalar(select(func.count()).select_from(Push)),
            }
        assert counts == {
            "devices": devices,
            "lines": devices * lines,
            "slots": devices * lines,
            "pushes": devices,
        }, counts
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            out = io.StringIO(newline="")
            exported = await exports.export_csv(session, cipher, out, with_secrets=True)
        figures["export"] = round(time.perf_counter() - started, 2)
        print(f"  export   {figures['export']:7.2f} s  {exported['rows']} row(s)")
        figures["counts"] = counts
    finally:
        await engine.dispose()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=2, help="lines per phone")
    parser.add_argument("--per-account", type=int, default=2, help="phones per account")
    parser.add_argument("--postgres", help="postgresql+asyncpg:// URL (a database beside it)")
    parser.add_argument("--pg-database", default=PG_DATABASE, help="dropped and created again")
    parser.add_argument("--no-dry-run", action="store_true", help="time the import only")
    args = parser.parse_args()
    modes: tuple[imports.Mode, ...] = ("all",) if args.no_dry_run else ("dry-run", "all")
    started = time.perf_counter()
    data = make_file(args.devices, args.lines, args.per_account)
    rows = args.devices * args.lines
    print(
        f"{rows} rows, {args.devices} phones, {len(data) / 1e6:.1f} MB, "
        f"written in {time.perf_counter() - started:.2f} s"
    )
    results: dict[str, Any] = {
        "rows": rows,
        "devices": args.devices,
        "lines": args.lines,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as folder:
        print("sqlite:")
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"
        results["sqlite"] = await run(url, data, args.devices, args.lines, modes)
    if args.postgres:
        print("postgresql:")
        results["postgresql"] = await run(
            await fresh_postgres(args.postgres, args.pg_database),
            data,
            args.devices,
            args.lines,
            modes,
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    slow = [db for db in ("sqlite", "postgresql") if results.get(db, {}).get("all", 0) > 30]
    verdict = f"missed on {', '.join(slow)}" if slow else "met"
    print(f"target: the import under {TARGET_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
