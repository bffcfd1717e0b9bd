"""`provisioning serve`: prepare the database, build the app, listen."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import tempfile
import time

from aiohttp.http_exceptions import HttpProcessingError

from provisioning import demo as demo_data
from provisioning import listen, logs, metrics, tftp
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.devices.catalog import load_catalog
from provisioning.settings import Settings

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class BadRequestLogFilter(logging.Filter):
    """aiohttp logs a malformed request (a scanner, a fuzzer) as an error with a traceback; it
    is bad input answered with a 400, so one warning line says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            error = record.exc_info[1]
            original = record.getMessage()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "%s: bad HTTP request answered %s (%s)"
            reason = str(getattr(error, "message", "")).splitlines()
            record.args = (original, error.code, reason[0][:120] if reason else "")
        return True


async def _prepare(settings: Settings, demo: bool) -> list[demo_data.DemoDevice]:
    from provisioning.commands import prepare_database

    catalog = load_catalog(settings.templates_dir)
    engine = make_engine(settings.database_url)
    try:
        await prepare_database(engine, catalog, migrate=True)
        if not demo:
            return []
        async with make_session_factory(engine)() as session, session.begin():
            return await demo_data.seed(session, settings, catalog, Cipher(settings.secret_key))
    finally:
        await engine.dispose()


def serve(settings: Settings, *, demo: bool = False) -> None:
    logs.configure(settings)
    logging.getLogger("aiohttp.server").addFilter(BadRequestLogFilter())
    devices = asyncio.run(_prepare(settings, demo))
    for device in devices:
        print(f"\n{device.label} ({device.mac}), User-Agent {device.user_agent!r}:")
        for url in device.urls:
            print(f"  {url}")
    if devices:
        print(
            f"\nTry: curl -A '{devices[0].user_agent}' {devices[0].urls[-1]}\n",
            flush=True,
        )
        print(
            f"Manager: {settings.base_url}/manager/  customer {' / '.join(demo_data.DEMO_CUSTOMER)}"
            f", operator {' / '.join(demo_data.DEMO_OPERATOR)}\n",
            flush=True,
        )
    if settings.workers > 1:
        _run_workers(settings)
    else:
        _run_one(settings)


def _run_one(settings: Settings, share: tuple[int, int] = (0, 1)) -> None:
    app = create_app(settings, share=share)
    # TFTP for phones that fetch no other way, when TFTP_LISTEN is set (README "TFTP (Zenitel)").
    app.cleanup_ctx.append(tftp.tftp_ctx)
    # HTTP and/or HTTPS (settings HTTP, TLS_CERT/TLS_KEY): see provisioning.listen.
    listen.run(
        app,
        settings,
        access_log_class=logs.AccessLogger,
        say=lambda text: print(text, file=sys.stderr, flush=True),
    )


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the parent dies, even by SIGKILL, instead of serving on
    alone (and holding the port and database connections) under no supervisor."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


def _run_workers(settings: Settings) -> None:
    """WORKERS processes, each a whole server (app, cache, push worker) on the same port with
    SO_REUSEPORT: the kernel spreads connections, the database keeps them one service. The
    parent only forwards SIGINT/SIGTERM (each worker drains and flushes its sightings) and
    starts again a worker that died without being asked to stop."""
    log = logging.getLogger("provisioning.workers")
    stopping = False
    children: dict[int, int | None] = {}

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: its own process group, so a terminal's ^C reaches it once
            os.setpgid(0, 0)
            _die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 0
            try:
                _run_one(settings, (number, settings.workers))
            except BaseException:
                log.exception("worker %d failed", number)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = number

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                # aiohttp stops gracefully on SIGINT and SIGTERM alike.
                os.kill(pid, signal.SIGINT)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    # /metrics sums the workers' counters from files (prometheus-client's multiprocess mode).
    scratch = None
    if settings.metrics:
        folder = os.environ.get(metrics.MULTIPROC_ENV)
        if not folder:
            scratch = tempfile.TemporaryDirectory(prefix="provisioning-metrics-")
            folder = scratch.name
        metrics.prepare_multiprocess(folder)
    for number in range(settings.workers):
        start(number)
    while children:
        pid, status = os.wait()
        if settings.metrics:
            metrics.process_exited(pid)
        stopped = children.pop(pid, None)
        if stopped is None or stopping:
            continue
        log.warning(
            "worker %d (pid %d) exited with status %d; starting it again",
            number,
            pid,
            os.waitstatus_to_exitcode(status),
        )
        time.sleep(1)
        if not stopping:
            start(number)
    if scratch is not None:
        scratch.cleanup()
