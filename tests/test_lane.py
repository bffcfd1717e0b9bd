"""The phone lane (phones.lane) on real sockets: the same answers as aiohttp's route for phone
files, and everything else handed to aiohttp with its bytes intact, in order."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from provisioning import logs
from provisioning.app import create_app
from provisioning.listen import listening
from provisioning.phones import lane as lane_module
from provisioning.phones.request import Reply
from provisioning.security.sources import source_of
from provisioning.settings import Settings
from provisioning.state import SERVICES
from tests.conftest import YEALINK_MAC, YEALINK_UA, World

# Headers that differ from one answer to the next whoever sends them (or that only aiohttp
# sends: its name and version, which the lane keeps to itself).
VARYING = {"date", "x-request-id", "server"}


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    """The app behind the same listener `serve` uses, on a free port: (base URL, app)."""
    settings = replace(settings, host="127.0.0.1", port=0)
    app = create_app(settings)
    async with listening(app, settings, None, logs.AccessLogger) as servers:
        port = servers[0][1].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", app


async def exchange(base: str, raw: bytes, *, answers: int = 1) -> bytes:
    head = raw.startswith(b"HEAD ")
    """Send raw bytes on one connection; read until `answers` whole responses came back."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        data = b""
        async with asyncio.timeout(10):
            while len(split_responses(data, head=head)) < answers:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
        return data
    finally:
        writer.close()


def split_responses(data: bytes, *, head: bool = False) -> list[tuple[int, dict[str, str], bytes]]:
    """Whole HTTP/1.1 responses in `data` (Content-Length framed; none for 304 and HEAD)."""
    found = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return found
        lines = data[:end].decode("latin-1").split("\r\n")
        version, status_text = lines[0].split()[:2]
        status = int(status_text)
        headers = {":version": version}  # compared with the rest: aiohttp echoes the request's
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        if len(data) < end + 4 + length:
            return found
        found.append((status, headers, data[end + 4 : end + 4 + length]))
        data = data[end + 4 + length :]


def get(path: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: phones.example", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer(base: str, raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    return split_responses(await exchange(base, raw), head=raw.startswith(b"HEAD "))


@pytest.fixture
def lane_settings(settings: Settings) -> Settings:
    # Refusals below must not add up to a ban of 127.0.0.1 halfway through.
    return replace(settings, ban_threshold=10_000, ban_network_threshold=10_000)


@pytest.mark.parametrize("flush_ms", [0, 500])
async def test_phone_answers_are_the_same_as_aiohttp(
    lane_settings: Settings, world: World, flush_ms: int
) -> None:
    """Each request to the lane and to aiohttp alone (PHONE_LANE off): status, headers but the
    varying ones, body. flush 0 makes every fetch wait for its sighting (the task path), 500
    lets most answer within the read callback."""
    token, ua = world.yealink_token, f"User-Agent: {YEALINK_UA}"
    async with serving(replace(lane_settings, sighting_flush_ms=flush_ms)) as (lane_url, _):
        first = split_responses(await exchange(lane_url, get(f"/{token}/{YEALINK_MAC}.cfg", ua)))
        etag = first[0][1]["etag"]
        cases = [
            get(f"/{token}/{YEALINK_MAC}.cfg", ua),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, method="HEAD"),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, f"If-None-Match: {etag}"),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, 'If-None-Match: "other"'),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, "Connection: close"),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, version="1.0"),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, "Connection: keep-alive", version="1.0"),
            get(f"/{token}/y000000000108.cfg", ua),
            get(f"/{token}/001565000000.cfg", ua),  # another MAC than the token's device
            get(f"/{token}/nothing-known.txt", ua),
            get(f"/{'A' * 32}/{YEALINK_MAC}.cfg", ua),  # a token nobody has
            get(f"/{YEALINK_MAC}.cfg", ua),  # MAC only: refused by default
            get("/0015654aa938.cfg", "User-Agent: curl/8.0"),
            # Not the lane's to answer: aiohttp's answers, whichever listener.
            get(f"/{YEALINK_MAC}.cfg?token={token}", ua),
            get(f"/{token}/%30015654aa937.cfg", ua),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, "Expect: 100-continue"),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, "Connection: Upgrade", "Upgrade: h2c"),
            get(f"/{token}/{YEALINK_MAC}.cfg", ua, "X-Big: " + "a" * 9000),
            b"HELLO THERE\r\n\r\n",
        ]
        lane_answers = [await answer(lane_url, case) for case in cases]
    async with serving(replace(lane_settings, sighting_flush_ms=flush_ms, phone_lane=False)) as (
        plain_url,
        _,
    ):
        plain_answers = [await answer(plain_url, case) for case in cases]
    assert [a[0][0] for a in lane_answers] == [
        200, 200, 304, 200, 200, 200, 200, 200, 404, 404, 404, 404, 404, 200, 200,
        100, plain_answers[-3][0][0], plain_answers[-2][0][0], 400,
    ]  # fmt: skip
    for number, (case, ours, theirs) in enumerate(
        zip(cases, lane_answers, plain_answers, strict=True)
    ):
        assert len(ours) == len(theirs) >= 1, case
        for (status, headers, body), (their_status, their_headers, their_body) in zip(
            ours, theirs, strict=True
        ):
            assert status == their_status, case
            assert body == their_body, case
            strip = lambda h: {k: v for k, v in h.items() if k not in VARYING}  # noqa: E731
            assert strip(headers) == strip(their_headers), case
            if number < 13:  # the lane's own answers
                assert re.fullmatch(r"[0-9a-f]{16}", headers["x-request-id"]), case
                assert "server" not in headers  # the lane does not name its software
    assert lane_answers[1][0][2] == b""  # HEAD: the length, no body
    assert lane_answers[5][0][1][":version"] == "HTTP/1.0"
    assert int(lane_answers[1][0][1]["content-length"]) == len(lane_answers[0][0][2])


async def test_other_requests_are_handed_to_aiohttp_in_order(
    lane_settings: Settings, world: World
) -> None:
    """Pipelined on one connection: a phone file, health, the API (with a body), another
    phone file; each answered, in order, the connection kept."""
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    body = b'{"mac": "00:15:65:4a:a9:37"}'
    raw = (
        get(path, f"User-Agent: {YEALINK_UA}")
        + get(path, f"User-Agent: {YEALINK_UA}")
        + get("/healthz")
        + (
            b"POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        + body
        + get(path, f"User-Agent: {YEALINK_UA}")
    )
    async with serving(lane_settings) as (url, _):
        answers = split_responses(await exchange(url, raw, answers=5))
    assert [status for status, _, _ in answers] == [200, 200, 200, 401, 200]
    assert answers[0][2] == answers[1][2] == answers[4][2]
    assert answers[0][2].startswith(b"#!version:1.0.0.1")
    assert b'"status"' in answers[2][2]
    assert "application/problem+json" in answers[3][1]["content-type"]


async def test_a_head_sent_a_byte_at_a_time(lane_settings: Settings, world: World) -> None:
    async with serving(lane_settings) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        for byte in get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", f"User-Agent: {YEALINK_UA}"):
            writer.write(bytes([byte]))
            await writer.drain()
        data = b""
        async with asyncio.timeout(10):
            while not split_responses(data):
                data += await reader.read(65536)
        writer.close()
    assert split_responses(data)[0][0] == 200
    assert split_responses(data)[0][2].startswith(b"#!version")


async def test_bans_shedding_metrics_and_access_log(
    lane_settings: Settings, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    path = f"/{world.yealink_token}/{YEALINK_MAC}.cfg"
    request = get(path, f"User-Agent: {YEALINK_UA}")
    async with serving(lane_settings) as (url, app):
        services = app[SERVICES]
        assert split_responses(await exchange(url, request))[0][0] == 200
        app[logs.ACCESS_LOG].flush()  # written in batches: now, not a quarter of a second later
        lines = capsys.readouterr().err.splitlines()
        assert any(
            f'INFO aiohttp.access 127.0.0.1 "GET /***/{YEALINK_MAC}.cfg" 200' in line
            for line in lines
        ), lines
        assert not any(world.yealink_token in line for line in lines)

        services.load.inflight = services.load.max_inflight
        shed = split_responses(await exchange(url, request))
        services.load.inflight = 0
        assert shed[0][0] == 503 and shed[0][1]["retry-after"] == "10"

        source = source_of("127.0.0.1")
        assert source is not None
        services.guard.bans.add(source.address, datetime.now(UTC) + timedelta(hours=1))
        banned = split_responses(await exchange(url, request))
        services.guard.bans.remove(source.address)
        assert banned[0][0] == 403

        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
            scraped = await resp.text()
        counted = re.search(
            r'provisioning_phone_fetches_total\{family="yealink",status="200"\} (\d+)', scraped
        )
        assert counted is not None and float(counted[1]) >= 1
        assert re.search(
            r'provisioning_phone_fetches_total\{family="none",status="403"\} 1', scraped
        )


async def test_request_id_from_a_trusted_proxy_only(lane_settings: Settings, world: World) -> None:
    import netaddr

    request = get(
        f"/{world.yealink_token}/{YEALINK_MAC}.cfg",
        f"User-Agent: {YEALINK_UA}",
        "X-Request-ID: proxy-given-id-1",
    )
    async with serving(lane_settings) as (url, _):
        untrusted = split_responses(await exchange(url, request))[0][1]["x-request-id"]
    trusted_settings = replace(lane_settings, trusted_proxies=netaddr.IPSet(["127.0.0.1/32"]))
    async with serving(trusted_settings) as (url, _):
        trusted = split_responses(await exchange(url, request))[0][1]["x-request-id"]
    assert untrusted != "proxy-given-id-1"
    assert trusted == "proxy-given-id-1"


async def test_idle_connections_close_and_shutdown_closes_the_rest(
    lane_settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lane_module, "IDLE_SECONDS", 0.2)
    monkeypatch.setattr(lane_module, "SWEEP_SECONDS", 0.1)
    request = get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", f"User-Agent: {YEALINK_UA}")
    async with serving(lane_settings) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        data = b""
        async with asyncio.timeout(10):
            while not split_responses(data):
                data += await reader.read(65536)
            # Idle past the timeout: the server closes its side.
            assert await reader.read(65536) == b""
        writer.close()

        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await writer.drain()
        monkeypatch.setattr(lane_module, "IDLE_SECONDS", 3600)
        async with asyncio.timeout(10):
            data = b""
            while not split_responses(data):
                data += await reader.read(65536)
    # Leaving `serving` shut the lane down: the kept-alive connection is closed.
    async with asyncio.timeout(10):
        assert await reader.read(65536) == b""
    writer.close()


class FakeTransport:
    """Records flow control calls; takes what is written."""

    def __init__(self, expected: int) -> None:
        self.written: list[bytes] = []
        self.reading = True
        self.expected = expected
        self.all_written = asyncio.Event()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 5060) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if len(self.written) >= self.expected:
            self.all_written.set()

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def test_a_client_that_does_not_read_is_not_read_either(
    lane_settings: Settings, world: World
) -> None:
    """Pipelined requests while the transport's buffer is full: nothing answered, reading
    paused once 64 KiB wait; answered in order and read again once the client reads."""
    request = get(f"/{world.yealink_token}/{YEALINK_MAC}.cfg", f"User-Agent: {YEALINK_UA}")
    async with serving(replace(lane_settings, sighting_flush_ms=500)) as (_, app):
        lane = lane_module.Lane(app, lambda: pytest.fail("nothing to hand over"))  # type: ignore[arg-type,return-value]
        connection = lane.connection()
        count = lane_module.MAX_BUFFERED // len(request) + 2
        transport = FakeTransport(count)
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.pause_writing()
        for _ in range(count):
            connection.data_received(request)
        assert transport.written == [] and not transport.reading
        connection.resume_writing()
        async with asyncio.timeout(10):
            await transport.all_written.wait()
        assert transport.reading and len(transport.written) == count
        assert all(data.startswith(b"HTTP/1.1 200 OK\r\n") for data in transport.written)


@pytest.mark.parametrize("at_once", [False, True], ids=["after-grace", "cancelled-at-once"])
async def test_fetches_that_wait_fail_or_outlive_shutdown(
    lane_settings: Settings, monkeypatch: pytest.MonkeyPatch, at_once: bool
) -> None:
    """Every fetch runs in its task (eager from Python 3.12): one that waits is answered in
    order on its connection, in its request's context; one that fails is a 503 with Retry-After
    that closes the connection (never a 500: a phone keeps its settings and asks again); one
    still waiting past the shutdown grace is cancelled (its cleanup runs, even when cancelled
    before its task ever ran) and its connection closed. Bytes arrive from the event loop, as
    from a socket: no task is current until the lane makes one."""
    tasks: list[asyncio.Task[Any] | None] = []
    cleaned: list[str] = []

    async def fake_fetch(services: Any, request: Any, file_name: str, token: Any) -> Reply:
        if file_name == "fails.cfg":
            raise RuntimeError("boom")
        tasks.append(asyncio.current_task())
        if file_name == "waits.cfg":
            await asyncio.sleep(0.05)
            return Reply(200, [], logs.request_id.get().encode(), "text/plain")
        if file_name == "forever.cfg":
            try:
                await asyncio.sleep(3600)
            finally:
                cleaned.append(file_name)
        return Reply(200, [], b"now", "text/plain")

    def arrive(connection: lane_module.PhoneConnection, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(connection.data_received, data)

    monkeypatch.setattr(lane_module, "fetch", fake_fetch)
    async with serving(lane_settings) as (_, app):
        lane = lane_module.Lane(app, lambda: pytest.fail("nothing to hand over"))  # type: ignore[arg-type,return-value]
        transport = FakeTransport(3)
        connection = lane.connection()
        connection.connection_made(transport)  # type: ignore[arg-type]
        arrive(
            connection,
            get("/waits.cfg", "X-Request-Id: ignored") + get("/now.cfg") + get("/waits.cfg"),
        )
        async with asyncio.timeout(10):
            await transport.all_written.wait()
        answers = split_responses(b"".join(transport.written))
        assert [(status, body[:3]) for status, _, body in answers] == [
            (200, answers[0][1]["x-request-id"].encode()[:3]),
            (200, b"now"),
            (200, answers[2][1]["x-request-id"].encode()[:3]),
        ]
        # The context the request id was set in, not a neighbour's.
        assert answers[0][2].decode() == answers[0][1]["x-request-id"]
        assert answers[2][2].decode() == answers[2][1]["x-request-id"]
        assert answers[0][2] != answers[2][2]

        failing = FakeTransport(1)
        connection = lane.connection()
        connection.connection_made(failing)  # type: ignore[arg-type]
        arrive(connection, get("/fails.cfg") + get("/now.cfg"))
        async with asyncio.timeout(10):
            await failing.all_written.wait()
        failed = split_responses(b"".join(failing.written))
        assert [status for status, _, _ in failed] == [503]
        assert failed[0][1]["retry-after"] == "30"
        assert failed[0][1]["connection"] == "close" and failing.closed

        stuck = FakeTransport(1)
        connection = lane.connection()
        connection.connection_made(stuck)  # type: ignore[arg-type]
        connection.data_received(get("/forever.cfg"))
        assert lane.busy == 1 and not stuck.written
        if at_once:
            # Cancelled before its task ever ran: an eager task's fetch has begun and must clean
            # up; a plain task's fetch never began.
            (task,) = lane.tasks
            task.cancel()
            async with asyncio.timeout(10):  # its answer is written by its done callback, first
                await asyncio.gather(task, return_exceptions=True)
            began = lane_module.EAGER
        else:
            await asyncio.sleep(0.05)  # its task has run, and waits
            await lane.shutdown(0.1)
            began = True
            assert stuck.closed
        assert cleaned == (["forever.cfg"] if began else []) and lane.busy == 0
        assert [status for status, _, _ in split_responses(b"".join(stuck.written))] == [503]
        # Every step of every fetch ran inside a task (what the ORM's pool wait needs).
        assert tasks and all(task is not None for task in tasks)
