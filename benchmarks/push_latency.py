"""Association-to-applied time with emulated phones behind a real kamailio.

    python benchmarks/push_latency.py [--phones 100] [--poll 60]

Starts kamailio and the server (embedded SQLite in a temporary folder), boots N emulated
Yealink phones that register their first line, associates a second line with each phone at
once, and measures, per association, the time until the server has delivered the new revision
to the phone (the push's applied_at). Then the same with phones that ignore NOTIFYs: the
polling backstop (a re-check every --poll seconds) must still apply every change within the
five-minute deadline. Prints the figures and writes them to benchmarks/results/push_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from statistics import median, quantiles

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioning import accounts
from provisioning.app import create_app
from provisioning.crypto import Cipher, generate_key
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.migrate import upgrade
from provisioning.devices import inventory
from provisioning.devices.catalog import load_catalog
from provisioning.lab.phone import EmulatedPhone
from provisioning.push import associations
from provisioning.settings import Settings
from tests.peers.kamailio import Kamailio
from tests.peers.require import free_port

RESULTS = Path(__file__).parent / "results" / "push_latency.json"


def p99(values: list[float]) -> float:
    return quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


async def run_round(
    folder: Path, kamailio: Kamailio, phones: int, poll: int, answer_notify: bool, name: str
) -> dict[str, object]:
    port = free_port("tcp")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / (name + '.sqlite3')}",
        secret_key=(generate_key(),),
        port=port,
        poll_interval=poll,
        push_enabled=True,
    )
    catalog = load_catalog(settings.templates_dir)
    cipher = Cipher(settings.secret_key)
    engine = make_engine(settings.database_url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    registrar = f"127.0.0.1:{kamailio.sip_port}"
    devices = []
    async with sessions() as session, session.begin():
        await inventory.sync_models(session, catalog)
        account = await accounts.create_account(session, settings, "Bench")
        for i in range(phones):
            mac = f"0015650{i:05x}"
            first = await accounts.create_line(
                session, settings, cipher, account.id, f"+331000{i:05d}",
                username=f"{name}{i}a", password=f"pw{i}a", registrar=registrar,
            )  # fmt: skip
            second = await accounts.create_line(
                session, settings, cipher, account.id, f"+332000{i:05d}",
                username=f"{name}{i}b", password=f"pw{i}b", registrar=registrar,
            )  # fmt: skip
            _, token = await inventory.add_device(
                session, catalog, cipher, mac, "yealink-t46u", account.id
            )
            await inventory.assign_line(session, mac, first.id)
            devices.append((mac, token, second.id))
    for i in range(phones):
        for suffix in "ab":
            await asyncio.to_thread(kamailio.add_user, f"{name}{i}{suffix}", f"pw{i}{suffix}")

    runner = web.AppRunner(create_app(replace(settings)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    family = catalog.families["yealink"]
    model = family.models["yealink-t46u"]
    emulated = [
        EmulatedPhone(
            f"http://127.0.0.1:{port}/{token}/",
            mac,
            family,
            model,
            answer_notify=answer_notify,
            poll_seconds=poll,
        )
        for mac, token, _ in devices
    ]
    try:
        await asyncio.gather(*(p.start() for p in emulated))
        registered = sum(p.stats.registered for p in emulated)
        started = time.perf_counter()
        ids = []
        async with sessions() as session, session.begin():
            for mac, _, line_id in devices:
                ids.append((await associations.associate(session, line_id, mac)).id)
        deadline = started + 330
        while time.perf_counter() < deadline:
            async with sessions() as session:
                views = [
                    await associations.association_view(
                        session, await associations.get_association(session, i)
                    )
                    for i in ids
                ]
            if all(v["status"] == "applied" for v in views):
                break
            await asyncio.sleep(0.5)
        times = [float(v["seconds_to_apply"]) for v in views if v["seconds_to_apply"] is not None]
        return {
            "round": name,
            "phones": phones,
            "answer_notify": answer_notify,
            "poll_seconds": poll,
            "registered_first_lines": registered,
            "applied": len(times),
            "within_5_min": sum(1 for t in times if t <= 300),
            "median_s": round(median(times), 3) if times else None,
            "p99_s": round(p99(times), 3) if times else None,
            "max_s": round(max(times), 3) if times else None,
        }
    finally:
        await asyncio.gather(*(p.stop() for p in emulated))
        await runner.cleanup()
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=100)
    parser.add_argument("--poll", type=int, default=60, help="re-check interval, 60 to 300 s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with Kamailio(folder / "kamailio") as kamailio:
            rounds = [
                await run_round(folder, kamailio, args.phones, args.poll, True, "notify"),
                await run_round(folder, kamailio, args.phones, args.poll, False, "silent"),
            ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rounds, indent=2) + "\n")
    for result in rounds:
        print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
