"""Background loops survive whatever a round raises: the sightings flush (which proves pushes
applied), the bans synchronisation and the metrics sync. A loop that died once on an unexpected
driver error left a server that never again recorded a sighting until it was restarted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg  # type: ignore[import-untyped]
import pytest

from provisioning.background import every
from provisioning.db.models import utcnow
from provisioning.phones.sightings import SightingBuffer, SightingFacts


def _facts(device_id: int) -> SightingFacts:
    return SightingFacts(device_id, utcnow(), "192.0.2.1", "UA", None, "a.cfg", 1)


@pytest.mark.parametrize(
    "failure",
    [asyncpg.InternalClientError("boom"), asyncpg.InterfaceError("closed"), KeyError("bug")],
    ids=["driver-internal", "driver-interface", "a-bug"],
)
async def test_the_sightings_flush_goes_on_after_any_error(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    written: list[int] = []
    failures = [failure]
    calls: asyncio.Queue[None] = asyncio.Queue()

    async def write(batch: Sequence[SightingFacts]) -> None:
        calls.put_nowait(None)
        if failures:
            raise failures.pop()
        written.extend(facts.device_id for facts in batch)

    buffer = SightingBuffer(write, interval=0.01, limit=100)
    with caplog.at_level(logging.WARNING):
        async with buffer.running():
            buffer.add_nowait(_facts(1))
            async with asyncio.timeout(5):
                await calls.get()  # the round that failed
                buffer.add_nowait(_facts(2))
                await calls.get()  # the next round, which the loop still runs
    # A database error keeps the batch for the next round; a bug drops it (logged), so that
    # one bad fact never stops every later one.
    assert written == ([1, 2] if not isinstance(failure, KeyError) else [2])
    assert any("sightings" in record.getMessage() for record in caplog.records)


async def test_the_shutdown_flush_runs_after_the_loop_failed() -> None:
    written: list[int] = []
    calls = 0

    async def write(batch: Sequence[SightingFacts]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("unexpected")
        written.extend(facts.device_id for facts in batch)

    buffer = SightingBuffer(write, interval=3600, limit=100)
    async with buffer.running():
        buffer.add_nowait(_facts(1))
        await buffer.flush()  # fails: dropped, logged
        buffer.add_nowait(_facts(2))
    assert written == [2]  # written by the flush at the end


async def test_a_loop_logs_each_failure_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []
    fourth = asyncio.Event()

    async def step() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 4:
            fourth.set()
        if len(rounds) in (1, 2):
            raise (asyncpg.InternalClientError if len(rounds) == 1 else ZeroDivisionError)()

    with caplog.at_level(logging.WARNING, logger="provisioning.background"):
        task = asyncio.create_task(every(0.01, "a loop", step))
        async with asyncio.timeout(5):
            await fourth.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "a loop: database unavailable: InternalClientError"
    assert messages[1] == "a loop: failed, tried again at the next round"
    assert caplog.records[1].exc_info is not None  # a bug's traceback is logged
