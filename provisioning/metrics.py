"""Prometheus metrics at `/metrics`.

Three sources, each read where it is cheapest:

- the phone path: fetches by (family, status) and a latency histogram, updated by a
  middleware that only touches requests routed to the phone endpoint (a set lookup, two clock
  reads, a dict update and a bisect: about a microsecond, benchmarks/metrics_overhead.py);
- the render cache: its own `hits`/`misses` counters, read at scrape time;
- the database: pushes by state and overdue, orders by state and late, active bans — a few
  `COUNT`s on indexed columns, run when `/metrics` is scraped (at most once per `DB_TTL`
  seconds), never on the phone path.

One process (the default) keeps everything in a registry of its own app. Several worker
processes (`serve --workers N`) use prometheus-client's multiprocess mode: the parent calls
`prepare_multiprocess(folder)` before forking, every worker writes its counters and histograms to
files in that folder, and a scrape answered by any worker sums all of them. The parent calls
`process_exited(pid)` when a worker dies. Database gauges need no summing: any worker computes
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import AbstractRoute
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from provisioning.background import every
from provisioning.db.engine import SessionFactory
from provisioning.db.errors import DB_ERRORS
from provisioning.db.models import Order, Push, SourceBan, utcnow
from provisioning.phones.answers import Answers
from provisioning.phones.files import FAMILY_KEY
from provisioning.render.cache import RenderCache
from provisioning.state import SERVICES

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Database gauges are recomputed at most this often, however many scrapers there are.
DB_TTL = 10.0
DB_TIMEOUT = 2.0
# Phone fetches are answered in a few milliseconds from the cache; a slow render or a busy
# database shows in the upper buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Several workers: fetch counts and cache counters reach the shared files this often.
SYNC_SECONDS = 1.0


def prepare_multiprocess(folder: str | Path) -> None:
    """Call in the parent before forking workers: counters and histograms created afterwards
    (by each worker's app) are written to files in `folder`, which is emptied here, and a scrape
    sums them over all workers."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client picks its value class from the environment when imported; choose again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def process_exited(pid: int) -> None:
    """Call in the parent when a worker exits: its live gauges stop counting (its counters
    keep their totals, as counters must)."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


FETCHES_HELP = "Requests answered by the phone endpoint, by template family and HTTP status"
LATENCY_HELP = "Time from routing to response of phone endpoint requests"


class FetchMetrics(Protocol):
    def observe(self, family: str, status: int, seconds: float) -> None: ...


class LocalFetchMetrics(Collector):
    """One process: plain integers on the phone path (a dict update and a bisect, well under a
    microsecond), turned into Prometheus samples when scraped."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, family: str, status: int, seconds: float) -> None:
        key = (family, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        # Bucket `le` counts observations <= its bound: the first bound >= seconds.
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        fetches = CounterMetricFamily(
            "provisioning_phone_fetches", FETCHES_HELP, labels=["family", "status"]
        )
        for (family, status), n in sorted(self.counts.items()):
            fetches.add_metric([family, str(status)], n)
        yield fetches
        cumulative, buckets = 0, []
        for bound, n in zip((*LATENCY_BUCKETS, None), self.buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound is None else repr(float(bound)), cumulative))
        yield HistogramMetricFamily(
            "provisioning_phone_fetch_seconds", LATENCY_HELP, buckets=buckets, sum_value=self.total
        )


class SharedFetchMetrics(LocalFetchMetrics):
    """Several processes: counted as in one process, and copied every `SYNC_SECONDS` (and when
    the worker stops) into prometheus-client's file-backed counter and histogram, which a
    scrape sums over the workers. Writing those files on every request (three locked writes)
    was a tenth of a worker's time in a boot storm; a worker killed outright loses at most its
    last second of counts."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches = Counter(
            "provisioning_phone_fetches", FETCHES_HELP, ("family", "status"), registry=None
        )
        self.latency = Histogram(
            "provisioning_phone_fetch_seconds",
            LATENCY_HELP,
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self._synced_counts: dict[tuple[str, int], int] = {}
        self._synced_buckets = [0] * len(self.buckets)
        self._synced_total = 0.0

    def sync(self) -> None:
        for key, n in list(self.counts.items()):
            done = self._synced_counts.get(key, 0)
            if n > done:
                self.fetches.labels(key[0], str(key[1])).inc(n - done)
                self._synced_counts[key] = n
        buckets = list(self.buckets)
        deltas = [n - done for n, done in zip(buckets, self._synced_buckets, strict=True)]
        if any(deltas):
            # The histogram takes one observation at a time; these are its own per-bucket
            # values (`observe` adds 1 to the first bucket whose bound holds the value, and
            # the value to the sum), given the interval's counts at once.
            for value, delta in zip(self.latency._buckets, deltas, strict=True):
                if delta:
                    value.inc(delta)
            self.latency._sum.inc(self.total - self._synced_total)
            self._synced_buckets, self._synced_total = buckets, self.total


def phone_middleware(metrics: FetchMetrics, routes: frozenset[AbstractRoute]) -> Middleware:
    """Counts requests routed to `routes` (the phone endpoint); passes the others through."""
    clock = time.perf_counter

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route not in routes:
            return await handler(request)
        started = clock()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            metrics.observe(request.get(FAMILY_KEY, "none"), status, clock() - started)

    return middleware


@dataclass
class DbCounts:
    """What the database says, as of `taken_at` (monotonic seconds)."""

    up: bool = False
    taken_at: float = float("-inf")
    pushes: dict[str, int] = field(default_factory=dict)
    pushes_overdue: int = 0
    orders: dict[str, int] = field(default_factory=dict)
    orders_late: int = 0
    bans: dict[str, int] = field(default_factory=dict)


PUSH_STATES = ("pending", "notified", "applied", "overdue")


async def count_database(sessions: SessionFactory, now: datetime) -> DbCounts:
    counts = DbCounts(up=True, taken_at=time.monotonic())
    async with sessions() as session:
        rows = await session.execute(select(Push.state, func.count()).group_by(Push.state))
        counts.pushes = {state: 0 for state in PUSH_STATES} | {s: int(n) for s, n in rows.all()}
        # Marked overdue, or past the deadline and not yet marked by a push worker.
        late_pushes = await session.scalar(
            select(func.count()).where(
                Push.state.in_(("pending", "notified")), Push.deadline <= now
            )
        )
        counts.pushes_overdue = counts.pushes.get("overdue", 0) + int(late_pushes or 0)
        rows = await session.execute(select(Order.state, func.count()).group_by(Order.state))
        counts.orders = {state: int(n) for state, n in rows.all()}
        late_orders = await session.scalar(
            select(func.count()).where(Order.state == "validated", Order.ship_by < now)
        )
        counts.orders_late = int(late_orders or 0)
        networks = await session.scalar(
            select(func.count()).where(SourceBan.until > now, SourceBan.source.contains("/"))
        )
        active = await session.scalar(select(func.count()).where(SourceBan.until > now))
        counts.bans = {
            "address": int(active or 0) - int(networks or 0),
            "network": int(networks or 0),
        }
    return counts


class DatabaseCollector(Collector):
    """Gauges from the database, refreshed by `refresh()` before a scrape (at most every
    `ttl` seconds; concurrent scrapes share one refresh)."""

    def __init__(self, ttl: float = DB_TTL) -> None:
        self.ttl = ttl
        self.counts = DbCounts()
        self._lock = asyncio.Lock()

    async def refresh(self, sessions: SessionFactory) -> None:
        async with self._lock:
            if time.monotonic() - self.counts.taken_at < self.ttl:
                return
            try:
                async with asyncio.timeout(DB_TIMEOUT):
                    self.counts = await count_database(sessions, utcnow())
            except DB_ERRORS as exc:
                log.warning("metrics: database not reachable (%s)", type(exc).__name__)
                # Retried at the next scrape, not after the TTL.
                self.counts = DbCounts(up=False)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts = self.counts
        yield GaugeMetricFamily(
            "provisioning_database_up",
            "1 when the last scrape could count rows in the database",
            value=1 if counts.up else 0,
        )
        if not counts.up:
            return
        pushes = GaugeMetricFamily(
            "provisioning_pushes", "Pushes (changes a phone must fetch) by state", labels=["state"]
        )
        for state, n in sorted(counts.pushes.items()):
            pushes.add_metric([state], n)
        yield pushes
        yield GaugeMetricFamily(
            "provisioning_pushes_overdue",
            "Pushes past their deadline and not applied (marked overdue or not yet marked)",
            value=counts.pushes_overdue,
        )
        orders = GaugeMetricFamily("provisioning_orders", "Orders by state", labels=["state"])
        for state, n in sorted(counts.orders.items()):
            orders.add_metric([state], n)
        yield orders
        yield GaugeMetricFamily(
            "provisioning_orders_late",
            "Validated orders past their ship-by time",
            value=counts.orders_late,
        )
        bans = GaugeMetricFamily(
            "provisioning_bans_active", "Sources banned now, by kind", labels=["kind"]
        )
        for kind, n in sorted(counts.bans.items()):
            bans.add_metric([kind], n)
        yield bans


GIVEN_HELP = "Phone fetches given the answer kept for their request head (phones.answers)"
STALE_HELP = (
    "Phone fetches whose kept answer no longer held, or could not be checked (database"
    " unavailable): answered the whole way"
)


class CacheCollector(Collector):
    """The render cache's and the kept answers' counters, read when scraped (one process)."""

    def __init__(
        self,
        cache: Callable[[], RenderCache | None],
        answers: Callable[[], Answers | None] = lambda: None,
    ) -> None:
        self.cache = cache
        self.answers = answers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        answers = self.answers()
        if answers is not None:
            yield CounterMetricFamily(
                "provisioning_phone_answers_given_again", GIVEN_HELP, answers.given
            )
            yield CounterMetricFamily("provisioning_phone_answers_stale", STALE_HELP, answers.stale)
        cache = self.cache()
        if cache is None:
            return
        yield CounterMetricFamily(
            "provisioning_render_cache_hits", "Rendered files served from the cache", cache.hits
        )
        yield CounterMetricFamily(
            "provisioning_render_cache_misses", "Rendered files not in the cache", cache.misses
        )
        yield GaugeMetricFamily(
            "provisioning_render_cache_entries", "Files in the cache", cache_size(cache)
        )


def cache_size(cache: RenderCache) -> int:
    if hasattr(cache, "__len__"):
        return len(cache)
    return len(cache._entries)


class CacheSync:
    """Several processes: each copies its cache counters into shared-file metrics every few
    seconds (the cache itself stays free of metrics code)."""

    def __init__(self) -> None:
        self.hits = Counter(
            "provisioning_render_cache_hits", "Rendered files served from the cache", registry=None
        )
        self.misses = Counter(
            "provisioning_render_cache_misses", "Rendered files not in the cache", registry=None
        )
        self.entries = Gauge(
            "provisioning_render_cache_entries",
            "Files in the caches of live workers",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.given = Counter("provisioning_phone_answers_given_again", GIVEN_HELP, registry=None)
        self.stale = Counter("provisioning_phone_answers_stale", STALE_HELP, registry=None)
        self._seen = (0, 0)
        self._answers_seen = (0, 0)

    def sync(self, cache: RenderCache, answers: Answers | None = None) -> None:
        hits, misses = cache.hits, cache.misses
        self.hits.inc(max(0, hits - self._seen[0]))
        self.misses.inc(max(0, misses - self._seen[1]))
        self._seen = (hits, misses)
        self.entries.set(cache_size(cache))
        if answers is not None:
            given, stale = answers.given, answers.stale
            self.given.inc(max(0, given - self._answers_seen[0]))
            self.stale.inc(max(0, stale - self._answers_seen[1]))
            self._answers_seen = (given, stale)


@dataclass
class Metrics:
    """One app's metrics: its registry (one process) and its collectors."""

    registry: CollectorRegistry | None
    phone: FetchMetrics
    database: DatabaseCollector
    cache: CacheCollector
    cache_sync: CacheSync | None

    @classmethod
    def create(
        cls,
        cache: Callable[[], RenderCache | None],
        answers: Callable[[], Answers | None] = lambda: None,
    ) -> Metrics:
        database = DatabaseCollector()
        collector = CacheCollector(cache, answers)
        if multiprocess_mode():
            return cls(None, SharedFetchMetrics(), database, collector, CacheSync())
        registry = CollectorRegistry(auto_describe=True)
        fetches = LocalFetchMetrics()
        for each in (fetches, collector, database):
            registry.register(each)
        return cls(registry, fetches, database, collector, None)

    def scrape(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        if isinstance(self.phone, SharedFetchMetrics):
            self.phone.sync()  # this worker's own counts up to now; the others' within a second
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self.database)
        return generate_latest(registry)


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


async def metrics_view(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    await metrics.database.refresh(request.app[SERVICES].read_sessions)
    body = metrics.scrape()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _sync_ctx(app: web.Application) -> AsyncIterator[None]:
    """Several workers: this one's counts copied to the shared files every `SYNC_SECONDS`, and
    once more after its last request."""
    metrics = app[METRICS]
    cache_sync, phone = metrics.cache_sync, metrics.phone
    if cache_sync is None or not isinstance(phone, SharedFetchMetrics):
        yield
        return

    def sync() -> None:
        phone.sync()
        cache_sync.sync(app[SERVICES].cache, app[SERVICES].answers)

    async def step() -> None:
        sync()

    task = asyncio.create_task(every(SYNC_SECONDS, "metrics sync", step))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    sync()


def install(app: web.Application, phone_routes: frozenset[AbstractRoute]) -> Middleware:
    """Set up metrics for `app`: the `/metrics` route must already be added by the caller
    (before the phone catch-all); returns the middleware to put in the app's chain."""
    metrics = Metrics.create(
        lambda: app[SERVICES].cache if SERVICES in app else None,
        lambda: app[SERVICES].answers if SERVICES in app else None,
    )
    app[METRICS] = metrics
    app.cleanup_ctx.append(_sync_ctx)
    return phone_middleware(metrics.phone, phone_routes)
