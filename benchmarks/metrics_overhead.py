"""What observability costs on the phone fetch path: the request-id middleware and the metrics
middleware (a route-set lookup, two clock reads, a counter and a histogram update).

    .venv/bin/python benchmarks/metrics_overhead.py [--calls 200000] [--rounds 5]

Each middleware is called directly around a handler that returns a prepared response at once,
on a request resolved by the real application's router (so the route lookup is the real one),
and compared with calling the handler alone, in alternating rounds; the median of the rounds
is printed, in microseconds per request. Also the cost of the same observation in
prometheus-client's multiprocess mode (`serve --workers N`), where each update writes to a
memory-mapped file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402

from provisioning import logs, metrics  # noqa: E402
from provisioning.app import create_app  # noqa: E402
from provisioning.crypto import generate_key  # noqa: E402
from provisioning.phones.files import FAMILY_KEY  # noqa: E402
from provisioning.settings import Settings  # noqa: E402

RESPONSE = web.Response(status=200, body=b"x")


async def handler(request: web.Request) -> web.StreamResponse:
    request[FAMILY_KEY] = "yealink"  # what fetch_file does once the file name matches
    return RESPONSE


async def per_call(call: object, request: web.Request, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await call(request)  # type: ignore[operator]
    return (time.perf_counter() - started) / calls * 1e6


async def measure(calls: int, rounds: int) -> dict[str, float]:
    settings = Settings(secret_key=(generate_key(),))
    app = create_app(settings)
    state = app[metrics.METRICS]
    phone_routes = frozenset(
        r for r in app.router.routes() if getattr(r.handler, "__name__", "") == "fetch_file"
    )
    request = make_mocked_request("GET", "/HBS2OKywNbe1g5VwWwLZslut8UqSRN-f/0015654aa937.cfg")
    match = await app.router.resolve(request)
    request._match_info = match  # the real route, as the router gives it
    assert match.route in phone_routes
    counted = metrics.phone_middleware(state.phone, phone_routes)
    request_ids = logs.request_id_middleware(settings.trusted_proxies)

    async def with_metrics(req: web.Request) -> web.StreamResponse:
        return await counted(req, handler)

    async def with_request_id(req: web.Request) -> web.StreamResponse:
        return await request_ids(req, handler)

    async def with_both(req: web.Request) -> web.StreamResponse:
        return await request_ids(req, lambda r: counted(r, handler))

    variants = {
        "handler alone": handler,
        "metrics middleware": with_metrics,
        "request-id middleware": with_request_id,
        "both": with_both,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            samples[name].append(await per_call(call, request, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


MULTIPROCESS = """
import sys, time
from provisioning import metrics
metrics.prepare_multiprocess(sys.argv[1])
phone = metrics.SharedFetchMetrics()
calls = int(sys.argv[2])
started = time.perf_counter()
for n in range(calls):
    phone.observe("yealink", 200, 0.002)
print((time.perf_counter() - started) / calls * 1e6)
"""


def multiprocess_observe(calls: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run = subprocess.run(
            [sys.executable, "-c", MULTIPROCESS, folder, str(calls)],
            capture_output=True, text=True, check=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    return float(run.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(measure(args.calls, args.rounds))
    base = result["handler alone"]
    report = {name: round(us, 3) for name, us in result.items()}
    overhead = {name: round(us - base, 3) for name, us in result.items() if name != "handler alone"}
    print(json.dumps({"microseconds_per_request": report, "overhead_us": overhead}, indent=2))
    us = multiprocess_observe(args.calls // 4)
    print(json.dumps({"multiprocess_observe_us": round(us, 3)}))


if __name__ == "__main__":
    main()
