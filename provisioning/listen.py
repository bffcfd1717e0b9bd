"""Listening: plain HTTP on PORT unless turned off, HTTPS on TLS_PORT when a certificate is set,
one application behind both (what `web.run_app` does for a single site)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Callable

import uvloop
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from provisioning.phones.lane import IDLE_SECONDS, Lane, aiohttp_protocols
from provisioning.security.tls import server_context
from provisioning.settings import Settings

BACKLOG = 4096  # capped by net.core.somaxconn (4096 on current kernels)
SHUTDOWN_SECONDS = 60.0  # as aiohttp's runner waits for its requests in flight
log = logging.getLogger("aiohttp.access")


@contextlib.asynccontextmanager
async def listening(
    app: web.Application,
    settings: Settings,
    context: ssl.SSLContext | None,
    access_log_class: type[AbstractAccessLogger],
    ready: Callable[[], None] | None = None,
) -> AsyncIterator[list[tuple[str, asyncio.Server]]]:
    """The app served on PORT (unless HTTP is off) and TLS_PORT (with a certificate) until the
    block ends; then stop listening, answer the fetches in progress, drain aiohttp's requests
    and run the cleanup contexts. `ready` runs once the app has started, before listening."""
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(
        app,
        access_log_class=access_log_class,
        access_log=log if settings.access_log else None,
        # An idle connection closes after as long on aiohttp as on the lane: aiohttp's own
        # default (an hour) let silent connections hold file descriptors.
        keepalive_timeout=IDLE_SECONDS,
    )
    await runner.setup()
    lane: Lane | None = None
    servers: list[tuple[str, asyncio.Server]] = []
    try:
        handler = runner.server
        assert handler is not None  # made by setup()
        # Phones' plain GETs go to the phone lane, which hands every other connection to
        # aiohttp's own protocol (phones.lane); without the lane aiohttp takes them all. Both
        # close a connection whose request head is too slow (HEAD_TIMEOUT).
        aiohttp = aiohttp_protocols(handler, settings.head_timeout)
        factory: Callable[[], asyncio.BaseProtocol] = aiohttp
        if settings.phone_lane:
            lane = Lane(app, aiohttp)
            lane.start()
            factory = lane.connection
        # Several worker processes bind the same port; the kernel spreads connections. A boot
        # storm opens connections by the thousand: with aiohttp's default backlog (128) the
        # kernel drops SYNs and phones wait out their retransmission timers (1 s, 3 s, 7 s), so
        # the queue is made long enough to hold them while the shedding answers 503.
        if ready is not None:
            ready()
        ports: list[tuple[str, int, ssl.SSLContext | None]] = []
        if settings.http != "off":
            ports.append(("http", settings.port, None))
        if context is not None:
            ports.append(("https", settings.tls_port, context))
        for scheme, port, tls in ports:
            server = await loop.create_server(
                factory,
                settings.host,
                port,
                ssl=tls,
                reuse_port=settings.workers > 1,
                backlog=BACKLOG,
            )
            servers.append((scheme, server))
        yield servers
    finally:
        for _, server in servers:
            server.close()
        if runner.server is not None:
            # aiohttp's kept-alive connections (those the lane handed over too) close after
            # their request in progress, as the lane's do, while both drain.
            runner.server.pre_shutdown()
        if lane is not None:
            await lane.shutdown(SHUTDOWN_SECONDS)
        # aiohttp's connections: the runner's shutdown timeout (60 s), then the cleanup
        # contexts close the push worker and the database.
        await runner.cleanup()


def settle_heap() -> None:
    """The collector set for serving, once start-up is over."""
    # What start-up made (templates, catalog, SQLAlchemy's metadata: most of the heap)
    # lives as long as the process: out of the collector's sight, so that a full
    # collection scans only what serving made, not millions of objects (each one stalled
    # every request of the worker for 100 ms and more in a boot storm, README "Boot
    # storms"). Reference counting still frees them; only cycles among them would stay.
    # Serving keeps large caches (rows, answers, sightings) whose churn made collections
    # frequent: fewer, measured with the boot-storm benchmark (p99 2.7-3.5 ms, against
    # 6-135 ms with the defaults; gc.disable() gave the same figures).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


async def _serve(
    app: web.Application,
    settings: Settings,
    context: ssl.SSLContext | None,
    access_log_class: type[AbstractAccessLogger],
    say: Callable[[str], None],
) -> None:
    # Signals only set `stop`: leaving `listening` then drains requests in flight (aiohttp's
    # own handlers raise out of the loop, which cancels them instead).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The collector settled before listening: its full collection of the start-up heap (and
    # the rest of start-up) is not paid by the first phones of a boot storm.
    async with listening(app, settings, context, access_log_class, settle_heap) as servers:
        names = [
            f"{scheme}://{settings.host}:{server.sockets[0].getsockname()[1]}"
            for scheme, server in servers
        ]
        say(f"======== Running on {', '.join(names)} ========\n(Press CTRL+C to quit)")
        await stop.wait()


def run(
    app: web.Application,
    settings: Settings,
    *,
    access_log_class: type[AbstractAccessLogger],
    say: Callable[[str], None],
) -> None:
    # Built before anything listens: a bad certificate or key stops the program with a message.
    context = server_context(settings) if settings.tls else None
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        # uvloop: about 1.5x the requests per second of asyncio's own loop for the same handler
        # (README "Boot storms").
        uvloop.run(_serve(app, settings, context, access_log_class, say))
