"""Reading request bodies and query strings: the offending field named in every error."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from provisioning.errors import InvalidInput
from provisioning.numbers import parse_id, parse_int

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY = 64 * 1024
# No field of the API needs more: a number past 4,300 digits would make `int` raise, and
# nesting in the thousands makes the decoder raise RecursionError (each a 500 before).
MAX_NUMBER = 40
MAX_DEPTH = 16


def is_text(value: str) -> bool:
    """False for what no text of ours may hold: a lone surrogate (JSON spells one "\\ud800", a
    form in UTF-7 another; Python keeps it, but neither a UTF-8 answer, the SQLite driver nor
    PostgreSQL takes it) or a NUL (PostgreSQL refuses it in text). Each was a 500 or a 503."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER:
        raise InvalidInput(f"body: a number of more than {MAX_NUMBER} digits", field="body")
    return int(text)


def _check_value(name: str, value: Any) -> None:
    """Every string in a field's value is text, and it is not nested too deeply. A loop, not
    recursion: the value may be as deep as the decoder allows."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{name}: nested too deeply", field=name)
        if isinstance(item, str) and not is_text(item):
            raise InvalidInput(f"{name}: a NUL or a lone surrogate is not text", field=name)
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


async def json_body(
    request: web.Request, fields: dict[str, type | tuple[type, ...]]
) -> dict[str, Any]:
    """The body as a JSON object with only the listed fields, each of its type."""
    if request.content_type != "application/json":
        raise InvalidInput("body: send application/json", field="body")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise InvalidInput("body: too large", field="body")
    return json_object(raw, fields)


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, read up to `limit` bytes (None past it) whatever aiohttp's own limit for
    forms and JSON (1 MiB): a bulk body (a CSV import, a claim of many phones)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(raw: bytes, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """`raw` as a JSON object with only the listed fields, each of its type (`json_body`, for
    a body read otherwise: a bulk one past MAX_BODY)."""
    try:
        data = json.loads(raw, parse_int=_json_int)
    except RecursionError:
        raise InvalidInput("body: nested too deeply", field="body") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError among them
        raise InvalidInput("body: not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("body: expected a JSON object", field="body")
    # Before the names are quoted in an answer: a lone surrogate cannot be written in one.
    if not all(is_text(name) for name in data):
        raise InvalidInput("body: a field name is not text", field="body")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field", field=str(unknown[0])[:64])
    for name, value in data.items():
        expected = fields[name]
        if value is None:
            continue
        _check_value(name, value)
        # JSON true/false are ints to Python; a number field must not take them.
        if isinstance(value, bool) and expected is not bool:
            raise InvalidInput(f"{name}: wrong type", field=name)
        if not isinstance(value, expected):
            raise InvalidInput(f"{name}: wrong type", field=name)
    return data


@web.middleware
async def texts_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The path's parts and the query's values, checked once for every route: handlers pass
    them on as they are (a state or model filter, a return's reference), and a NUL reaching
    PostgreSQL was a 503."""
    for name, value in (*request.match_info.items(), *request.query.items()):
        if not is_text(value):
            field = name if is_text(name) else "query"
            raise InvalidInput(f"{field}: a NUL or a lone surrogate is not text", field=field)
    return await handler(request)


def query_bool(request: web.Request, name: str) -> bool:
    """`?name=true` or `false` (the default when absent); anything else is refused."""
    value = request.query.get(name, "false")
    if value not in ("true", "false"):
        raise InvalidInput(f"{name}: true or false", field=name)
    return value == "true"


def required(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None:
        raise InvalidInput(f"{name}: required", field=name)
    return value


def int_id(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**62:
        raise InvalidInput(f"{name}: a positive integer", field=name)
    return value


def path_id(request: web.Request, name: str) -> int:
    value = parse_id(request.match_info[name])
    if value is None:
        raise InvalidInput(f"{name}: a positive integer", field=name)
    return value


def query_int(
    request: web.Request, name: str, default: int | None, low: int, high: int
) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    value = parse_int(text, low, high)
    if value is None:
        raise InvalidInput(f"{name}: an integer from {low} to {high}", field=name)
    return value


def query_datetime(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: an ISO 8601 date-time", field=name) from None
    if value.tzinfo is None:
        raise InvalidInput(f"{name}: include a time zone offset", field=name)
    return value


def page(request: web.Request) -> tuple[int, int]:
    limit = query_int(request, "limit", 50, 1, 500)
    offset = query_int(request, "offset", 0, 0, 10**9)
    assert limit is not None and offset is not None
    return limit, offset
