"""Schemathesis against the live server: generated requests for every operation of the OpenAPI
document must never get a 5xx, and every answer must match the document (status, content type,
schema, headers)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from provisioning import tokens
from provisioning.db.engine import SessionFactory
from provisioning.settings import Settings
from tests.conftest import World
from tests.peers.require import free_port

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def _wait_for_port(port: int, server: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def _fuzz(
    settings: Settings, operator: str, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Start `provisioning serve` on the test database and run schemathesis against it."""
    port = free_port("tcp")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")},
        "PROVISIONING_DATABASE_URL": settings.database_url,
        "PROVISIONING_SECRET_KEY": settings.secret_key[0],
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for_port(port, server)
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"), "run",
                f"http://127.0.0.1:{port}/api/v1/openapi.json",
                "--url", f"http://127.0.0.1:{port}/api/v1",
                "-H", f"Authorization: Bearer {operator}",
                "--checks", CHECKS,
                "--max-examples", "15",
                "--seed", "20261126",
                "--request-timeout", "10",
            ],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    return run, (tmp_path / "server.log").read_text(errors="replace")


async def test_schemathesis_finds_no_5xx_and_no_schema_violation(
    settings: Settings, sessions: SessionFactory, world: World, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        _, operator = await tokens.create_token(session, "operator", name="fuzz")
    run, server_log = await asyncio.to_thread(_fuzz, settings, operator, tmp_path)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "Server error" not in report
    assert "Traceback" not in server_log, server_log[-3000:]
    assert operator not in server_log
