"""Phone lane, in process: CPU time per phone fetch through the lane and the whole fetch path,
without sockets, wrk or a second process in the way.

    python benchmarks/phone_lane.py [--devices 10000] [--requests 20000] [--keep DIR]

Seeds N devices as the boot-storm benchmark does (SQLite, in a temporary folder or --keep),
starts the app behind the listener `serve` uses, and feeds keep-alive GETs of random known
devices' files (token, vendor User-Agent) to one lane connection whose transport only counts
what is written. After a warm-up (every file rendered once, then --requests fetches, which
keep the answers of most heads), five rounds of --requests each; prints the CPU time per
request of each round and the best: mostly answers given again by head (phones.answers), or,
with --whole-path, each fetch identified, authorised and looked up. The boot-storm benchmark
measures
the server from the outside; this one shows what a change to the path costs, a few µs apart,
on a machine too noisy for requests/s to tell.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop
from boot_storm import PUBLIC_URL, seed
from sqlalchemy import text

from provisioning import logs
from provisioning.app import create_app
from provisioning.crypto import generate_key
from provisioning.db.engine import make_engine
from provisioning.db.migrate import upgrade
from provisioning.listen import listening, settle_heap
from provisioning.phones import lane as lane_module
from provisioning.phones.prerender import Prerenderer
from provisioning.settings import Settings
from provisioning.state import SERVICES


class CountingTransport:
    """Takes what the lane writes; says when `want` answers were written."""

    def __init__(self) -> None:
        self.written = 0
        self.want = 0
        self.done = asyncio.Event()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += 1
        if self.written >= self.want:
            self.done.set()

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def measure_cold(
    settings: Settings, targets: list[dict[str, str]], render: bool, profile: Path | None = None
) -> list[float]:
    """Each round a server just started: every device asks once, in a shuffled order (a power
    cut). CPU per fetch, the sightings written behind included (process time, all threads).
    Every device's files rendered ahead and kept (render.stored) by a server that ran before,
    unless `render`: then none is kept and each fetch renders."""
    rounds = []
    rng = random.Random(20261203)
    app = create_app(replace(settings, prerender_rate=0))
    async with listening(app, settings, None, logs.AccessLogger):
        services = app[SERVICES]
        if render:
            async with services.sessions() as session, session.begin():
                await session.execute(text("DELETE FROM rendered_files"))
        else:
            started = time.perf_counter()
            prerenderer = Prerenderer(services)
            prerenderer.rate = 1_000_000
            await prerenderer.pass_once()
            print(
                f"rendered ahead: {prerenderer.rendered} devices in "
                f"{time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
    settings = replace(settings, prerender_rate=0)  # the rounds measure fetches alone
    for _ in range(3):
        order = targets[:]
        rng.shuffle(order)
        app = create_app(settings)
        async with listening(app, settings, None, logs.AccessLogger):
            lane = lane_module.Lane(app, lambda: sys.exit("handed over: not a phone request"))  # type: ignore[arg-type,return-value]
            connection = lane.connection()
            transport = CountingTransport()
            connection.connection_made(transport)  # type: ignore[arg-type]
            settle_heap()  # as `serve` does once listening
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            started = time.process_time()
            for target in order:
                transport.want = transport.written + 1
                transport.done.clear()
                connection.data_received(
                    f"GET {target['path']} HTTP/1.1\r\nHost: phones\r\n"
                    f"User-Agent: {target['agent']}\r\n\r\n".encode()
                )
                if transport.written < transport.want:
                    await transport.done.wait()
            await app[SERVICES].sightings.flush()
            rounds.append((time.process_time() - started) / len(order) * 1e6)
            if profiler is not None and profile is not None:
                profiler.disable()
                profiler.dump_stats(profile)  # the last round's
    return rounds


async def measure(
    settings: Settings, targets: list[dict[str, str]], count: int, whole_path: bool
) -> list[float]:
    app = create_app(settings)
    async with listening(app, settings, None, logs.AccessLogger):
        if whole_path:
            app[SERVICES].answers.size = 0  # nothing kept: every fetch goes the whole way
        lane = lane_module.Lane(app, lambda: sys.exit("handed over: not a phone request"))  # type: ignore[arg-type,return-value]
        requests = [
            f"GET {t['path']} HTTP/1.1\r\nHost: phones\r\nUser-Agent: {t['agent']}\r\n\r\n".encode()
            for t in targets
        ]
        rng = random.Random(20261127)
        connection = lane.connection()
        transport = CountingTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        settle_heap()  # as `serve` does once listening

        async def one(request: bytes) -> None:
            transport.want = transport.written + 1
            transport.done.clear()
            connection.data_received(request)
            if transport.written < transport.want:  # it waits (a render, a write): until answered
                await transport.done.wait()

        async def run(n: int) -> None:
            for _ in range(n):
                await one(requests[rng.randrange(len(requests))])

        for target in targets:  # warm: every file rendered and cached once
            await one(
                f"GET {target['path']} HTTP/1.1\r\nUser-Agent: {target['agent']}\r\n\r\n".encode()
            )
        await run(count)
        await asyncio.sleep(1)  # the sightings of the warm-up written
        rounds = []
        for _ in range(5):
            started = time.process_time()
            await run(count)
            rounds.append((time.process_time() - started) / count * 1e6)
        return rounds


async def _up_to_date(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="folder keeping the seeded database")
    parser.add_argument(
        "--whole-path",
        action="store_true",
        help="keep no answers (phones.answers): each fetch identified, authorised, looked up",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="a server just started: each device fetched once (nothing rendered, kept or seen)",
    )
    parser.add_argument(
        "--render", action="store_true", help="with --cold: nothing rendered ahead, each renders"
    )
    parser.add_argument("--profile", type=Path, help="with --cold: cProfile stats of a round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.keep or Path(tmp)
        store.mkdir(parents=True, exist_ok=True)
        url = f"sqlite+aiosqlite:///{store.resolve() / 'lane.sqlite3'}"
        kept = store / "lane-targets.json"
        if args.keep and kept.exists():
            key = (store / "lane-key").read_text()
            targets = json.loads(kept.read_text())
            asyncio.run(_up_to_date(url))  # kept by an older version of the server
        else:
            key = generate_key()
            seeding = Settings(
                database_url=url, secret_key=(key,), push_enabled=False, public_url=PUBLIC_URL
            )
            targets = asyncio.run(seed(seeding, args.devices, args.devices, store / "static"))
            if args.keep:
                (store / "lane-key").write_text(key)
                kept.write_text(json.dumps(targets))
        settings = Settings(
            database_url=url, secret_key=(key,), push_enabled=False, public_url=PUBLIC_URL
        )
        settings = replace(settings, access_log=False, host="127.0.0.1", port=0)
        uvloop.install()
        if args.cold:
            rounds = asyncio.run(measure_cold(settings, targets, args.render, args.profile))
        else:
            rounds = asyncio.run(measure(settings, targets, args.requests, args.whole_path))
    if args.cold:
        ahead = "each rendered at its fetch" if args.render else "files rendered ahead"
        what, count = f"cold: each device once, just started, {ahead}", f"{len(targets)} first"
    elif args.whole_path:
        what, count = "whole path", f"{args.requests} keep-alive"
    else:
        what, count = "answers kept by head", f"{args.requests} keep-alive"
    print(
        f"{args.devices} devices, {count} fetches x {len(rounds)} rounds, {what}: "
        f"best {min(rounds):.1f} µs CPU per fetch (rounds: {', '.join(f'{r:.1f}' for r in rounds)})"
    )


if __name__ == "__main__":
    main()
