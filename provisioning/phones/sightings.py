"""Recording what a fetch tells about a device (the "sighting").

In a boot storm one transaction per fetch would make the database's single writer the limit of
the whole fetch path, so the server keeps sightings in memory and writes them in batches
(`SightingBuffer`): one transaction every `SIGHTING_FLUSH_MS` updates each device seen once
(its latest facts), marks the pushes the fetched revisions satisfy as applied and inserts the
sighting rows. A clean shutdown flushes what is left; a crash loses at most one interval of
last-seen facts, never a configuration.

What is written is what is new (`SightingHistory`, one per process): a fetch that tells
something new about a device — another revision, address, User-Agent or firmware — updates its
last-seen facts (and proves pushes applied) at the next batch; one that repeats them does so
only when they were last written `SIGHTING_REFRESH_SECONDS` ago or more, so "last seen" is
exact to that many seconds. The history (`sightings` rows) keeps the same way one row per
device and file per `SIGHTING_HISTORY_SECONDS`. Phones poll every few minutes and fetch several
files at boot: a write per fetch would grow the history by a billion rows a day for a million
phones, and cost a boot storm random index writes per request, to say again what the device
row already says.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import NamedTuple

from provisioning.background import every
from provisioning.db.errors import DB_ERRORS, describe

log = logging.getLogger(__name__)


class SightingFacts(NamedTuple):
    device_id: int
    seen_at: datetime
    ip: str
    user_agent: str
    firmware: str | None
    file_name: str
    revision: int
    history: bool = True  # also a row in the history (`sightings`)
    touch: bool = True  # the device's last-seen facts need writing
    # A file carrying the lines (family.toml `lines = true`) served at `revision`, not said
    # before: proves the pushes of that revision applied. A boot file that only includes
    # others proves nothing: the phone may fail the file that has the lines.
    proof: bool = True


class SightingHistory:
    """Which fetches are worth writing: the first of each (device, file) in this process, then
    any that differs from the last one kept, or comes `seconds` after it. Remembers at most
    `size` pairs, the least recently fetched forgotten first (a forgotten pair only costs one
    more write). `seconds` 0 keeps every fetch."""

    def __init__(self, seconds: float, size: int) -> None:
        self.seconds = seconds
        self.size = max(1, size)
        self._kept: OrderedDict[tuple[int, str], tuple[tuple[object, ...], float]] = OrderedDict()

    def keep(self, device_id: int, file_name: str, facts: tuple[object, ...], now: float) -> bool:
        if self.seconds <= 0:
            return True
        key = (device_id, file_name)
        kept = self._kept.get(key)
        if kept is not None and kept[0] == facts and now - kept[1] < self.seconds:
            self._kept.move_to_end(key)
            return False
        self._kept[key] = (facts, now)
        self._kept.move_to_end(key)
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return True

    def forget(self, device_id: int, file_name: str) -> None:
        """What was kept was never written (dropped, or its write failed): the next fetch
        repeating it is written."""
        self._kept.pop((device_id, file_name), None)


def summarise(
    batch: Sequence[SightingFacts],
) -> tuple[list[SightingFacts], list[SightingFacts]]:
    """(each due device's latest sighting, each device's proof of its highest revision): what
    the batch says about last-seen facts, and what it proves delivered."""
    due = {facts.device_id for facts in batch if facts.touch}
    latest: dict[int, SightingFacts] = {}
    newest_revision: dict[int, SightingFacts] = {}
    for facts in batch:
        if facts.device_id in due:
            seen = latest.get(facts.device_id)
            if seen is None or facts.seen_at >= seen.seen_at:
                latest[facts.device_id] = facts
        if facts.proof:
            best = newest_revision.get(facts.device_id)
            if best is None or facts.revision > best.revision:
                newest_revision[facts.device_id] = facts
    return list(latest.values()), list(newest_revision.values())


Writer = Callable[[Sequence[SightingFacts]], Awaitable[None]]


class SightingBuffer:
    """Sightings waiting for the next batch. `interval` 0 writes each one at once (the caller
    awaits it), which the tests and a single low-traffic instance may prefer."""

    def __init__(
        self,
        write: Writer,
        *,
        interval: float,
        limit: int,
        history: SightingHistory | None = None,
        refresh: SightingHistory | None = None,
    ) -> None:
        # `phones.lookup.DeviceRows.write_sightings`: one transaction per batch, through the
        # driver (no ORM work, and on SQLite its own thread that waits in C, not on the GIL).
        self.write = write
        self.interval = interval
        self.limit = limit
        self.history = history or SightingHistory(0, 1)  # per (device, file): the history rows
        self.refresh = refresh or SightingHistory(0, 1)  # per device: its last-seen facts
        self._pending: list[SightingFacts] = []
        self._lock = asyncio.Lock()
        self.written = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def add(self, facts: SightingFacts) -> None:
        if self.interval <= 0:
            if not await self._write([facts]):
                self._lost([facts])
            return
        self.add_nowait(facts)

    def add_nowait(self, facts: SightingFacts) -> None:
        """Into the next batch (`interval` above 0)."""
        assert self.interval > 0, "sightings written at once are awaited: add()"
        if len(self._pending) >= self.limit:
            # The database has been unreachable for a while: keep the newest facts.
            cut = len(self._pending) - self.limit + 1
            self._lost(self._pending[:cut])
            del self._pending[:cut]
            self.dropped += 1
        self._pending.append(facts)

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if batch and not await self._write(batch):
                # Kept for the next round, ahead of what arrived meanwhile, within the limit.
                kept = batch + self._pending
                self._lost(kept[: -self.limit])
                self._pending = kept[-self.limit :]

    def _lost(self, facts: Sequence[SightingFacts]) -> None:
        """Facts that will never be written: a later fetch repeating them must be (a new
        revision's proof above all)."""
        for each in facts:
            self.refresh.forget(each.device_id, "")
            self.history.forget(each.device_id, each.file_name)

    async def _write(self, batch: list[SightingFacts]) -> bool:
        """True when written; False when the database did not answer (kept for the next
        round). Anything else is a bug of ours, logged: the batch is dropped rather than tried
        for ever, so that one bad fact never stops every later one."""
        try:
            await self.write(batch)
        except DB_ERRORS as exc:
            log.warning("phone fetch: %d sightings not recorded yet: %s", len(batch), describe(exc))
            return False
        except Exception:
            log.exception("phone fetch: %d sightings dropped", len(batch))
            self._lost(batch)
            return True
        self.written += len(batch)
        return True

    async def _run(self) -> None:
        await every(self.interval, "sightings flush", self.flush)

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
