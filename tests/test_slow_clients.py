"""Slow and odd clients, with real sockets against `provisioning serve`, the phone lane on and off.

A client trickling its request head one byte a second once held its connection for ~98 s on the
lane and for ever on aiohttp: ~1,050 of them took every file descriptor the systemd unit left,
and real phones failed. Now a head must be whole within HEAD_TIMEOUT seconds of its first byte on
both layers, while phones, idle keep-alive connections and slow bodies are served as before.
And heads aiohttp refuses (bare LF line ends, more than 128 header lines) are answered the same
by both layers: the lane once waited for ever for a CRLF CRLF, and served any number of headers.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings, SettingsError
from tests.phone_server import Fleet, Served, seeded, serving, yealink_ua

HEAD_TIMEOUT = 2
TRICKLERS = 300
# The lane sweeps every quarter of the deadline; aiohttp's timer is exact. Both under load.
LATE = 2.5
# A phone's head, begun and then trickled a byte a second: the lane's business.
SLOW = (b"GET /", b"cfg HTTP/1.1\r\nHost: phones.test\r\nUser-Agent: slow\r\n\r\n")
# A head larger than the lane takes, begun: handed over, aiohttp's business from then on.
BIG = (
    b"GET /big HTTP/1.1\r\n"
    + b"".join(b"X-Padding-%d: %s\r\n" % (n, b"x" * 80) for n in range(100))
    + b"X-Slow: ",
    b"abcdefghijklmnopqrstuvwxyz",
)


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for the tricklers' sockets in this process and in the server it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * TRICKLERS + 256
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def phone_head(token: str, mac: str, *extra: str, end: bytes = b"\r\n") -> bytes:
    lines = [
        f"GET /{token}/{mac}.cfg HTTP/1.1",
        "Host: phones.test",
        f"User-Agent: {yealink_ua(mac)}",
        *extra,
    ]
    return b"".join(line.encode() + end for line in lines) + end


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """An answer's status line and body (Content-Length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, _, rest = head.partition(b"\r\n")
    length = 0
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def trickle(port: int, head: tuple[bytes, bytes]) -> float | None:
    """Seconds from a head's first byte until the server closed the connection (having
    answered nothing), sending the head's start, then its rest a byte a second; None: still
    open after the deadline and LATE."""
    start, rest = head
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    first = loop.time()
    writer.write(start)

    async def drip() -> None:
        for byte in rest:
            await asyncio.sleep(1)
            writer.write(bytes([byte]))

    dripping = asyncio.create_task(drip())
    try:
        answered = await asyncio.wait_for(reader.read(), HEAD_TIMEOUT + LATE + 2)
    except ConnectionResetError:
        answered = b""
    except TimeoutError:
        return None
    finally:
        dripping.cancel()
        writer.close()
    assert answered == b"", answered[:200]
    return loop.time() - first


async def phone_fetches(served: Served, fleet: Fleet, count: int) -> list[tuple[int, float]]:
    """Plain phones' fetches, one every half second, each on a new connection: status and
    seconds taken."""
    mac, token = fleet.plain[0]
    results = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client:
        for _ in range(count):
            await asyncio.sleep(0.5)
            started = time.monotonic()
            async with client.get(
                f"{served.base}/{token}/{mac}.cfg",
                headers={"User-Agent": yealink_ua(mac)},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                await resp.read()
                results.append((resp.status, time.monotonic() - started))
    return results


async def kept_alive(served: Served, fleet: Fleet) -> list[bytes]:
    """A phone's connection idle past the head deadline between two requests: the keep-alive
    timeout's business, not closed; then a slow second head on it: closed."""
    mac, token = fleet.plain[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(phone_head(token, mac))
        statuses = [(await read_answer(reader))[0]]
        await asyncio.sleep(HEAD_TIMEOUT + 1.5)
        writer.write(phone_head(token, mac))
        statuses.append((await read_answer(reader))[0])
        started = time.monotonic()
        writer.write(b"GET /")
        assert await asyncio.wait_for(reader.read(), HEAD_TIMEOUT + LATE + 1) == b""
        assert time.monotonic() - started > HEAD_TIMEOUT - 0.5
        return statuses
    finally:
        writer.close()


async def slow_body(served: Served, fleet: Fleet) -> bytes:
    """An API request whose head is whole at once and whose body takes twice the deadline:
    bodies are not the head deadline's business."""
    body = json.dumps({"line_id": fleet.free_lines[0], "slot": 2}).encode()
    head = (
        f"POST /api/v1/devices/{fleet.plain[-1][0]}/lines HTTP/1.1\r\n"
        "Host: phones.test\r\n"
        f"Authorization: Bearer {fleet.operator}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(head)
        for at in range(len(body)):
            await asyncio.sleep(2 * HEAD_TIMEOUT / len(body))
            writer.write(body[at : at + 1])
        status, _ = await asyncio.wait_for(read_answer(reader), 10)
        return status
    finally:
        writer.close()


@pytest.mark.parametrize("lane", ["true", "false"], ids=["lane", "aiohttp"])
async def test_slow_heads_are_closed_and_phones_served(
    lane: str,
    many_files: None,
    database_url: str,
    tmp_path: Path,
    catalog: Catalog,
    settings: Settings,
) -> None:
    name = f"slow_{'lane' if lane == 'true' else 'aiohttp'}"
    async with seeded(database_url, tmp_path, name, catalog, settings, size=2) as (url, fleet):
        served = Served(url, tmp_path, phone_lane=lane, head_timeout=str(HEAD_TIMEOUT))
        with serving(served):
            await served.ready()
            closed, fetched, kept, body = await asyncio.gather(
                asyncio.gather(
                    *(trickle(served.port, BIG if n % 10 == 0 else SLOW) for n in range(TRICKLERS))
                ),
                phone_fetches(served, fleet, 8),
                kept_alive(served, fleet),
                slow_body(served, fleet),
            )
        assert served.process is not None and served.process.returncode == 0, served.log()[-3000:]
    still_open = [seconds for seconds in closed if seconds is None]
    assert not still_open, f"{len(still_open)} of {TRICKLERS} slow heads still open"
    times = sorted(seconds for seconds in closed if seconds is not None)
    assert times[0] > HEAD_TIMEOUT - 0.5, times[:5]
    assert times[-1] < HEAD_TIMEOUT + LATE, times[-5:]
    assert [status for status, _ in fetched] == [200] * len(fetched)
    assert max(seconds for _, seconds in fetched) < 1.0, fetched
    assert kept == [b"HTTP/1.1 200 OK"] * 2
    assert body == b"HTTP/1.1 201 Created"


async def first_line(port: int, data: bytes) -> bytes:
    """The status line the server answers `data` with (b"": closed without an answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        line = await asyncio.wait_for(reader.readline(), 5)
        return line.rstrip(b"\r\n")
    finally:
        writer.close()


async def test_odd_heads_answered_alike_by_lane_and_aiohttp(
    database_url: str, tmp_path: Path, catalog: Catalog, settings: Settings
) -> None:
    async with seeded(database_url, tmp_path, "odd_heads", catalog, settings, size=1) as (
        url,
        fleet,
    ):
        mac, token = fleet.plain[0]
        many = [f"X-Header-{n}: {n}" for n in range(128)]
        heads = {
            "crlf": phone_head(token, mac),
            "bare lf": phone_head(token, mac, end=b"\n"),
            "one bare lf": phone_head(token, mac).replace(b"\r\nHost", b"\nHost"),
            "bare lf at the end": phone_head(token, mac)[:-2] + b"\n",
            "128 headers": phone_head(token, mac, *many[:126]),
            "129 headers": phone_head(token, mac, *many[:127]),
            "many headers": phone_head(token, mac, *many),
            "bare lf, pipelined": phone_head(token, mac, end=b"\n") + phone_head(token, mac),
        }
        answers: dict[str, dict[str, bytes]] = {}
        for lane in ("true", "false"):
            with serving(Served(url, tmp_path, phone_lane=lane)) as served:
                await served.ready()
                answers[lane] = {
                    case: await first_line(served.port, data) for case, data in heads.items()
                }
    assert answers["true"] == answers["false"]
    expected = {case: b"HTTP/1.0 400 Bad Request" for case in heads}  # as aiohttp refuses
    expected["crlf"] = expected["128 headers"] = b"HTTP/1.1 200 OK"
    assert answers["true"] == expected


@pytest.mark.parametrize("value", ["0", "601", "soon"])
def test_head_timeout_is_checked(value: str) -> None:
    assert Settings.from_env({}).head_timeout == 10
    assert Settings.from_env({"PROVISIONING_HEAD_TIMEOUT": "30"}).head_timeout == 30
    with pytest.raises(SettingsError, match="PROVISIONING_HEAD_TIMEOUT"):
        Settings.from_env({"PROVISIONING_HEAD_TIMEOUT": value})
