"""`provisioning serve`: prepare the database, build the app, listen."""

from __future__ import annotations

import asyncio
import logging
import re
import sys

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from provisioning import demo as demo_data
from provisioning import logs
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import make_engine, make_session_factory
from provisioning.devices.catalog import load_catalog
from provisioning.security import listen
from provisioning.settings import Settings

# URL tokens are credentials: they never reach a log.
_TOKEN_IN_PATH = re.compile(r"^/[A-Za-z0-9_-]{16,64}/")
_TOKEN_IN_QUERY = re.compile(r"(token=)[^&]*")


def masked_path(path_qs: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1***", _TOKEN_IN_PATH.sub("/***/", path_qs))


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.1fms',
            request.remote,
            request.method,
            masked_path(request.path_qs),
            response.status,
            time * 1000,
        )


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
    from provisioning.cli import prepare_database

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
    app = create_app(settings)
    # HTTP and/or HTTPS (settings HTTP, TLS_CERT/TLS_KEY): see security.listen.
    listen.run(
        app,
        settings,
        access_log_class=AccessLogger,
        say=lambda text: print(text, file=sys.stderr, flush=True),
    )
