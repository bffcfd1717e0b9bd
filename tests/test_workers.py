"""`provisioning serve --workers 2` as an operator runs it: two processes share the port, a
worker killed is started again, and SIGTERM stops everything with every sighting written (the
batches are flushed at clean shutdown)."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from provisioning.db.engine import make_engine, make_session_factory
from provisioning.db.models import Device, Sighting
from provisioning.metrics import SYNC_SECONDS
from tests.peers.require import free_port


def _children(pid: int) -> set[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return {int(p) for p in out.split()}


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def _fetch(url: str, agent: str) -> int:
    # A new connection each time, so the kernel spreads them over both workers.
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", parts.path, headers={"User-Agent": agent})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


async def _sightings(url: str, mac: str) -> tuple[bool, int]:
    engine = make_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            device = await session.scalar(select(Device).where(Device.mac == mac))
            assert device is not None
            count = await session.scalar(
                select(func.count()).select_from(Sighting).where(Sighting.device_id == device.id)
            )
            return device.last_seen_at is not None, int(count or 0)
    finally:
        await engine.dispose()


def test_workers_share_the_port_restart_and_flush_on_sigterm(tmp_path: Path) -> None:
    if not Path("/proc").exists():
        pytest.skip("needs Linux (/proc, SO_REUSEPORT)")
    port = free_port("tcp")
    url = f"sqlite+aiosqlite:///{tmp_path / 'workers.sqlite3'}"
    env = {
        # The test's own PROVISIONING_TEST_* variables are not settings the server knows.
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
        "PROVISIONING_DATABASE_URL": url,
        "PROVISIONING_SECRET_KEY_FILE": str(tmp_path / "key"),
        "PROVISIONING_PUSH_ENABLED": "false",
        # Long enough that nothing is written before the SIGTERM: the shutdown flush does it.
        "PROVISIONING_SIGHTING_FLUSH_MS": "60000",
        # A history row for every fetch, so the rows count the fetches written.
        "PROVISIONING_SIGHTING_HISTORY_SECONDS": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "serve", "--demo", "--port", str(port),
         "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines = []
        while not any(line.startswith("Try: curl") for line in lines):
            line = server.stdout.readline()
            assert line, "serve ended before printing the demo URLs"
            lines.append(line.strip())
        agent, file_url = re.fullmatch(r"Try: curl -A '(.+)' (\S+)", lines[-1]).groups()  # type: ignore[union-attr]
        _wait_port(port)
        deadline = time.monotonic() + 10
        while len(_children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(server.pid)
        assert len(workers) == 2

        assert [_fetch(file_url, agent) for _ in range(20)] == [200] * 20
        # Counts reach the shared files every second (metrics.SYNC_SECONDS): a worker killed
        # outright loses at most its last second of them.
        time.sleep(SYNC_SECONDS + 0.5)
        # One worker killed: the parent starts another; the port is served meanwhile.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        # (A connection the kernel had queued on the victim's socket is reset: phones retry.)
        deadline = time.monotonic() + 5
        while victim in _children(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert victim not in _children(server.pid)
        assert _fetch(file_url, agent) == 200  # the other worker, before the restart
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = _children(server.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        assert len(_children(server.pid)) == 2 and victim not in _children(server.pid)
        assert [_fetch(file_url, agent) for _ in range(10)] == [200] * 10
        # /metrics sums both workers' counters (and keeps the killed one's): 31 fetches, once
        # the other worker's counts reached the files (every second; later on a loaded machine).
        parts = urlsplit(file_url)
        deadline = time.monotonic() + 15
        while True:
            time.sleep(SYNC_SECONDS + 0.5)
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
            connection.request("GET", "/metrics")
            scraped = connection.getresponse().read().decode()
            connection.close()
            fetched = sum(
                float(value)
                for value in re.findall(
                    r'^provisioning_phone_fetches_total\{family="yealink",status="200"\} (\S+)$',
                    scraped,
                    re.M,
                )
            )
            if fetched >= 31 or time.monotonic() > deadline:
                break
        assert fetched == 31, scraped[:2000]

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert not _children(server.pid)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for pipe in (server.stdout, server.stderr):
            if pipe is not None:
                pipe.close()

    mac = re.search(r"/([0-9a-f]{12})\.cfg$", file_url)
    assert mac is not None
    seen, count = asyncio.run(_sightings(url, mac[1]))
    assert seen
    # 20 + 1 + 10 fetches; only what the killed worker served before the kill (at most 20) may be
    # lost: it had not reached its first flush.
    assert 11 <= count <= 31


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    port = free_port("tcp")
    env = {
        # The test's own PROVISIONING_TEST_* variables are not settings the server knows.
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
        "PROVISIONING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'orphans.sqlite3'}",
        "PROVISIONING_SECRET_KEY_FILE": str(tmp_path / "key"),
        "PROVISIONING_PUSH_ENABLED": "false",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        _wait_port(port)
        deadline = time.monotonic() + 10
        while len(workers := _children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
    finally:
        server.kill()  # SIGKILL: the parent cannot pass anything on
        server.wait()
    deadline = time.monotonic() + 15
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive.discard(pid)
        time.sleep(0.1)
    for pid in alive:  # leave nothing behind, then fail
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers kept running without their parent"
