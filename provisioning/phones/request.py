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
from typing import NamedTuple, Protocol

from aiohttp import web

from provisioning.phones.auth import Policy


class PhoneRequest(Protocol):
    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...  # case-insensitive

    @property
    def transport(self) -> asyncio.Transport | None: ...


class Replay(NamedTuple):
    """What giving a fetch's answer again to the same request head takes (phones.answers): the
    conditions it was decided under, and the sighting each fetch records."""

    generation: int  # the device rows' `row_generation` it was decided at
    account_id: int | None
    policy: Policy  # the account's policy then
    device_id: int
    user_agent: str
    firmware: str | None
    file_name: str
    revision: int
    proof: bool  # the file carries the lines (family.toml `lines`)


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None  # with "; charset=..." when there is one
    family: str = "none"  # the template family the request counts under (metrics)
    replay: Replay | None = None  # set when the same head may get this answer again


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
