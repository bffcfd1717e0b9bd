"""Logging: text (the default) or one JSON object per line (`PROVISIONING_LOG_FORMAT=json`),
each carrying the request id of the request it was written for, and never a secret.

The request id comes from `X-Request-Id` when a trusted proxy (nginx, see deploy/) set it, or is
made here; it is returned in the response's `X-Request-Id` header and reaches every log line
written while the request is handled (a context variable: aiohttp runs each request in a task of
its own, the access log line included).

Secrets never reach a log: URL tokens are masked (the access log's masking), and anything shaped
like `Authorization: ...`, `Bearer ...`, `password=...` is replaced by `***` in every line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlencode

import netaddr
from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware

from provisioning.settings import Settings

REQUEST_ID_HEADER = hdrs.X_REQUEST_ID
# Set for the task handling one request; each request runs in a task of its own.
request_id: ContextVar[str | None] = ContextVar("provisioning_request_id", default=None)

# What a proxy's request id may look like (nginx's $request_id is 32 hex digits).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SECRET_PATTERNS = (
    # A URL token as a path segment anywhere in a line (the access log masks its own paths).
    (re.compile(r"(?<![A-Za-z0-9_.-])/[A-Za-z0-9_-]{16,64}/"), "/***/"),
    (re.compile(r"(?i)\b(token=)[^&\s\"']+"), r"\1***"),
    # An Authorization header: everything after it on the line.
    (re.compile(r"(?i)\b(authorization)([\"']?\s*[:=]\s*)[^\n]+"), r"\1\2***"),
    (re.compile(r"(?i)\b(bearer|basic|digest)\s+[A-Za-z0-9._~+/=,:\"-]{8,}"), r"\1 ***"),
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|secret_key|api_key)([\"']?\s*[:=]\s*[\"']?)[^\s&\"',}]+"
        ),
        r"\1\2***",
    ),
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """The text format, with secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id (when handling a request),
    exception (when any), then message last, so line-oriented tools (fail2ban) can anchor on
    the message's end."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        entry["message"] = redact(record.getMessage())
        return json.dumps(entry, ensure_ascii=False)


def configure(settings: Settings) -> None:
    """The process's logging for `provisioning serve`: INFO and up on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def request_id_maker(trusted: netaddr.IPSet) -> Callable[[str | None, str | None], str]:
    """(id the request gave, peer address) -> the request id: the proxy's when a trusted proxy
    set a well-formed one, else a made one, 64 random bits: unique enough across instances, and
    unlike a counter it tells a client nothing about the instance's traffic."""

    @lru_cache(maxsize=1024)
    def is_trusted(peer: str) -> bool:
        try:
            return netaddr.IPAddress(peer) in trusted
        except (netaddr.AddrFormatError, ValueError):
            return False

    # Random bytes drawn 4 KiB at a time: a getrandom() call per request cost a boot storm's
    # first fetch about 7 µs of its CPU.
    pool, at = b"", 0

    def forget() -> None:  # a forked worker draws its own bytes
        nonlocal pool, at
        pool, at = b"", 0

    os.register_at_fork(after_in_child=forget)

    def make(given: str | None, peer: str | None) -> str:
        nonlocal pool, at
        if given and peer and is_trusted(peer) and _REQUEST_ID.fullmatch(given):
            return given
        if at >= len(pool):
            pool, at = os.urandom(4096), 0
        at += 8
        return pool[at - 8 : at].hex()

    return make


def request_id_middleware(trusted: netaddr.IPSet) -> Middleware:
    """Take the proxy's request id (trusted proxies only) or make one; answer it back."""
    make = request_id_maker(trusted)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = make(request.headers.get(REQUEST_ID_HEADER), request.remote)
        # Not reset afterwards: the access log line is written later in the same task.
        request_id.set(rid)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[REQUEST_ID_HEADER] = rid
            raise
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = rid
        return response

    return middleware


# URL tokens are credentials: they never reach a log.
_TOKEN_IN_PATH = re.compile(r"^/[A-Za-z0-9_-]{16,64}/")
_TOKEN_IN_QUERY = re.compile(r"(token=)[^&]*")


def masked_path(path_qs: str) -> str:
    """A path as the phone lane reads it (plain characters only, no percent-encoding)."""
    return _TOKEN_IN_QUERY.sub(r"\1***", _TOKEN_IN_PATH.sub("/***/", path_qs))


def masked_target(path: str, query: Iterable[tuple[str, str]]) -> str:
    """A request's path and query as the server decoded them, the token masked: the raw text
    can spell it otherwise (`/%56P6C.../`, `?%74oken=`) and still be served, so a pattern of
    the raw text would let it through. What is logged is what the routes matched."""
    masked = _TOKEN_IN_PATH.sub("/***/", path)
    pairs = [(key, "***" if key.lower() == "token" else value) for key, value in query]
    if pairs:
        masked += "?" + urlencode(pairs, safe="*/:@,")
    return masked


# Peer, method, path (token masked), status, milliseconds: aiohttp's lines and the phone lane's.
ACCESS_FORMAT = '%s "%s %s" %s %.1fms'
ACCESS_LOGGER = "aiohttp.access"


class AccessLog:
    """The access log: one line per answered request, in the format the process's other lines
    have (text or JSON, `configure`), formatted directly and written in batches.

    Why not `logging`: a record per request (the record, the handler's lock, the formatter,
    a write and a flush of stderr each time) cost about three quarters of a polled fetch's
    throughput, where nginx's own access log costs nothing measurable. Lines wait at most
    `interval` seconds (or `limit` bytes) and are written together; `flush` at shutdown."""

    def __init__(
        self,
        log_format: str = "text",
        write: Callable[[str], None] | None = None,
        interval: float = 0.25,
        limit: int = 64 * 1024,
    ) -> None:
        self.json = log_format == "json"
        self._write = write
        self.interval = interval
        self.limit = limit
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            if self.json:
                self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            else:  # logging's asctime: local time, milliseconds after a comma
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        millis = int((now - second) * 1000)
        if self.json:
            return f"{self._stamp}.{millis:03d}+00:00"
        return f"{self._stamp},{millis:03d}"

    def add(
        self, peer: str | None, method: str, target: str, status: int, ms: float, rid: str | None
    ) -> None:
        """One answered request; `target` already masked (`masked_path`, `masked_target`)."""
        message = f'{peer} "{method} {target}" {status} {ms:.1f}ms'
        stamp = self._time(time.time())
        if self.json:
            rid_field = f', "request_id": {json.dumps(rid)}' if rid is not None else ""
            line = (
                f'{{"time": "{stamp}", "level": "INFO", "logger": "{ACCESS_LOGGER}"{rid_field}, '
                f'"message": {json.dumps(message, ensure_ascii=False)}}}\n'
            )
        else:
            line = f"{stamp} INFO {ACCESS_LOGGER} {message}\n"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.limit:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        if self._write is not None:
            self._write(text)
            return
        stream = sys.stderr  # looked up each time: tests and daemons replace it
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed or gone: the lines are lost, the server goes on


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook, writing to the app's `AccessLog`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        target = masked_target(request.path, request.query.items())
        sink = _access_log_of(request)
        if sink is None:  # an app without one (a bare test app): through logging
            self.logger.info(
                ACCESS_FORMAT, request.remote, request.method, target, response.status, time * 1000
            )
            return
        # Secrets in other query parameters (password=...) masked as every other line is.
        if "?" in target:
            target = redact(target)
        sink.add(
            request.remote, request.method, target, response.status, time * 1000, request_id.get()
        )


ACCESS_LOG: web.AppKey[AccessLog] = web.AppKey("access_log", AccessLog)


def _access_log_of(request: web.BaseRequest) -> AccessLog | None:
    # config_dict: the root app's key seen from a sub-application (the API, the Manager).
    try:
        config = request.config_dict  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):
        return None  # a request aiohttp refused before routing it (a bad head): no app yet
    found: AccessLog | None = config.get(ACCESS_LOG)
    return found
