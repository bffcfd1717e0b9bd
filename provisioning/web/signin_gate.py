"""What a sign-in may cost the server. scrypt takes tens of milliseconds of a core and 32 MiB
per attempt; on a 2-core machine six at once (the default thread pool) slowed every API write
3.9 times by CPU alone, and inside the single SQLite writer's transaction one anonymous flood
moved API write latency from 15 ms to 2 s. So a password is verified outside any transaction,
one at a time per process, with a bounded queue, and each source address gets a few attempts a
minute; beyond, the answer is "too many attempts" at once, without hashing anything. The
per-login lockout (users.MAX_FAILURES) stays: it stops guessing one login from many addresses."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque

from provisioning.errors import DomainError
from provisioning.web.passwords import verify_password


class TooManyAttempts(DomainError):
    code = "too-many-attempts"
    status = 429


class SignInGate:
    def __init__(
        self,
        *,
        hashing: int = 1,
        waiting: int = 16,
        per_source: int = 10,
        window: float = 60.0,
        sources: int = 100_000,
    ) -> None:
        self._hashing = asyncio.Semaphore(hashing)
        self._waiting = 0
        self.max_waiting = waiting
        self.per_source = per_source
        self.window = window
        self._sources = sources
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def admit(self, source: str | None, *, now: float | None = None) -> None:
        """Count an attempt from `source`; TooManyAttempts past `per_source` in the window."""
        now = time.monotonic() if now is None else now
        key = source or "-"
        attempts = self._attempts.pop(key, None) or deque()
        while attempts and attempts[0] <= now - self.window:
            attempts.popleft()
        if len(attempts) >= self.per_source:
            self._attempts[key] = attempts
            raise TooManyAttempts("too many sign-in attempts from this address: wait a minute")
        attempts.append(now)
        self._attempts[key] = attempts  # most recent last: the oldest sources are forgotten
        while len(self._attempts) > self._sources:
            self._attempts.popitem(last=False)

    async def verify(self, password: str, stored: str) -> bool:
        """scrypt in a thread, one at a time; TooManyAttempts when the queue is full."""
        if self._waiting >= self.max_waiting:
            raise TooManyAttempts("too many sign-ins at once: try again in a moment")
        self._waiting += 1
        try:
            async with self._hashing:
                return await asyncio.to_thread(verify_password, password, stored)
        finally:
            self._waiting -= 1
