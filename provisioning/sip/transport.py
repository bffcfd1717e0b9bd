"""SIP over UDP (with RFC 3261 §17.1.2 non-INVITE client transaction timers) and TCP.

One `SipEndpoint` owns one UDP socket: it sends requests and matches their responses by the top
Via branch, retransmitting until a final response or Timer F; incoming requests go to a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from provisioning.sip import digest
from provisioning.sip.message import Message, SipParseError, new_branch, param, parse

log = logging.getLogger(__name__)

Address = tuple[str, int]
RequestHandler = Callable[[Message, Address], Awaitable[Message | None]]


@dataclass(frozen=True)
class Timers:
    t1: float = 0.5
    t2: float = 4.0

    @property
    def timer_f(self) -> float:
        return 64 * self.t1


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.endpoint._received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction times out or is retried.
        log.debug("sip: socket error %s", exc)


class SipEndpoint:
    def __init__(self, timers: Timers | None = None) -> None:
        self.timers = timers or Timers()
        self.transport: asyncio.DatagramTransport | None = None
        self.handler: RequestHandler | None = None
        self._pending: dict[str, asyncio.Queue[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def open(self, host: str = "127.0.0.1", port: int = 0) -> SipEndpoint:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for task in self._tasks:
            task.cancel()

    def _received(self, data: bytes, addr: Address) -> None:
        try:
            message = parse(data)
        except SipParseError:
            return
        if message.is_response:
            branch = param(message.get("via") or "", "branch") or ""
            queue = self._pending.get(branch)
            if queue is not None:
                queue.put_nowait(message)
            return
        if self.handler is not None:
            task = asyncio.get_running_loop().create_task(self._answer(message, addr))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Message, addr: Address) -> None:
        assert self.handler is not None
        response = await self.handler(request, addr)
        if response is not None and self.transport is not None:
            self.transport.sendto(response.encode(), addr)

    def send(self, message: Message, addr: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(message.encode(), addr)

    async def request(self, message: Message, addr: Address) -> Message | None:
        """Send a non-INVITE request; the final response, or None at Timer F (silence)."""
        branch = param(message.get("via") or "", "branch") or ""
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self._pending[branch] = queue
        data = message.encode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timers.timer_f
        interval = self.timers.t1
        try:
            assert self.transport is not None
            self.transport.sendto(data, addr)
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    response = await asyncio.wait_for(queue.get(), min(interval, remaining))
                except TimeoutError:
                    self.transport.sendto(data, addr)  # Timer E: retransmit
                    interval = min(interval * 2, self.timers.t2)
                    continue
                if response.status >= 200:
                    return response
                interval = self.timers.t2  # provisional: keep going at T2
        finally:
            self._pending.pop(branch, None)


async def tcp_request(message: Message, addr: Address, limit: float) -> Message | None:
    """Send one request over a fresh TCP connection and read its final response within
    `limit` seconds (Timer F)."""
    timeout = limit
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(message.encode())
        await writer.drain()
        async with asyncio.timeout(timeout):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() in (b"content-length", b"l"):
                        length = int(value.strip() or 0)
                body = await reader.readexactly(length) if length else b""
                response = parse(head + body)
                if response.is_response and response.status >= 200:
                    return response
    except (OSError, TimeoutError, asyncio.IncompleteReadError, SipParseError, ValueError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


Sender = Callable[[Message], Awaitable[Message | None]]


async def request_with_auth(
    send: Sender, message: Message, username: str, password: str
) -> Message | None:
    """Send; on a 401/407 challenge, send again once with digest credentials (new branch,
    CSeq + 1). Returns the final response, or None on silence."""
    response = await send(message)
    if response is None or response.status not in (401, 407):
        return response
    header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
    challenge = digest.parse_challenge(response.get(header) or "")
    value = digest.authorization(
        challenge, method=message.method, uri=message.uri, username=username, password=password
    )
    if value is None:
        return response
    number, _, method = (message.get("cseq") or "1 X").partition(" ")
    headers: list[tuple[str, str]] = []
    for key, current in message.headers:
        lowered = key.lower()
        if lowered in ("via", "v") and not any(h[0].lower() in ("via", "v") for h in headers):
            sent_by = current.split(";", 1)[0]
            current = f"{sent_by};branch={new_branch()};rport"
        elif lowered == "cseq":
            current = f"{int(number) + 1} {method}"
        elif lowered in (answer.lower(),):
            continue
        headers.append((key, current))
    headers.append((answer, value))
    return await send(Message(message.first_line, headers, message.body))
