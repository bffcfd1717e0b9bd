"""The security side of one server instance: its guard, and the housekeeping task that keeps its
copies of the bans and account policies in step with the database (where other instances and the
CLI change them) and drops what expired."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from provisioning.background import every
from provisioning.db.engine import SessionFactory
from provisioning.db.errors import DB_ERRORS
from provisioning.phones.guard import Guard
from provisioning.security import bans, digest, policy

log = logging.getLogger("provisioning.security")
HOUSEKEEPING_EVERY = 30  # syncs between clean-ups of expired bans, counters and nonce uses


async def sync_bans(guard: Guard, read_sessions: SessionFactory) -> None:
    """Re-read the active bans and the account policies."""
    async with read_sessions() as session:
        guard.bans.replace(await bans.active_ban_ends(session))
        guard.policies.replace(await policy.all_policies(session))


async def housekeeping(guard: Guard, sessions: SessionFactory) -> None:
    async with sessions() as session, session.begin():
        await bans.forget_expired(session, guard.rules)
        await digest.forget_expired(session)


async def _maintain(guard: Guard, read_sessions: SessionFactory, sessions: SessionFactory) -> None:
    tick = 0  # the first synchronisation happened before serving

    async def step() -> None:
        nonlocal tick
        tick += 1
        await sync_bans(guard, read_sessions)
        if tick % HOUSEKEEPING_EVERY == 0:
            await housekeeping(guard, sessions)

    # A round that fails leaves the last known bans in force; the next one tries again.
    await every(guard.sync_interval, "security: bans synchronisation", step)


@asynccontextmanager
async def maintained(
    guard: Guard, read_sessions: SessionFactory, sessions: SessionFactory
) -> AsyncIterator[None]:
    try:
        # Before the first request: a policy or ban in the database applies from the start.
        await sync_bans(guard, read_sessions)
        await housekeeping(guard, sessions)
    except DB_ERRORS as exc:
        log.warning("security: bans and policies not loaded: %s", type(exc).__name__)
    task = asyncio.create_task(_maintain(guard, read_sessions, sessions))
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
