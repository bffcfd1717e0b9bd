"""Shedding load politely: when this process has too much on its hands, a phone gets an
immediate 503 with Retry-After (phones retry on their own schedule) instead of a connection that
hangs until its timeout, which would make it retry sooner and all at once.

Two signals, both cheap: requests being handled at once (`MAX_INFLIGHT`, those waiting on the
database) and the event loop's lag (`MAX_LAG_MS`, measured by a task that asks to wake up every
50 ms): when the loop itself is behind, the requests already read are answered with the cheapest
answer there is until it catches up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TICK = 0.05
RETRY_AFTER = "10"


class Load:
    def __init__(self, *, max_inflight: int, max_lag_ms: int) -> None:
        self.max_inflight = max_inflight
        self.max_lag = max_lag_ms / 1000
        self.inflight = 0
        self.lag = 0.0
        self.shed = 0  # requests answered 503 since start

    def overloaded(self) -> bool:
        return self.inflight >= self.max_inflight or self.lag > self.max_lag

    async def _watch(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(TICK)
            self.lag = max(0.0, time.monotonic() - started - TICK)

    @asynccontextmanager
    async def watched(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._watch())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


def shedding(load_of: Callable[[web.Request], Load], handler: Handler) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        load = load_of(request)
        if load.overloaded():
            load.shed += 1
            return web.Response(status=503, headers={"Retry-After": RETRY_AFTER})
        load.inflight += 1
        try:
            return await handler(request)
        finally:
            load.inflight -= 1

    return handle
