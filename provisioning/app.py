"""The application factory: one per process, no work at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from provisioning import health, logs, metrics
from provisioning.api.app import PREFIX as API_PREFIX
from provisioning.api.app import create_api
from provisioning.crypto import Cipher
from provisioning.db.engine import make_engine, make_session_factory, make_writer_engine
from provisioning.devices.catalog import load_catalog
from provisioning.phones.answers import Answers
from provisioning.phones.auth import Authorizer, default_authorizer
from provisioning.phones.guard import Guard, factory_from_settings
from provisioning.phones.load import Load
from provisioning.phones.lookup import open_rows
from provisioning.phones.prerender import Prerenderer
from provisioning.phones.routes import add_routes as add_phone_routes
from provisioning.phones.sightings import SightingBuffer, SightingHistory
from provisioning.phones.upkeep import maintained
from provisioning.push.worker import PushWorker
from provisioning.render.cache import RenderCache
from provisioning.render.environment import Renderer
from provisioning.render.stored import StoredFiles
from provisioning.security.middleware import security_middleware
from provisioning.settings import Settings
from provisioning.state import SERVICES, Services
from provisioning.web.app import create_manager
from provisioning.web.pages import PREFIX as MANAGER_PREFIX

PUSH_WORKER: web.AppKey[PushWorker] = web.AppKey("push_worker", PushWorker)
PRERENDERER: web.AppKey[Prerenderer] = web.AppKey("prerenderer", Prerenderer)
FINISH_SECONDS = 10.0  # a push tick in progress at shutdown

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, authorizer: Authorizer | None = None, share: tuple[int, int] = (0, 1)
) -> web.Application:
    """Build the application. Catalog, cipher and client CA bundles are checked here, so a bad
    family.toml, key or bundle fails before the server listens; the engine is opened and closed
    by the cleanup context. `share`: this worker's number and the worker count (which devices
    it renders ahead, phones.prerender)."""
    catalog = load_catalog(settings.templates_dir)
    cipher = Cipher(settings.secret_key)
    stored = StoredFiles.for_settings(settings)
    factory = factory_from_settings(settings, catalog)
    app = web.Application(
        client_max_size=1024**2,
        middlewares=[logs.request_id_middleware(settings.trusted_proxies), security_middleware],
    )

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        writer = make_writer_engine(settings.database_url) or engine
        sessions = make_session_factory(writer)
        read_sessions = make_session_factory(engine, read_only=True)
        rows = open_rows(settings.database_url)
        load = Load(max_inflight=settings.max_inflight, max_lag_ms=settings.max_lag_ms)
        guard = Guard(settings, catalog, cipher, sessions, rows, factory)
        sightings = SightingBuffer(
            rows.write_sightings,
            interval=settings.sighting_flush_ms / 1000,
            limit=settings.sighting_buffer,
            # As many (device, file) pairs as the render cache holds files.
            history=SightingHistory(settings.sighting_history_seconds, settings.render_cache_size),
            refresh=SightingHistory(settings.sighting_refresh_seconds, settings.render_cache_size),
        )
        app[SERVICES] = Services(
            settings=settings,
            engine=engine,
            sessions=sessions,
            read_sessions=read_sessions,
            catalog=catalog,
            renderer=Renderer(catalog, settings.templates_override_dir),
            cipher=cipher,
            cache=RenderCache(settings.render_cache_size),
            stored=stored,
            authorize=authorizer or default_authorizer(settings),
            guard=guard,
            sightings=sightings,
            load=load,
            # As many answers as the render cache holds files. An authorizer of the caller's
            # own may weigh more than the evidence (the time, say): its answers are not kept.
            answers=Answers(settings.render_cache_size if authorizer is None else 0),
        )
        access = app[logs.ACCESS_LOG] = logs.AccessLog(settings.log_format)
        # Cleanup runs after the server stopped taking requests: the last flush sees them all.
        async with (
            maintained(guard, read_sessions, sessions),
            sightings.running(),
            load.watched(),
        ):
            yield
        access.flush()
        await rows.close()
        await engine.dispose()
        if writer is not engine:
            await writer.dispose()

    async def push_ctx(app: web.Application) -> AsyncIterator[None]:
        if not settings.push_enabled:
            yield
            return
        worker = PushWorker(app[SERVICES])
        await worker.start()
        task = asyncio.create_task(worker.run())
        app[PUSH_WORKER] = worker
        yield
        worker.finish()
        # The tick in progress ends its transaction; one stuck that long is cancelled.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, FINISH_SECONDS)
        await worker.stop()

    async def prerender_ctx(app: web.Application) -> AsyncIterator[None]:
        if settings.prerender_rate == 0:
            yield
            return
        prerenderer = app[PRERENDERER] = Prerenderer(app[SERVICES], share)
        task = asyncio.create_task(prerenderer.run())
        yield
        task.cancel()  # a batch not written is rendered again by the next start
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(services_ctx)
    app.cleanup_ctx.append(push_ctx)
    app.cleanup_ctx.append(prerender_ctx)
    # The API and the Manager first: the phone endpoint ends with a catch-all route.
    app.add_subapp(API_PREFIX, create_api())
    app.add_subapp(MANAGER_PREFIX, create_manager())
    health.add_routes(app)
    if settings.metrics:
        app.router.add_get("/metrics", metrics.metrics_view)
    before = set(app.router.routes())
    add_phone_routes(app)
    if settings.metrics:
        phone_routes = frozenset(set(app.router.routes()) - before)
        # Inside the request id, outside the ban check: a banned source's 403 is counted too.
        app.middlewares.insert(1, metrics.install(app, phone_routes))
    return app
