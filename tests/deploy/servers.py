"""Real `provisioning serve` processes and a real nginx in front of them, as an operator runs
them: settings in the environment, the shipped nginx configuration."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from provisioning.security.lab import create_ca, create_server
from provisioning.settings import PROJECT_ROOT
from tests.peers.require import free_port

UPSTREAM_LINE = "server 127.0.0.1:8080;"


class Instance:
    """One `provisioning serve` subprocess with its own port and log file."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.folder = folder
        self.port = free_port("tcp")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
            **env,
            "PROVISIONING_PORT": str(self.port),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / f"{name}.log"
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "provisioning", "serve"],
                cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def ready(self, limit: float = 30) -> None:
        """Until /readyz answers 200 (the schema is current and the database answers)."""
        deadline = time.monotonic() + limit
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited: {self.log()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with client.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready: {self.log()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON log lines (LOG_FORMAT=json); anything else (start-up banner) is skipped."""
        entries = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries


@contextlib.contextmanager
def instances(*servers: Instance) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


def nginx_config(folder: Path, upstreams: list[int], http_port: int, https_port: int) -> Path:
    """deploy/nginx/provisioning.conf as an operator installs it, with this test's ports and
    files; its upstream line replaced by one `server` per instance (what compose does)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = create_ca(folder / "ca")
    server = create_server(folder / "ca", folder / "server", ["127.0.0.1", "localhost"])
    site = (PROJECT_ROOT / "deploy" / "nginx" / "provisioning.conf").read_text()
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        UPSTREAM_LINE: " ".join(f"server 127.0.0.1:{port};" for port in upstreams),
        "/etc/provisioning/tls/server.pem": str(server.certificate),
        "/etc/provisioning/tls/server.key": str(server.key),
        "/etc/provisioning/tls/vendor-cas.pem": str(ca.certificate),
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx/provisioning.conf no longer has {old!r}"
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    config = folder / "nginx.conf"
    config.write_text(
        f"daemon off;\nmaster_process off;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events {}\n"
        f"http {{\n  access_log {folder}/access.log;\n  client_body_temp_path {folder}/body;\n"
        f"  proxy_temp_path {folder}/proxy;\n  fastcgi_temp_path {folder}/fastcgi;\n"
        f"  uwsgi_temp_path {folder}/uwsgi;\n  scgi_temp_path {folder}/scgi;\n"
        f"  include {folder}/site.conf;\n}}\n"
    )
    return config


@contextlib.asynccontextmanager
async def nginx_in_front(nginx: str, folder: Path, upstreams: list[int]) -> AsyncIterator[str]:
    """A running nginx with the shipped configuration; yields its plain-HTTP base URL."""
    http_port = free_port("tcp")
    config = nginx_config(folder, upstreams, http_port, free_port("tcp"))
    process = await asyncio.create_subprocess_exec(
        nginx, "-c", str(config), "-p", str(folder), stderr=asyncio.subprocess.PIPE
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(100):
                if process.returncode is not None:
                    assert process.stderr is not None
                    raise AssertionError((await process.stderr.read()).decode())
                try:
                    async with client.get(f"{base}/metrics") as resp:
                        assert resp.status == 404  # probes and metrics stay internal
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.05)
        yield base
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGQUIT)
        await asyncio.wait_for(process.wait(), timeout=10)


def metric(body: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total
