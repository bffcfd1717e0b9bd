"""Recording what a fetch tells about a device (the "sighting").

In a boot storm one transaction per fetch would make the database's single writer the limit of
the whole fetch path, so the server keeps sightings in memory and writes them in batches
(`SightingBuffer`): one transaction every `SIGHTING_FLUSH_SECONDS` updates each device seen once
(its latest facts), marks the pushes the fetched revisions satisfy as applied and inserts the
sighting rows. A clean shutdown flushes what is left; a crash loses at most one interval of
last-seen facts, never a configuration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, and_, bindparam, case, insert, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from provisioning.db.engine import SessionFactory
from provisioning.db.models import Device, Push, Sighting

log = logging.getLogger(__name__)
DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


@dataclass(frozen=True)
class SightingFacts:
    device_id: int
    seen_at: datetime
    ip: str
    user_agent: str
    firmware: str | None
    file_name: str
    revision: int


_devices: Table = Device.__table__  # type: ignore[assignment]
_pushes: Table = Push.__table__  # type: ignore[assignment]
# One statement for every device of a batch (executemany); a later sighting never goes back in
# time when another instance wrote a newer one first.
_LAST_SEEN = (
    update(_devices)
    .where(
        _devices.c.id == bindparam("b_device_id"),
        or_(_devices.c.last_seen_at.is_(None), _devices.c.last_seen_at <= bindparam("b_seen_at")),
    )
    .values(
        last_seen_at=bindparam("b_seen_at"),
        last_ip=bindparam("b_ip"),
        last_user_agent=bindparam("b_user_agent"),
        last_firmware=bindparam("b_firmware"),
        last_revision_served=bindparam("b_revision"),
        state=case((_devices.c.state == "assigned", "active"), else_=_devices.c.state),
    )
)
# The proof of delivery: pushes a fetched revision satisfies are applied.
_APPLIED = (
    update(_pushes)
    .where(
        and_(
            _pushes.c.device_id == bindparam("b_device_id"),
            # "pending", "notified" or "overdue" (an IN list cannot be executemany'd).
            _pushes.c.state != "applied",
            _pushes.c.target_revision <= bindparam("b_revision"),
        )
    )
    .values(state="applied", applied_at=bindparam("b_seen_at"))
)


async def record_sightings(session: AsyncSession, batch: Sequence[SightingFacts]) -> None:
    """Write a batch of sightings in the caller's transaction."""
    if not batch:
        return
    latest: dict[int, SightingFacts] = {}
    newest_revision: dict[int, SightingFacts] = {}
    for facts in batch:
        seen = latest.get(facts.device_id)
        if seen is None or facts.seen_at >= seen.seen_at:
            latest[facts.device_id] = facts
        best = newest_revision.get(facts.device_id)
        if best is None or facts.revision > best.revision:
            newest_revision[facts.device_id] = facts
    await session.execute(_LAST_SEEN, [_bound(facts) for facts in latest.values()])
    await session.execute(_APPLIED, [_bound(facts) for facts in newest_revision.values()])
    await session.execute(insert(Sighting), [vars(facts) for facts in batch])


async def record_sighting(session: AsyncSession, facts: SightingFacts) -> None:
    await record_sightings(session, [facts])


def _bound(facts: SightingFacts) -> dict[str, object]:
    return {f"b_{name}": value for name, value in vars(facts).items()}


class SightingBuffer:
    """Sightings waiting for the next batch. `interval` 0 writes each one at once (the caller
    awaits it), which the tests and a single low-traffic instance may prefer."""

    def __init__(self, sessions: SessionFactory, *, interval: float, limit: int) -> None:
        self.sessions = sessions
        self.interval = interval
        self.limit = limit
        self._pending: list[SightingFacts] = []
        self._lock = asyncio.Lock()
        self.written = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def add(self, facts: SightingFacts) -> None:
        if self.interval <= 0:
            await self._write([facts])
            return
        if len(self._pending) >= self.limit:
            # The database has been unreachable for a while: keep the newest facts.
            del self._pending[: len(self._pending) - self.limit + 1]
            self.dropped += 1
        self._pending.append(facts)

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if batch and not await self._write(batch):
                # Kept for the next round, ahead of what arrived meanwhile, within the limit.
                self._pending = (batch + self._pending)[-self.limit :]

    async def _write(self, batch: list[SightingFacts]) -> bool:
        try:
            async with self.sessions() as session, session.begin():
                await record_sightings(session, batch)
        except DB_ERRORS as exc:
            log.warning(
                "phone fetch: %d sightings not recorded yet: %s", len(batch), type(exc).__name__
            )
            return False
        self.written += len(batch)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Flush every interval while serving, and once more at the end (clean shutdown)."""
        task = asyncio.create_task(self._run()) if self.interval > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await self.flush()
