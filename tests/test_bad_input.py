"""Hostile and malformed requests: each gets the identical empty 404 or a 400, never a 500 and
never another device's file. Sent over a raw socket so nothing is normalised on the way."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import World

pytestmark = pytest.mark.usefixtures("world")


async def raw_request(client: TestClient, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def get_request(path: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: phones.test", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize(
    "path",
    [
        b"/{token}/../{token}/0015654aa937.cfg",
        b"/{token}/%2e%2e/0015654aa937.cfg",
        b"/{token}/..%2f0015654aa937.cfg",
        b"/{token}/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        b"/../../etc/passwd",
        b"/firmware/../pyproject.toml",
        b"/firmware/%2e%2e/pyproject.toml",
        b"/firmware/..%2fpyproject.toml",
        b"/firmware/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        b"/{token}/0015654aa937.cfg%00.txt",
        b"/{token}/00%3A15%3A65%3A4a%3Aa9%3A37.cfg",
        b"/{token}/" + b"a" * 200 + b".cfg",
        b"/" + b"b" * 3000,
        b"/{token}/\xff\xfe.cfg",
        b"/{token}/0015654aa937.cfg/extra",
        b"/{token}//0015654aa937.cfg",
    ],
)
async def test_traversal_and_odd_paths_are_refused(
    client: TestClient, world: World, path: bytes
) -> None:
    path = path.replace(b"{token}", world.yealink_token.encode())
    status, body = await raw_request(client, get_request(path))
    assert status in (400, 404), status
    assert b"account." not in body and b"root:" not in body and b"[project]" not in body
    if status == 404:
        assert body == b""


async def test_dot_segments_never_reach_a_file_without_the_token(
    client: TestClient, world: World
) -> None:
    status, body = await raw_request(client, get_request(b"/x/../0015654aa937.cfg"))
    assert (status, body) == (404, b"")
    status, body = await raw_request(client, get_request(b"/%2e%2e/0015654aa937.cfg"))
    assert (status, body) == (404, b"")


@pytest.mark.parametrize(
    "user_agent",
    [
        b"Yealink SIP-T46U 108.86.0.20 \xff\xfe\xfd",
        b"\xc3\x28\xa0\xa1 broken utf-8",
        b"Yealink SIP-T46U \x01\x02\x7f 00:15:65:4a:a9:37",
        b"x" * 8000,
    ],
)
async def test_strange_user_agents_never_fail(
    client: TestClient, world: World, user_agent: bytes
) -> None:
    path = b"/" + world.yealink_token.encode() + b"/0015654aa937.cfg"
    status, body = await raw_request(client, get_request(path, b"User-Agent: " + user_agent))
    # aiohttp's parser refuses control characters in headers (400); the rest is served.
    assert status in (200, 400)
    if status == 200:
        assert b"account.1.enable = 1" in body
    else:
        assert b"account." not in body


async def test_oversized_header_is_400(client: TestClient, world: World) -> None:
    path = b"/" + world.yealink_token.encode() + b"/0015654aa937.cfg"
    status, body = await raw_request(client, get_request(path, b"X-Big: " + b"y" * 20000))
    assert status == 400
    assert b"account." not in body


async def test_oversized_request_line_is_400_or_404(client: TestClient) -> None:
    status, _ = await raw_request(client, get_request(b"/" + b"c" * 20000))
    assert status in (400, 404)


@pytest.mark.parametrize(
    "name",
    [
        "00:15:65:4a:a9:37.cfg",
        "00-15-65-4A-A9-37.cfg",
        "0015.654a.a937.cfg",
        ".cfg",
        "000000000000.cfg",
        "ffffffffffff.cfg",
        "0015654aa93.cfg",
        "0015654aa9377.cfg",
        "0015654aa937.CFG",
    ],
)
async def test_mac_notations_in_file_names_do_not_resolve_to_other_files(
    client: TestClient, world: World, name: str
) -> None:
    resp = await client.get(f"/{world.yealink_token}/{name}")
    assert resp.status == 404
    assert await resp.read() == b""


async def test_put_and_delete_are_not_served(client: TestClient, world: World) -> None:
    path = f"/{world.yealink_token}/0015654aa937.cfg"
    for method in ("PUT", "DELETE", "PATCH"):
        resp = await client.request(method, path, data=b"x")
        assert resp.status in (404, 405)
        assert b"account." not in await resp.read()


async def test_a_post_is_answered_as_a_get_and_its_body_never_read(
    client: TestClient, world: World
) -> None:
    """Jitsi asks for its file with a form POST: the answer a GET gets, whatever the body."""
    path = f"/{world.yealink_token}/0015654aa937.cfg"
    ua = {"User-Agent": "Yealink SIP-T46U 108.86.0.20 00:15:65:4a:a9:37"}
    got = await client.get(path, headers=ua)
    posted = await client.post(path, headers=ua, data=b"x" * 100_000)
    assert got.status == posted.status == 200
    assert await got.read() == await posted.read()
    # Without the token, a POST is refused as a GET is: the same empty 404.
    refused = await client.post("/0015654aa937.cfg", headers=ua, data=b"x")
    assert refused.status == 404 and await refused.read() == b""
