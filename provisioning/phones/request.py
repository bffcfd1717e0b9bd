"""What the fetch path reads from a request and what it answers, independent of the HTTP layer.

Two layers serve phone files: aiohttp (every route, and the only one in tests through its test
client) and the phone lane (`phones.lane`, a lean HTTP/1.1 protocol taking only the plain GETs
phones send at boot). Both hand the same `fetch` the same facts and send the same `Reply`.
An aiohttp `web.Request` is a `PhoneRequest` as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web


class PhoneRequest(Protocol):
    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...  # case-insensitive

    @property
    def transport(self) -> asyncio.Transport | None: ...


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None  # with "; charset=..." when there is one
    family: str = "none"  # the template family the request counts under (metrics)


def empty(status: int, *headers: tuple[str, str]) -> Reply:
    return Reply(status, list(headers))


def to_response(reply: Reply) -> web.Response:
    response = web.Response(status=reply.status, body=reply.body or None)
    for name, value in reply.headers:
        response.headers.add(name, value)
    if reply.content_type is not None:
        response.content_type, _, charset = reply.content_type.partition("; charset=")
        if charset:
            response.charset = charset
    return response
