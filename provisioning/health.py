"""Probes for load balancers and orchestrators.

- `/healthz` (liveness): the process answers HTTP. No database: a database outage must not get
  every instance restarted.
- `/readyz` (readiness): the database answers and its schema is this code's newest migration,
  and the instance is not shutting down; otherwise 503, so the balancer sends phones elsewhere.
  A database migrated *past* this code (a newer instance ran `provisioning db upgrade`; the
  migrations are additive) still counts as ready, so a rolling upgrade never empties the pool.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from provisioning.db.errors import DB_ERRORS
from provisioning.db.migrate import alembic_config
from provisioning.state import SERVICES

log = logging.getLogger(__name__)

TIMEOUT = 2.0
VERSION_TABLE = "alembic_version"


@dataclass
class Readiness:
    draining: bool = False
    # The code's migration scripts, loaded on the first probe (they never change in a process).
    scripts: ScriptDirectory | None = field(default=None, repr=False)

    def script_directory(self) -> ScriptDirectory:
        if self.scripts is None:
            self.scripts = ScriptDirectory.from_config(alembic_config())
        return self.scripts


READINESS: web.AppKey[Readiness] = web.AppKey("readiness", Readiness)


def schema_state(connection: Connection, scripts: ScriptDirectory) -> str:
    """`current`, `behind` (run `provisioning db upgrade`), `ahead` (a newer instance migrated:
    fine) or `empty`."""
    # Read directly: MigrationContext logs a line at INFO each time, and probes come often.
    if not inspect(connection).has_table(VERSION_TABLE):
        return "empty"
    current = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    heads = set(scripts.get_heads())
    if current == heads:
        return "current"
    if not current:
        return "empty"
    for revision in current:
        try:
            if scripts.get_revision(revision) is None:
                return "ahead"
        except CommandError:
            return "ahead"  # a revision this code does not know: newer than it
    return "behind"


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    readiness = request.app[READINESS]
    if readiness.draining:
        return web.json_response({"status": "draining"}, status=503)
    engine = request.app[SERVICES].engine
    scripts = readiness.script_directory()
    try:
        async with asyncio.timeout(TIMEOUT), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            schema = await conn.run_sync(schema_state, scripts)
    except DB_ERRORS as exc:
        log.warning("readyz: database not reachable (%s)", type(exc).__name__)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    ready = schema in ("current", "ahead")
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "database": "ok", "schema": schema},
        status=200 if ready else 503,
    )


async def _draining(app: web.Application) -> None:
    app[READINESS].draining = True


def add_routes(app: web.Application) -> None:
    """Add before the phone endpoint's catch-all route."""
    app[READINESS] = Readiness()
    app.on_shutdown.append(_draining)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
