"""Reading request bodies and query strings: the offending field named in every error."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from provisioning.errors import InvalidInput

MAX_BODY = 64 * 1024


async def json_body(
    request: web.Request, fields: dict[str, type | tuple[type, ...]]
) -> dict[str, Any]:
    """The body as a JSON object with only the listed fields, each of its type."""
    if request.content_type != "application/json":
        raise InvalidInput("body: send application/json", field="body")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise InvalidInput("body: too large", field="body")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("body: not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("body: expected a JSON object", field="body")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field", field=str(unknown[0])[:64])
    for name, value in data.items():
        expected = fields[name]
        if value is None:
            continue
        # JSON true/false are ints to Python; a number field must not take them.
        if isinstance(value, bool) and expected is not bool:
            raise InvalidInput(f"{name}: wrong type", field=name)
        if not isinstance(value, expected):
            raise InvalidInput(f"{name}: wrong type", field=name)
    return data


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
    text = request.match_info[name]
    if not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise InvalidInput(f"{name}: a positive integer", field=name)
    return int(text)


def query_int(
    request: web.Request, name: str, default: int | None, low: int, high: int
) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 18 or not low <= int(text) <= high:
        raise InvalidInput(f"{name}: an integer from {low} to {high}", field=name)
    return int(text)


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
