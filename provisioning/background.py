"""Loops that run beside the server (sightings flush, bans refresh, metrics sync): each survives
whatever one round raises, logs it and runs again at the next round. A loop that died on one
unexpected driver error once left a server that recorded no sighting, and so proved no push
applied, until it was restarted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from provisioning.db.errors import DB_ERRORS, describe

log = logging.getLogger(__name__)


async def every(seconds: float, what: str, step: Callable[[], Awaitable[None]]) -> None:
    """`step` every `seconds`, for ever (until cancelled)."""
    while True:
        await asyncio.sleep(seconds)
        await run_once(what, step)


async def run_once(what: str, step: Callable[[], Awaitable[None]]) -> bool:
    """One round of a loop: False when it failed (logged: a database error briefly, anything
    else with its traceback, since it is a bug of ours)."""
    try:
        await step()
    except DB_ERRORS as exc:
        log.warning("%s: database unavailable: %s", what, describe(exc))
        return False
    except Exception:
        log.exception("%s: failed, tried again at the next round", what)
        return False
    return True
