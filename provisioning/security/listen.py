"""Listening: plain HTTP on PORT unless turned off, HTTPS on TLS_PORT when a certificate is set,
one application behind both (what `web.run_app` does for a single site)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import Callable

import uvloop
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from provisioning.security.tls import server_context
from provisioning.settings import Settings

BACKLOG = 4096  # capped by net.core.somaxconn (4096 on current kernels)


async def _serve(
    app: web.Application,
    settings: Settings,
    context: ssl.SSLContext | None,
    access_log_class: type[AbstractAccessLogger],
    say: Callable[[str], None],
) -> None:
    # Signals only set `stop`: the runner's cleanup below then drains requests in flight
    # (aiohttp's own handlers raise out of the loop, which cancels them instead).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log_class=access_log_class)
    await runner.setup()
    try:
        sites = []
        # Several worker processes bind the same port; the kernel spreads connections. A boot
        # storm opens connections by the thousand: with aiohttp's default backlog (128) the
        # kernel drops SYNs and phones wait out their retransmission timers (1 s, 3 s, 7 s), so
        # the queue is made long enough to hold them while the shedding answers 503.
        shared = settings.workers > 1
        if settings.http != "off":
            sites.append(
                web.TCPSite(
                    runner, settings.host, settings.port, reuse_port=shared, backlog=BACKLOG
                )
            )
        if context is not None:
            sites.append(
                web.TCPSite(
                    runner,
                    settings.host,
                    settings.tls_port,
                    ssl_context=context,
                    reuse_port=shared,
                    backlog=BACKLOG,
                )
            )
        for site in sites:
            await site.start()
        names = ", ".join(site.name for site in sites)
        say(f"======== Running on {names} ========\n(Press CTRL+C to quit)")
        await stop.wait()
    finally:
        # Stops listening, then waits for the requests in flight (the runner's shutdown
        # timeout, 60 s) before the cleanup contexts close the push worker and the database.
        await runner.cleanup()


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
