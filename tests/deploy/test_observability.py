"""/metrics, /healthz, /readyz, request ids and log lines, through the real app factory."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import netaddr
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from provisioning.app import create_app
from provisioning.db.engine import SessionFactory, make_engine
from provisioning.db.migrate import downgrade, upgrade
from provisioning.db.models import Device, Push, SourceBan, utcnow
from provisioning.logs import JsonFormatter, RedactingFormatter, redact, request_id
from provisioning.push.changes import devices_changed
from provisioning.settings import Settings, SettingsError
from tests.conftest import YEALINK_UA, World


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: TestClient) -> dict[Any, float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return samples(await resp.text())


async def test_metrics_count_fetches_by_family_and_status_and_read_the_database(
    client: TestClient, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        await devices_changed(session, Device.mac == world.yealink_mac, "template")
        session.add(SourceBan(source="192.0.2.0/24", until=utcnow() + timedelta(hours=1), misses=9))
        session.add(SourceBan(source="192.0.2.7", until=utcnow() + timedelta(hours=1), misses=9))
        session.add(SourceBan(source="192.0.2.8", until=utcnow() - timedelta(hours=1), misses=9))
    before = await scrape(client)
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    for _ in range(3):
        assert (await client.get(path, headers={"User-Agent": YEALINK_UA})).status == 200
    assert (await client.get(f"/{world.yealink_token}/001565ffffff.cfg")).status == 404
    assert (await client.get("/wp-login.php")).status == 404
    # The API and the probes are not phone fetches.
    assert (await client.get("/api/v1/catalog/models")).status in (200, 401)
    assert (await client.get("/healthz")).status == 200
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    fetches = "provisioning_phone_fetches_total"
    assert delta(fetches, family="yealink", status="200") == 3
    assert delta(fetches, family="yealink", status="404") == 1
    assert delta(fetches, family="none", status="404") == 1
    assert delta("provisioning_phone_fetch_seconds_count") == 5
    assert sum(v for (name, _), v in after.items() if name == fetches) == 5
    # Three fetches of one file: rendered once, then cached.
    assert delta("provisioning_render_cache_hits_total") == 2
    assert value(after, "provisioning_render_cache_entries") >= 1
    assert value(after, "provisioning_database_up") == 1
    assert value(after, "provisioning_pushes", state="pending") >= 1
    assert value(after, "provisioning_pushes", state="overdue") == 0
    assert value(after, "provisioning_pushes_overdue") == 0
    assert value(after, "provisioning_orders_late") == 0
    assert value(after, "provisioning_bans_active", kind="network") == 1
    assert value(after, "provisioning_bans_active", kind="address") == 1


async def test_database_gauges_show_overdue_pushes_and_are_cached_between_scrapes(
    client: TestClient, world: World, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        await devices_changed(session, Device.mac == world.yealink_mac, "template")
        await session.execute(
            Push.__table__.update().values(deadline=utcnow() - timedelta(seconds=1))
        )
    found = await scrape(client)
    assert value(found, "provisioning_pushes_overdue") >= 1
    async with sessions() as session, session.begin():
        await session.execute(Push.__table__.delete())
    # Within the TTL the numbers are the ones computed a moment ago: no query per scrape.
    assert value(await scrape(client), "provisioning_pushes_overdue") >= 1


async def test_metrics_can_be_turned_off(
    aiohttp_client: Any, settings: Settings, world: World
) -> None:
    client = await aiohttp_client(create_app(replace(settings, metrics=False)))
    resp = await client.get("/metrics")
    assert (resp.status, await resp.read()) == (404, b"")
    path = f"/{world.yealink_token}/{world.yealink_mac}.cfg"
    assert (await client.get(path)).status == 200


async def test_healthz_and_readyz(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    with caplog.at_level(logging.INFO):
        resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "database": "ok", "schema": "current"}
    # Probed every few seconds: no log line of its own.
    assert not [r for r in caplog.records if r.name.startswith("alembic")]


async def _readyz_on(aiohttp_client: Any, settings: Settings, url: str) -> tuple[int, Any]:
    client = await aiohttp_client(create_app(replace(settings, database_url=url)))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert (await client.get("/healthz")).status == 200  # liveness never asks the database
    return resp.status, body


async def test_readyz_wants_the_schema_at_this_codes_head_or_newer(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ready.sqlite3'}"
    engine = make_engine(url)
    try:
        status, body = await _readyz_on(aiohttp_client, settings, url)
        assert (status, body["schema"]) == (503, "empty")
        await upgrade(engine, "0006")
        status, body = await _readyz_on(aiohttp_client, settings, url)
        assert (status, body["schema"]) == (503, "behind")
        await upgrade(engine)
        status, body = await _readyz_on(aiohttp_client, settings, url)
        assert (status, body["schema"]) == (200, "current")
        # A newer instance migrated further (additive migrations): this one still serves.
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        status, body = await _readyz_on(aiohttp_client, settings, url)
        assert (status, body["schema"]) == (200, "ahead")
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))
        await downgrade(engine, "0006")
    finally:
        await engine.dispose()


async def test_readyz_is_503_when_the_database_is_unreachable(
    aiohttp_client: Any, settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'folder' / 'db.sqlite3'}"
    status, body = await _readyz_on(aiohttp_client, settings, url)
    assert (status, body) == (503, {"status": "unavailable", "database": "unreachable"})
    client = await aiohttp_client(create_app(replace(settings, database_url=url)))
    found = await scrape(client)
    assert value(found, "provisioning_database_up") == 0


async def test_request_ids_come_from_trusted_proxies_only(
    aiohttp_client: Any, settings: Settings, world: World
) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/healthz", headers={"X-Request-Id": "from-a-stranger"})
    made = resp.headers["X-Request-Id"]
    assert made != "from-a-stranger" and len(made) == 16
    other = (await client.get("/healthz")).headers["X-Request-Id"]
    assert other != made
    proxied = replace(settings, trusted_proxies=netaddr.IPSet(["127.0.0.1/32"]))
    client = await aiohttp_client(create_app(proxied))
    resp = await client.get(
        "/nothing", headers={"X-Request-Id": "0123456789abcdef0123456789abcdef"}
    )
    assert (resp.status, resp.headers["X-Request-Id"]) == (404, "0123456789abcdef0123456789abcdef")
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert resp.headers["X-Request-Id"] != "bad id\twith spaces"


def test_secrets_are_redacted_from_log_lines() -> None:
    token = "HBS2OKywNbe1g5VwWwLZslut8UqSRN-f"
    lines = {
        f'127.0.0.1 "GET /{token}/0015654aa937.cfg HTTP/1.1" 200': f"/{token}/",
        f"fetch /x?token={token}&a=1": token,
        "Authorization: Bearer abcdefgh12345678": "abcdefgh12345678",
        "headers={'Authorization': 'Digest username=\"x\", response=\"f00f\"'}": "f00f",
        "line password=s3cret-pass changed": "s3cret-pass",
        'config {"passwd": "hunter22"}': "hunter22",
    }
    for line, secret in lines.items():
        assert secret not in redact(line), line
    kept = "phone-ban host=127.0.1.2 source=127.0.1.2 seconds=600 misses=20"
    assert redact(kept) == kept
    assert redact("phone-miss host=10.0.0.1 reason=bad-token") == (
        "phone-miss host=10.0.0.1 reason=bad-token"
    )


def test_json_log_lines_carry_the_request_id_and_end_with_the_message() -> None:
    record = logging.LogRecord(
        "provisioning.security", logging.INFO, __file__, 1, "phone-ban host=%s", ("1.2.3.4",), None
    )
    token = request_id.set("rid-1")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id.reset(token)
    entry = json.loads(line)
    assert entry["request_id"] == "rid-1" and entry["level"] == "INFO"
    assert list(entry)[-1] == "message" and entry["message"] == "phone-ban host=1.2.3.4"
    assert RedactingFormatter("%(message)s").format(record) == "phone-ban host=1.2.3.4"


def test_log_format_setting_is_validated() -> None:
    assert Settings.from_mapping({"log_format": "json", "metrics": "off"}).log_format == "json"
    with pytest.raises(SettingsError, match="PROVISIONING_LOG_FORMAT"):
        Settings.from_mapping({"log_format": "xml"})
    with pytest.raises(SettingsError, match="PROVISIONING_METRICS"):
        Settings.from_mapping({"metrics": "maybe"})


MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from provisioning import metrics
    metrics.prepare_multiprocess(sys.argv[1])
    pids = []
    from provisioning.render.cache import RenderCache
    from provisioning.phones.answers import Answers
    for worker in range(2):
        pid = os.fork()
        if pid == 0:
            phone = metrics.SharedFetchMetrics()
            for _ in range(worker + 1):  # synced after each (the worker's loop): deltas added
                phone.observe("yealink", 200, 0.003)
                phone.sync()
            phone.sync()  # nothing new: nothing added
            phone.observe("yealink", 404, 0.3)  # never synced: a worker killed outright
            cache = RenderCache(10)
            cache.hits, cache.misses = 10 * (worker + 1), 1
            answers = Answers(1)
            answers.given, answers.stale = 5 * (worker + 1), worker
            metrics.CacheSync().sync(cache, answers)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    state = metrics.Metrics.create(lambda: None)
    sys.stdout.write(state.scrape().decode())
    sys.stdout.write("# --- after the workers are reported dead\\n")
    for pid in pids:
        metrics.process_exited(pid)
    sys.stdout.write(state.scrape().decode())
    """
)


def test_several_worker_processes_are_summed_in_multiprocess_mode(tmp_path: Path) -> None:
    """What `serve --workers N` relies on: the parent prepares the folder, forks; a scrape in
    any process sums every worker's counters."""
    folder = tmp_path / "prometheus"
    run = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT, str(folder)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    alive, dead = run.stdout.split("# --- after the workers are reported dead\n")
    found = samples(alive)
    assert value(found, "provisioning_phone_fetches_total", family="yealink", status="200") == 3
    assert value(found, "provisioning_phone_fetch_seconds_count") == 3
    assert value(found, "provisioning_phone_fetch_seconds_bucket", le="0.0025") == 0
    assert value(found, "provisioning_phone_fetch_seconds_bucket", le="0.005") == 3
    assert abs(value(found, "provisioning_phone_fetch_seconds_sum") - 0.009) < 1e-9
    assert 'status="404"' not in alive
    assert value(found, "provisioning_render_cache_hits_total") == 30
    assert value(found, "provisioning_render_cache_misses_total") == 2
    assert value(found, "provisioning_phone_answers_given_again_total") == 15
    assert value(found, "provisioning_phone_answers_stale_total") == 1
    assert value(found, "provisioning_database_up") == 0
    found = samples(dead)
    # Counters keep the dead workers' totals; the live gauge forgets them.
    assert value(found, "provisioning_render_cache_hits_total") == 30
    assert value(found, "provisioning_render_cache_entries") == 0


async def test_the_phone_path_overhead_of_metrics_stays_small(settings: Settings) -> None:
    """A guard, not the measurement (benchmarks/metrics_overhead.py is): observing a fetch
    costs microseconds."""
    from provisioning.metrics import LocalFetchMetrics

    phone = LocalFetchMetrics()
    rounds = 20_000
    started = time.perf_counter()
    for n in range(rounds):
        phone.observe("yealink", 200 if n % 10 else 404, 0.002)
    per_call = (time.perf_counter() - started) / rounds
    assert per_call < 20e-6
    assert sum(phone.buckets) == rounds and phone.counts[("yealink", 404)] == rounds // 10
    await asyncio.sleep(0)


def test_latency_buckets_count_observations_up_to_their_bound() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from provisioning.metrics import LocalFetchMetrics

    registry = CollectorRegistry()
    fetches = LocalFetchMetrics()
    registry.register(fetches)
    for seconds in (0.0005, 0.001, 0.003, 3.0):
        fetches.observe("yealink", 200, seconds)
    found = samples(generate_latest(registry).decode())
    name = "provisioning_phone_fetch_seconds_bucket"
    assert value(found, name, le="0.001") == 2
    assert value(found, name, le="0.005") == 3
    assert value(found, name, le="2.5") == 3
    assert value(found, name, le="+Inf") == 4
    assert value(found, "provisioning_phone_fetch_seconds_count") == 4
    assert value(found, "provisioning_phone_fetches_total", family="yealink", status="200") == 4
