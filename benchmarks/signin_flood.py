"""API write latency during a flood of Manager sign-ins, against the same writes alone.

    python benchmarks/signin_flood.py [--writes 150] [--flooders 16] [--database-url URL]

Starts `provisioning serve` with its defaults on a seeded database (SQLite in a temporary folder
unless a PostgreSQL URL is given), then measures an operator's API writes (a line put on a phone
and taken off again) first alone, then while 16 clients, each from its own address, post wrong
passwords to the sign-in form as fast as they are answered. The reference is the same writes
alone, in the same run. The bar (issue 18): p50 under the flood within 3x of p50 alone. Writes
the figures to benchmarks/results/signin_flood.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import median, quantiles

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioning.devices.catalog import load_catalog
from provisioning.settings import PROJECT_ROOT, Settings
from tests.conftest import TEST_KEY
from tests.phone_server import WEB_LOGIN, Fleet, Served, client_from, seeded, serving

RESULTS = Path(__file__).parent / "results" / "signin_flood.json"


async def writes(served: Served, fleet: Fleet, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {fleet.operator}"}
    mac, line = fleet.plain[-1][0], fleet.free_lines[0]
    url = f"{served.base}/api/v1/devices/{mac}/lines"
    took = []
    async with client_from("127.40.0.1") as client:
        for n in range(count):
            started = time.perf_counter()
            if n % 2 == 0:
                resp = await client.post(url, json={"line_id": line}, headers=headers)
            else:
                resp = await client.delete(f"{url}/{line}", headers=headers)
            await resp.read()
            assert resp.status < 300, (resp.status, await resp.text())
            took.append((time.perf_counter() - started) * 1000)
    return took


async def flood(served: Served, number: int, stop: asyncio.Event, answers: Counter[int]) -> None:
    async with client_from(f"127.41.{number}.1") as client:
        async with client.get(f"{served.base}/manager/login") as resp:
            token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert token is not None
        form = {"csrf": token[1], "login": WEB_LOGIN, "password": "not the password"}
        while not stop.is_set():
            async with client.post(f"{served.base}/manager/login", data=form) as resp:
                await resp.read()
                answers[resp.status] += 1


def summary(took: list[float]) -> dict[str, float]:
    cuts = quantiles(took, n=100, method="inclusive")
    return {"p50_ms": round(median(took), 2), "p90_ms": round(cuts[89], 2), "n": len(took)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=150)
    parser.add_argument("--flooders", type=int, default=16)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    catalog = load_catalog(PROJECT_ROOT / "templates" / "devices")
    settings = Settings(secret_key=(TEST_KEY,))
    with tempfile.TemporaryDirectory() as folder:
        base = args.database_url or "sqlite+aiosqlite:///unused"
        async with seeded(base, Path(folder), "flood", catalog, settings, size=4) as (url, fleet):
            with serving(Served(url, Path(folder))) as served:
                await served.ready()
                await writes(served, fleet, 20)  # warm-up
                alone = await writes(served, fleet, args.writes)
                stop, answers = asyncio.Event(), Counter[int]()
                flooders = [
                    asyncio.create_task(flood(served, n, stop, answers))
                    for n in range(args.flooders)
                ]
                await asyncio.sleep(1)
                started = time.perf_counter()
                flooded = await writes(served, fleet, args.writes)
                seconds = time.perf_counter() - started
                stop.set()
                await asyncio.gather(*flooders)
    result = {
        "database": "postgresql" if args.database_url else "sqlite",
        "writes_alone": summary(alone),
        "writes_during_flood": summary(flooded),
        "ratio_p50": round(median(flooded) / median(alone), 2),
        "sign_in_answers": dict(answers),
        "sign_ins_per_second": round(sum(answers.values()) / max(seconds, 1e-9), 1),
        "flooders": args.flooders,
    }
    print(json.dumps(result, indent=2))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
