"""The phone lane: a lean HTTP/1.1 protocol in front of aiohttp for what a boot storm is made of,
plain GETs of a phone file.

aiohttp spends most of a phone fetch's time in its own machinery (a Request, a Response, a task,
middlewares, a writer per request): a bare aiohttp handler answering fixed bytes reaches half of
nginx's requests/s on this machine, which left the fetch path itself no room (README "Boot
storms"). This protocol reads a request head, and when it is a GET or HEAD of `/<token>/<file>` or
`/<file>` (plain characters, no query, no body) answers it itself through the very `fetch` the
aiohttp route calls, with the same answers, headers, bans, shedding, request id, metrics and
access log. Anything else — the API, the Manager, health, metrics, firmware, a query string,
percent-encoding, a body, an upgrade, an oversized or malformed head — makes it hand the
connection, with every byte it has not answered, to aiohttp's own protocol, which then serves the
connection to its end. The head is parsed by httptools (llhttp, the parser aiohttp uses too);
what aiohttp refuses and llhttp would take (lines ending in a bare LF, more header lines than
aiohttp's limit) is handed over too, so that both layers answer alike.

A request head must be whole within HEAD_TIMEOUT seconds on both layers (`HeadDeadline` on
aiohttp's side): a client trickling one byte at a time would otherwise hold its connection, and
a file descriptor, as long as it likes.

Each request runs in a task of its own, as aiohttp gives each request (started eagerly from Python
3.12, so a fetch that never waits is answered within the read callback); the connection reads
nothing more until it is answered, so answers keep their order. No step of a fetch ever runs
outside its task: what it awaits (the ORM's pool, asyncpg) relies on `asyncio.current_task()`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, NamedTuple, cast

import httptools
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

from provisioning import logs
from provisioning.metrics import METRICS, FetchMetrics
from provisioning.phones.answers import Kept
from provisioning.phones.files import (
    RETRY_AFTER,
    fetch,
    fetch_again,
    given_again,
    given_again_at,
)
from provisioning.phones.load import RETRY_AFTER as SHED_RETRY_AFTER
from provisioning.phones.request import Reply, empty
from provisioning.state import SERVICES, Services

log = logging.getLogger(__name__)

MAX_HEAD = 8190  # aiohttp's limit for a request line or a header: beyond, it answers the error
MAX_HEADERS = 128  # aiohttp's max_headers (RequestHandler): beyond, it answers 400
BARE_LF = re.compile(rb"(?<!\r)\n")  # aiohttp's request parser (strict llhttp) refuses it
MAX_BUFFERED = 65536  # read paused while this much waits and cannot be answered yet
IDLE_SECONDS = 75.0  # keep-alive timeout, the same for both layers (provisioning.listen)
SWEEP_SECONDS = 5.0
# `/<token>/<file>` or `/<file>`, the characters phones use; the rest goes to aiohttp.
PATH = re.compile(rb"/(?:([A-Za-z0-9_-]{16,64})/)?([A-Za-z0-9._-]{1,128})")
REQUEST_ID_LINE = b"\r\n" + logs.REQUEST_ID_HEADER.lower().encode() + b":"
EAGER = sys.version_info >= (3, 12)  # asyncio.Task(eager_start=True)
# As aiohttp, the answer's version is the request's (1.0 or 1.1).
STATUS_LINES = {
    (version, status.value): f"HTTP/{version} {status.value} {status.phrase}\r\n".encode()
    for status in HTTPStatus
    for version in ("1.0", "1.1")
}


class LaneRequest:
    """A `PhoneRequest` made from a parsed head."""

    __slots__ = ("headers", "method", "raw_path", "transport")

    def __init__(
        self,
        method: str,
        raw_path: str,
        headers: CIMultiDictProxy[str],
        transport: asyncio.Transport,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.headers = headers
        self.transport: asyncio.Transport | None = transport


class Asked(NamedTuple):
    """A request the lane answers: its parsed facts, and the head its answer is kept by."""

    request: LaneRequest
    keep_alive: bool
    version: str
    file_name: str
    token: str | None
    head: bytes  # without a proxy's request id (`_without_request_id`)
    given_id: str | None  # the request id it came with


class HeadDeadline(RequestHandler):
    """aiohttp's protocol, which closes a connection whose request head is not whole
    `head_seconds` after its first byte, as the lane does (`PhoneConnection.head_since`).

    A head's first byte: the first received once the previous request's body is whole (any
    byte before is body, which takes what time it needs). A pipelined head's clock may so start
    while the previous request is answered, unlike the lane's, which starts at the end of that
    answer: either bounds a slow head, and aiohttp parses a whole pipelined head at once. Bytes
    of a head that come with the end of the previous request start no clock (aiohttp does not
    tell what it holds of a head); the next byte does. Idle connections, and those gone silent,
    are the keep-alive timeout's business: no byte, no clock."""

    __slots__ = ("_head_body", "_head_timer", "head_seconds", "head_since")

    def __init__(self, seconds: float, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.head_seconds = seconds
        self.head_since: float | None = None  # set by the lane for a connection it hands over
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_body: StreamReader | None = None  # the last parsed request's body

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        if self._head_timer is None and data and self._head_expected():
            since = self._loop.time() if self.head_since is None else self.head_since
            self.head_since = None
            self._head_timer = self._loop.call_at(since + self.head_seconds, self._head_late)
        super().data_received(data)
        if self._request_count != heads:  # a head parsed (or refused: aiohttp answers it)
            if self._messages:
                self._head_body = self._messages[-1][1]
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

    def _head_expected(self) -> bool:
        """Whether a byte now starts a head: not a body's, nor a WebSocket's."""
        body = self._head_body
        return (
            self._payload_parser is None and not self._upgraded and (body is None or body.is_eof())
        )

    def _head_late(self) -> None:
        self._head_timer = None
        # Paused, aiohttp's parser holds heads back until it has answered those queued.
        if not self._buffer_paused:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_body = None
        super().connection_lost(exc)


def aiohttp_protocols(server: web.Server, seconds: float) -> Callable[[], HeadDeadline]:
    """What `server()` makes, with the head deadline: the protocol factory for connections
    aiohttp serves from their start (the lane off) or takes from the lane."""

    def protocol() -> HeadDeadline:
        # The handler arguments the runner gave its server (access log), as
        # `web.Server.__call__` passes them.
        return HeadDeadline(seconds, server, loop=server._loop, **server._kwargs)

    return protocol


class Lane:
    """What the connections of one server process share."""

    def __init__(self, app: web.Application, handover: Callable[[], asyncio.Protocol]) -> None:
        services: Services = app[SERVICES]
        self.services = services
        self.handover = handover
        self.metrics: FetchMetrics | None = app[METRICS].phone if METRICS in app else None
        self.access = app.get(logs.ACCESS_LOG) if services.settings.access_log else None
        self.head_timeout = float(services.settings.head_timeout)
        self.request_id = logs.request_id_maker(services.settings.trusted_proxies)
        # A kept answer waits for the device rows' generation (PostgreSQL) in a callback of
        # the connection's own, when its sighting can be batched (`_give_again_later`).
        self.later = not services.guard.rows.immediate and services.sightings.interval > 0
        # First path segments aiohttp routes elsewhere (api, manager, healthz, firmware...):
        # read from the router, so a route added later is never shadowed by the lane.
        self.reserved = frozenset(
            segment.encode()
            for resource in app.router.resources()
            if (segment := resource.canonical.lstrip("/").split("/")[0]) and "{" not in segment
        )
        self.answers = services.answers
        self.connections: set[PhoneConnection] = set()
        self.busy = 0
        self.tasks: set[asyncio.Task[Reply]] = set()  # fetches in progress
        self.closing = False
        self._idle = asyncio.Event()
        self._date = ""
        self._date_second = -1
        self._sweeper: asyncio.Task[None] | None = None

    def connection(self) -> PhoneConnection:
        return PhoneConnection(self)

    def date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, formatdate(now, usegmt=True)
        return self._date

    async def handle(
        self,
        request: LaneRequest,
        file_name: str,
        token: str | None,
        head: bytes,
        kept: Kept | None,
    ) -> Reply:
        """What the aiohttp chain does for a phone file: ban check, shedding, fetch; or, for a
        head answered before, that answer again while it holds (phones.answers)."""
        services = self.services
        refused = self.admit(request)
        if refused is not None:
            return refused
        load = services.load
        load.inflight += 1
        try:
            if kept is not None:
                reply = await fetch_again(services, request, kept)
                if reply is not None:
                    self.answers.given += 1
                    return reply
                self.answers.stale += 1
                self.answers.forget(head)
            return await fetch(services, request, file_name, token)
        finally:
            load.inflight -= 1

    def admit(self, request: LaneRequest) -> Reply | None:
        """The ban check and shedding: the answer when the request goes no further."""
        services = self.services
        if services.guard.banned(request):
            return empty(403)
        load = services.load
        if load.overloaded():
            load.shed += 1
            return empty(503, ("Retry-After", SHED_RETRY_AFTER))
        return None

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Close connections idle past the keep-alive timeout, or sending a head too slowly."""
        loop = asyncio.get_running_loop()
        # Often enough that a slow head is closed at most a quarter of its deadline late.
        period = min(SWEEP_SECONDS, self.head_timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            idle, slow = now - IDLE_SECONDS, now - self.head_timeout
            for connection in [
                c
                for c in self.connections
                if not c.busy
                and (c.last < idle or (c.head_since is not None and c.head_since < slow))
            ]:
                connection.close()

    async def shutdown(self, grace: float) -> None:
        """Idle connections close now; a fetch in progress is answered, then its connection
        closes. Waits for those at most `grace` seconds."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            if not connection.busy:
                connection.close()
        if self.busy:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except TimeoutError:
                # As aiohttp after its timeout: cancelled, so that none outlives the database
                # (the cleanup that follows flushes the last sightings and closes it).
                log.warning("phone lane: %d fetches cancelled at shutdown", self.busy)
                for task in list(self.tasks):
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)

    def done(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self._idle.set()


class PhoneConnection(asyncio.Protocol):
    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.write_paused = False
        self.read_paused = False
        self.peer = "0.0.0.0"  # noqa: S104 -- a unix socket: no network peer
        self.last = 0.0
        # When the lane began waiting for the head in the buffer: its first byte, or the end of
        # the previous answer for bytes that came while it was given (they could not be read
        # before). None while no partial head waits. The head deadline counts from it.
        self.head_since: float | None = None
        # Made at the first head not answered before (a booting phone's connection often
        # carries one request, whose answer is kept): making it was 3 % of a worker's time
        # with a connection per request (py-spy, boot-storm benchmark).
        self._parser: httptools.HttpRequestParser | None = None
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._complete = False
        self._expect = False
        self._keep_alive = False
        self._version = "1.1"

    @property
    def parser(self) -> httptools.HttpRequestParser:
        if self._parser is None:
            self._parser = httptools.HttpRequestParser(self)
        return self._parser

    # -- httptools callbacks ------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"expect":
            self._expect = True  # 100-continue or 417: aiohttp's business
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        self._keep_alive = parser.should_keep_alive()
        self._version = parser.get_http_version()

    def on_message_complete(self) -> None:
        self._complete = True

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but provide its methods.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = str(peer[0]).removeprefix("::ffff:")
        self.last = asyncio.get_running_loop().time()
        if self.lane.closing:
            self.transport.close()
            return
        self.lane.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lane.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last = asyncio.get_running_loop().time()
        if self.busy or self.write_paused:
            self._throttle()
        else:
            self._next()

    def eof_received(self) -> bool | None:
        # As aiohttp does: the transport closes; an answer in progress is dropped.
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        self._throttle()

    def _throttle(self) -> None:
        """Stop reading while what arrived cannot be answered yet (a fetch in progress, or a
        client that does not read its answers) and enough of it waits; read again after."""
        if self.transport is None:
            return
        stuck = self.busy or self.write_paused
        if stuck and len(self.buffer) > MAX_BUFFERED and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        elif self.read_paused and not stuck and len(self.buffer) <= MAX_BUFFERED:
            self.read_paused = False
            self.transport.resume_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.busy:
            self._next()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- requests -----------------------------------------------------------------------------

    def _next(self) -> None:
        """Answer the complete heads waiting, in order, until one needs to wait."""
        while self.buffer and not self.busy and not self.write_paused:
            if self.transport is None or self.transport.is_closing():
                return
            if self.lane.closing:
                self.close()
                return
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEAD:
                if end > MAX_HEAD or len(self.buffer) > MAX_HEAD or BARE_LF.search(self.buffer):
                    self._hand_over()  # aiohttp's limits and answers for large or odd heads
                    return
                if self.head_since is None:
                    self.head_since = asyncio.get_running_loop().time()
                return
            self.head_since = None
            end += 4
            head = bytes(self.buffer[:end])
            key, given_id = _without_request_id(head)
            kept = self.lane.answers.get(key)
            if kept is not None:  # answered before: no need to parse it again
                del self.buffer[:end]
                request = LaneRequest(kept.method, kept.raw_path, kept.headers, self.transport)
                asked = Asked(
                    request, kept.keep_alive, kept.version, kept.file_name, kept.token, key,
                    given_id,
                )  # fmt: skip
                if not self._give_again(asked, kept):
                    self._serve(asked, kept)
                continue
            if BARE_LF.search(head):
                self._hand_over()
                return
            self._url, self._headers, self._complete, self._expect = b"", [], False, False
            try:
                self.parser.feed_data(head)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                self._hand_over()  # aiohttp answers errors, upgrades and CONNECT its own way
                return
            method = self.parser.get_method()
            match = PATH.fullmatch(self._url)
            if (
                not self._complete  # a body follows
                or method not in (b"GET", b"HEAD")
                or self._version not in ("1.0", "1.1")
                or self._expect
                or len(self._headers) > MAX_HEADERS
                or match is None
                or (match[1] or match[2]) in self.lane.reserved
            ):
                self._hand_over()
                return
            del self.buffer[:end]
            token = match[1].decode() if match[1] else None
            headers = CIMultiDictProxy(CIMultiDict(self._headers))
            request = LaneRequest(method.decode(), self._url.decode(), headers, self.transport)
            self._serve(
                Asked(request, self._keep_alive, self._version, match[2].decode(), token, key,
                      given_id)
            )  # fmt: skip
        self._throttle()

    def _give_again(self, asked: Asked, kept: Kept) -> bool:
        """A kept answer given at once, when nothing needs waiting for: what `_start` and
        `Lane.handle` do for it, without a task, a context or a coroutine (a third of the
        CPU time of such an answer, measured with benchmarks/phone_lane.py). On PostgreSQL,
        given once the generation is read (`_give_again_later`). False: nothing was done,
        the request takes the usual way, which answers whatever it is (a changed answer, a
        sighting written at once)."""
        lane = self.lane
        request = asked.request
        started = time.perf_counter()
        # A ban or shedding: that answer, as `Lane.handle` gives it (counted once, here).
        reply = lane.admit(request)
        if reply is None:
            if lane.later:
                self._give_again_later(asked, kept, started)
                return True
            reply = given_again(lane.services, request, kept)
            if reply is None:
                return False
            lane.answers.given += 1
        self._give(asked, reply, kept, started)
        return True

    def _give_again_later(self, asked: Asked, kept: Kept, started: float) -> None:
        """The kept answer once the device rows' generation, read after the request arrived,
        says it still holds; else the whole fetch path answers. Waits in a callback on the
        read's future, not in a task: a task per request cost more than the read itself
        (py-spy, boot-storm benchmark on PostgreSQL). The connection is busy meanwhile, so
        pipelined requests are answered in order."""
        lane = self.lane
        services = lane.services
        waiting = services.guard.rows.generation_later()
        self.busy = True
        lane.busy += 1
        services.load.inflight += 1

        def decided(future: asyncio.Future[int | None]) -> None:
            services.load.inflight -= 1
            self.busy = False
            reply = None
            if not future.cancelled() and future.exception() is None:
                reply = given_again_at(services, asked.request, kept, future.result())
            if reply is None:  # changed, or the database did not answer: the whole way
                lane.answers.stale += 1
                lane.answers.forget(asked.head)
                # Served before this wait counts as done, so that a shutdown waiting for the
                # lane's fetches never sees none in between and goes on without this one.
                self._serve(asked)
                lane.done()
                if not self.busy:  # answered at once (an eager task): go on from here
                    self._next()
                return
            lane.done()
            lane.answers.given += 1
            self._give(asked, reply, kept, started)
            if lane.closing:
                self.close()
            else:
                self._next()

        waiting.add_done_callback(decided)

    def _give(self, asked: Asked, reply: Reply, kept: Kept, started: float) -> None:
        lane = self.lane
        rid = lane.request_id(asked.given_id, self.peer)
        reset = logs.request_id.set(rid)  # for the access log line
        try:
            self._answer(asked.request, reply, rid, kept.keep_alive, kept.version, started, kept)
        finally:
            logs.request_id.reset(reset)

    def _hand_over(self) -> None:
        """aiohttp's protocol takes the connection from here, with every unanswered byte."""
        transport = self.transport
        assert transport is not None
        self.lane.connections.discard(self)
        self.transport = None
        protocol = self.lane.handover()
        if isinstance(protocol, HeadDeadline):  # the time the head spent here counts there
            protocol.head_since = self.head_since
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data, self.buffer = bytes(self.buffer), bytearray()
        if self.write_paused:
            protocol.pause_writing()
        if self.read_paused:
            transport.resume_reading()
        if data:
            protocol.data_received(data)

    def _serve(self, asked: Asked, kept: Kept | None = None) -> None:
        # Each request in a context of its own: the request id reaches its log lines only.
        contextvars.copy_context().run(self._start, asked, kept)

    def _start(self, asked: Asked, kept: Kept | None) -> None:
        lane = self.lane
        request, keep_alive, version, file_name, token, head, given_id = asked
        rid = lane.request_id(given_id, self.peer)
        logs.request_id.set(rid)
        started = time.perf_counter()
        coroutine = lane.handle(request, file_name, token, head, kept)
        self.busy = True
        lane.busy += 1

        def conclude(reply: Reply | None, error: BaseException | None, later: bool) -> None:
            lane.done()
            self.busy = False
            keep = keep_alive
            if reply is None:  # cancelled, or failed (`fetch` answers its own errors)
                if error is not None:
                    log.error(
                        "phone lane: error handling %s",
                        logs.masked_path(request.raw_path),
                        exc_info=error,
                    )
                # A phone keeps its settings and asks again later: never a 500 (files.py).
                reply, keep = empty(503, ("Retry-After", RETRY_AFTER)), False
            elif (
                reply.replay is not None
                and lane.answers.size > 0
                and (kept is None or reply is not kept.reply)
            ):
                lane.answers.put(
                    head,
                    Kept(
                        request.method, request.raw_path, request.headers, keep_alive, version,
                        file_name, token, reply,
                    ),
                )  # fmt: skip
            self._answer(request, reply, rid, keep, version, started, kept)
            if lane.closing:
                self.close()
            elif later:  # answered now, the loop in `_next` goes on by itself
                self._next()

        def finished(task: asyncio.Task[Reply], *, later: bool = True) -> None:
            lane.tasks.discard(task)
            if task.cancelled():
                conclude(None, None, later)
            elif (error := task.exception()) is not None:
                conclude(None, error, later)
            else:
                conclude(task.result(), None, later)

        # A task of its own, as aiohttp gives each request: what the fetch awaits may need one
        # (asyncpg's connect runs under asyncio.timeout). From Python 3.12 the task starts at
        # once and most fetches (SQLite, a cached file) are done before this returns.
        loop = asyncio.get_running_loop()
        if EAGER:
            task = asyncio.Task(coroutine, loop=loop, eager_start=True)  # type: ignore[call-arg]
        else:
            task = loop.create_task(coroutine)
        lane.tasks.add(task)
        if task.done():
            finished(task, later=False)
        else:
            task.add_done_callback(finished)

    def _answer(
        self,
        request: LaneRequest,
        reply: Reply,
        rid: str,
        keep_alive: bool,
        version: str,
        started: float,
        kept: Kept | None,
    ) -> None:
        lane = self.lane
        self.last = asyncio.get_running_loop().time()  # the keep-alive clock starts now
        elapsed = time.perf_counter() - started
        if lane.metrics is not None:
            lane.metrics.observe(reply.family, reply.status, elapsed)
        if lane.access is not None:
            lane.access.add(
                self.peer,
                request.method,
                logs.masked_path(request.raw_path),
                reply.status,
                elapsed * 1000,
                rid,
            )
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the phone went away meanwhile
        if kept is not None and reply is kept.reply and keep_alive == kept.keep_alive:
            # An answer given again: its bytes around the date and request id are the same.
            if kept.wire is None:
                kept.wire = _wire(reply, request.method, keep_alive, version)
            before, after, body = kept.wire
        else:
            before, after, body = _wire(reply, request.method, keep_alive, version)
        middle = f"Date: {lane.date()}\r\n{logs.REQUEST_ID_HEADER}: {rid}\r\n"
        transport.write(before + middle.encode() + after + body)
        if not keep_alive:
            transport.close()


def _without_request_id(head: bytes) -> tuple[bytes, str | None]:
    """A head without its request id header, and that id. A proxy in front (deploy/nginx) sets
    a new one on every request: without it, the head is what the phone sends every time, which
    is what answers are kept by (phones.answers); the id itself is each request's own."""
    at = head.lower().find(REQUEST_ID_LINE)
    if at < 0:
        return head, None
    end = head.find(b"\r\n", at + 2)
    given = head[at + len(REQUEST_ID_LINE) : end].strip().decode("utf-8", "surrogateescape")
    return head[:at] + head[end:], given


def _wire(reply: Reply, method: str, keep_alive: bool, version: str) -> tuple[bytes, bytes, bytes]:
    """An answer's bytes before the Date and request id headers, the rest of its head, and its
    body (the render cache's own bytes: a kept answer holds no copy of them)."""
    status = reply.status
    head = "".join([f"{name}: {value}\r\n" for name, value in reply.headers])
    if reply.content_type is not None:
        head += f"Content-Type: {reply.content_type}\r\n"
    body = reply.body
    bodiless = status in (204, 304)
    if not bodiless:
        head += f"Content-Length: {len(body)}\r\n"
    # As aiohttp: HTTP/1.0 hears "keep-alive" when it is kept, HTTP/1.1 "close" when not.
    tail = ""
    if not keep_alive:
        if version != "1.0":
            tail = "Connection: close\r\n"
    elif version == "1.0":
        tail = "Connection: keep-alive\r\n"
    status_line = STATUS_LINES.get((version, status)) or f"HTTP/{version} {status} -\r\n".encode()
    before = status_line + head.encode("utf-8", "surrogateescape")
    after = tail.encode() + b"\r\n"
    return before, after, body if not bodiless and method != "HEAD" else b""
