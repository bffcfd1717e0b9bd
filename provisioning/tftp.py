"""A read-only TFTP listener for phones that fetch their files over TFTP only (Zenitel).

RFC 1350 read requests in `octet` (and `netascii`) mode, with the options of RFC 2347: `blksize`
(RFC 2348), `tsize` and `timeout` (RFC 2349). Write requests are refused with a TFTP error; so is
every other file name than those a family.toml marks `tftp = true`. Each transfer runs from a port
of its own (its TID), lock-step: a block is sent again when its ACK does not come within the
timeout, at most RETRIES times; a duplicate ACK never makes a block go twice (the "Sorcerer's
Apprentice" bug, RFC 1123 4.2.3.1).

TFTP carries no token and no credential: the file name (a MAC) is all a request says. So only
sources in TFTP_NETWORKS get an answer at all (anyone else's datagrams are dropped unanswered),
and what they get is decided by the phone path's own `fetch` (bans, scanner defence, binding and
first-contact windows, sightings and proof of applied changes), told that a MAC is enough for
this request (`mac_only`: as with ALLOW_MAC_ONLY on, and no digest challenge), which no HTTP
request ever is. A UDP source proves nothing either: the sighting, the proof and the binding are
recorded only once the last block is acknowledged (`fetch`'s `later`), so a request that is never
answered changes nothing. One source holds at most PER_SOURCE transfers, each for at most
TRANSFER_SECONDS. README "TFTP (Zenitel)".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import NamedTuple

import netaddr
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from provisioning.devices.identify import match_file
from provisioning.phones.files import Later, fetch
from provisioning.phones.request import Reply
from provisioning.state import SERVICES, Services

log = logging.getLogger(__name__)

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
# Error codes (RFC 1350, RFC 2347).
NOT_DEFINED, NOT_FOUND, ACCESS_VIOLATION, ILLEGAL = 0, 1, 2, 4
BLOCK = 512  # RFC 1350's block size, without a `blksize` option
MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464  # RFC 2348
TIMEOUT = 2.0  # seconds before a block is sent again, without a `timeout` option
# RFC 2349 allows 1-255 s, and an OACK must repeat the value asked: above MAX_TIMEOUT the option
# is left out (the client keeps its default), so that one client cannot hold a transfer for
# minutes per block.
MIN_TIMEOUT, MAX_TIMEOUT = 1, 10
MAX_DIGITS = 10  # an option value longer than this is not a number we could take (nor convert)
RETRIES = 5  # sends of a block after the first, before the transfer is given up
MAX_TRANSFERS = 256  # at once per process; beyond, an error the phone retries after
PER_SOURCE = 4  # at once from one address: a station asks for one file at a time
TRANSFER_SECONDS = 60.0  # the longest a transfer may send for, however the client paces it
WRITES_LOGGED_EVERY = 60.0  # seconds: write requests are counted, and logged once a minute
MAX_QUEUED = 16  # datagrams waiting on one transfer's port (a client sends one at a time)
MODES = ("octet", "netascii")


class TftpError(Exception):
    """What the client is told instead of its file: a TFTP error code and a message (never
    anything the request did not already say)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReadRequest(NamedTuple):
    file_name: str
    mode: str
    options: dict[str, str]  # lower-case names, as sent


def parse_request(packet: bytes) -> ReadRequest:
    """An RRQ's file name, mode and options (RFC 2347); TftpError when it is malformed."""
    fields = packet[2:].split(b"\0")
    if len(fields) < 3 or fields[-1] != b"" or len(fields) % 2 == 0:
        raise TftpError(ILLEGAL, "malformed request")
    try:
        texts = [field.decode("ascii") for field in fields[:-1]]
    except UnicodeDecodeError:
        raise TftpError(NOT_FOUND, "file not found") from None
    name, mode = texts[0], texts[1].lower()
    options = {texts[i].lower(): texts[i + 1] for i in range(2, len(texts), 2)}
    return ReadRequest(name, mode, options)


def error_packet(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode("ascii") + b"\0"


def netascii(body: bytes) -> bytes:
    """RFC 764's NVT ASCII, as netascii mode sends text: CR becomes CR NUL, LF becomes CR LF."""
    return body.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


class Negotiated(NamedTuple):
    blksize: int
    timeout: float
    acknowledged: dict[str, str]  # what the OACK says; empty: no OACK, DATA 1 at once


def _number(value: str | None) -> int | None:
    """An option's value as a number; None unless it is 1 to MAX_DIGITS ASCII digits (a longer
    one is no value we take, and `int()` refuses strings past 4,300 digits)."""
    if value is None or not 0 < len(value) <= MAX_DIGITS or not value.isdigit():
        return None
    return int(value)


def negotiate(options: Mapping[str, str], size: int) -> Negotiated:
    """The options this server takes, as RFC 2347 lets a server: those it does not know, or
    whose value it cannot take, are left out of the OACK (the client then uses the default)."""
    blksize, timeout = BLOCK, TIMEOUT
    acknowledged: dict[str, str] = {}
    asked = _number(options.get("blksize"))
    if asked is not None and asked >= MIN_BLKSIZE:
        blksize = min(asked, MAX_BLKSIZE)
        acknowledged["blksize"] = str(blksize)
    asked = _number(options.get("timeout"))
    if asked is not None and MIN_TIMEOUT <= asked <= MAX_TIMEOUT:
        timeout = float(asked)
        acknowledged["timeout"] = str(asked)
    if _number(options.get("tsize")) is not None:
        acknowledged["tsize"] = str(size)
    return Negotiated(blksize, timeout, acknowledged)


class TftpRequest:
    """A `PhoneRequest` (phones.request) for a TFTP read: a GET of `/<file>` from the client's
    address, with no header (no User-Agent, no credential) and no TLS."""

    __slots__ = ("headers", "method", "raw_path", "transport")

    def __init__(self, file_name: str, peer: tuple[str, int]) -> None:
        self.method = "GET"
        self.raw_path = f"/{file_name}"
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
        # Only `get_extra_info("peername")` is ever asked of it (phones.client.peer_address).
        self.transport: asyncio.Transport | None = asyncio.Transport({"peername": peer})


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, server: TftpServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("tftp listener: %s", exc)


class _Channel(asyncio.DatagramProtocol):
    """One transfer's own port, connected to its client: the kernel drops anyone else's
    datagrams, so another TID never reaches it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue(MAX_QUEUED)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: the client is gone.
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(exc)


class TftpServer:
    """The listener of one server process, its transfers and their counts."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.networks: netaddr.IPSet = services.settings.tftp_networks
        self.transport: asyncio.DatagramTransport | None = None
        self.host = ""
        self.port = 0
        self.transfers: set[asyncio.Task[None]] = set()
        self.by_source: Counter[str] = Counter()  # transfers under way per client address
        # Since start: datagrams dropped (source not allowed), files sent, refusals, transfers
        # not finished (timed out, the client's error or gone), requests turned away (busy,
        # or PER_SOURCE under way from that address), requests from a banned source, writes.
        self.counts = {
            "dropped": 0, "sent": 0, "refused": 0, "unfinished": 0, "busy": 0, "banned": 0,
            "writes": 0,
        }  # fmt: skip
        self.writes_logged = (-WRITES_LOGGED_EVERY, 0)  # (when, `writes` count then)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=(host, port), reuse_port=reuse_port or None
        )
        self.transport = transport
        self.host = host
        self.port = transport.get_extra_info("sockname")[1]

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for task in list(self.transfers):
            task.cancel()
        if self.transfers:
            await asyncio.gather(*self.transfers, return_exceptions=True)

    def allowed(self, host: str) -> bool:
        try:
            address = netaddr.IPAddress(host)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            return False
        if address.is_ipv4_mapped():
            address = address.ipv4()
        return address in self.networks

    def received(self, data: bytes, addr: tuple[str, int]) -> None:
        """A datagram on the listening port: a request from an allowed source starts a
        transfer; anything else from there is answered with an error; the rest of the world
        gets nothing (no reflection, nothing learned)."""
        if not self.allowed(addr[0]):
            self.counts["dropped"] += 1
            return
        if len(data) < 2:
            return
        (opcode,) = struct.unpack("!H", data[:2])
        if opcode == WRQ:
            self._answer_error(addr, ACCESS_VIOLATION, "read-only server: writes are refused")
            self._count_write(addr[0])
            return
        if opcode != RRQ:
            return  # a stray DATA, ACK or ERROR for a transfer long gone
        try:
            request = parse_request(data)
        except TftpError as exc:
            self._answer_error(addr, exc.code, exc.message)
            return
        # Banned: refused here, before a port and a task are spent on it (as HTTP answers 403).
        if self.services.guard.banned(TftpRequest(request.file_name, addr)):
            self.counts["banned"] += 1
            self._answer_error(addr, ACCESS_VIOLATION, "access violation")
            return
        host = addr[0]
        if len(self.transfers) >= MAX_TRANSFERS or self.by_source[host] >= PER_SOURCE:
            self.counts["busy"] += 1
            self._answer_error(addr, NOT_DEFINED, "server busy, try again later")
            return
        task = asyncio.get_running_loop().create_task(self._transfer(request, addr))
        self.transfers.add(task)
        self.by_source[host] += 1
        task.add_done_callback(lambda done: self._finished(done, host))

    def _finished(self, task: asyncio.Task[None], host: str) -> None:
        self.transfers.discard(task)
        self.by_source[host] -= 1
        if self.by_source[host] <= 0:
            del self.by_source[host]

    def _count_write(self, host: str) -> None:
        """Count a write request; log one line a minute at most, however many come (each is
        a datagram anyone in TFTP_NETWORKS can send)."""
        self.counts["writes"] += 1
        now = time.monotonic()
        logged_at, count_then = self.writes_logged
        if now - logged_at >= WRITES_LOGGED_EVERY:
            writes = self.counts["writes"]
            log.info(
                "tftp: %d write request(s) refused since the last report, the latest from %s",
                writes - count_then,
                host,
            )
            self.writes_logged = (now, writes)

    def _answer_error(self, addr: tuple[str, int], code: int, message: str) -> None:
        if self.transport is not None:
            self.transport.sendto(error_packet(code, message), addr)

    async def _transfer(self, request: ReadRequest, addr: tuple[str, int]) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            # An IPv6 peer comes as (host, port, flowinfo, scope): the endpoint takes two.
            transport, channel = await loop.create_datagram_endpoint(
                _Channel, local_addr=(self.host, 0), remote_addr=(addr[0], addr[1])
            )
        except OSError as exc:
            log.warning("tftp %s: no port for a transfer: %s", addr[0], exc)
            return
        outcome = "sent"
        size = 0
        later: Later = []
        try:
            try:
                body = await self._file(request, addr, later)
            except TftpError as exc:
                self.counts["refused"] += 1
                outcome = f"refused ({exc.message})"
                transport.sendto(error_packet(exc.code, exc.message))
                return
            if request.mode == "netascii":
                body = netascii(body)
            size = len(body)
            negotiated = negotiate(request.options, size)
            # A client may ACK each block just before its timeout: however it paces them, the
            # port and the slot are given back after TRANSFER_SECONDS.
            try:
                async with asyncio.timeout(TRANSFER_SECONDS):
                    outcome = await _send(transport, channel, body, negotiated)
            except TimeoutError:
                outcome = "too slow"
                transport.sendto(error_packet(NOT_DEFINED, "transfer too slow, given up"))
            self.counts["sent" if outcome == "sent" else "unfinished"] += 1
            if outcome == "sent":
                # The last block was acknowledged: only now is the station seen, the change
                # proven and the station bound (a UDP source proves nothing before).
                for record in later:
                    await record()
        except Exception:
            # A bug of ours: its traceback for us, an error for the station (which retries).
            log.exception("tftp %s: transfer of %r failed", addr[0], request.file_name[:128])
            outcome = "failed"
            transport.sendto(error_packet(NOT_DEFINED, "server error, try again later"))
        finally:
            transport.close()
            if self.services.settings.access_log:
                # The file name says a MAC, which is no secret here; the body is never logged.
                log.info(
                    "tftp %s RRQ %r %r: %s, %d bytes, %.3f s",
                    addr[0],
                    request.file_name[:128],
                    request.mode[:16],
                    outcome,
                    size,
                    time.monotonic() - started,
                )

    async def _file(self, request: ReadRequest, addr: tuple[str, int], later: Later) -> bytes:
        """The file's bytes, as the phone path would answer them over HTTP, or TftpError; what
        to record once it has arrived is appended to `later`."""
        if request.mode not in MODES:
            raise TftpError(ILLEGAL, "only octet and netascii modes")
        name = request.file_name.removeprefix("/")
        matches = match_file(self.services.catalog, name) if "/" not in name else []
        # Only names that every family they fit serves over TFTP: `<mac>.cfg` of a desk phone
        # is never handed out by MAC alone.
        if not matches or not all(match.spec.tftp for match in matches):
            raise TftpError(NOT_FOUND, "file not found")
        phone = TftpRequest(name, addr)
        services = self.services
        load = services.load
        if load.overloaded():
            load.shed += 1
            raise TftpError(NOT_DEFINED, "server busy, try again later")
        load.inflight += 1
        try:
            # A TFTP client carries neither a token nor an answer to a challenge: its MAC is all
            # it can say, and this listener (for TFTP_NETWORKS only) takes it.
            reply: Reply = await fetch(services, phone, name, None, mac_only=True, later=later)
        finally:
            load.inflight -= 1
        if reply.status == 200:
            return reply.body
        if reply.status == 503:
            raise TftpError(NOT_DEFINED, "server busy, try again later")
        # 404 (and a 401, were a challenge ever made by mistake: `mac_only` asks for none): the
        # same answer for unknown and refused, as over HTTP.
        raise TftpError(NOT_FOUND, "file not found")


async def _send(
    transport: asyncio.DatagramTransport,
    channel: _Channel,
    body: bytes,
    negotiated: Negotiated,
) -> str:
    """Lock-step sending: OACK (when options were taken) then DATA blocks, each until its ACK;
    "sent", or why it stopped."""
    if negotiated.acknowledged:
        oack = struct.pack("!H", OACK) + b"".join(
            f"{name}\0{value}\0".encode("ascii") for name, value in negotiated.acknowledged.items()
        )
        stopped = await _exchange(transport, channel, oack, 0, negotiated.timeout)
        if stopped:
            return stopped
    size = negotiated.blksize
    # The last block is shorter than blksize, empty when the file fills its blocks exactly.
    count = len(body) // size + 1
    for number in range(1, count + 1):
        block = number & 0xFFFF  # rolls over to 0 after 65535, as clients expect
        packet = struct.pack("!HH", DATA, block) + body[(number - 1) * size : number * size]
        stopped = await _exchange(transport, channel, packet, block, negotiated.timeout)
        if stopped:
            return stopped
    return "sent"


async def _exchange(
    transport: asyncio.DatagramTransport,
    channel: _Channel,
    packet: bytes,
    block: int,
    seconds: float,
) -> str:
    """Send `packet` until ACK `block` comes (""), waiting `seconds` for it each time, or say
    why not."""
    loop = asyncio.get_running_loop()
    for _ in range(RETRIES + 1):
        transport.sendto(packet)
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                answer = await asyncio.wait_for(channel.queue.get(), left)
            except TimeoutError:
                break
            if isinstance(answer, Exception):
                return f"client unreachable ({type(answer).__name__})"
            if len(answer) < 4:
                continue
            opcode, number = struct.unpack("!HH", answer[:4])
            if opcode == ERROR:
                return f"client error {number}"
            if opcode == ACK and number == block:
                return ""
            # An older ACK (a duplicate) or anything else: wait on, never send again for it.
    return "timed out"


TFTP: web.AppKey[TftpServer] = web.AppKey("tftp", TftpServer)


async def tftp_ctx(app: web.Application) -> AsyncIterator[None]:
    """The listener's life, a cleanup context after the app's services: nothing when
    TFTP_LISTEN is unset."""
    services = app[SERVICES]
    settings = services.settings
    if settings.tftp_listen is None:
        yield
        return
    host, port = settings.tftp_listen
    server = TftpServer(services)
    await server.start(host, port, reuse_port=settings.workers > 1)
    app[TFTP] = server
    if not settings.tftp_networks:
        log.warning("TFTP on %s:%d answers nobody: TFTP_NETWORKS is empty", host, server.port)
    else:
        log.info("TFTP on %s:%d for %s", host, server.port, settings.tftp_networks)
    try:
        yield
    finally:
        await server.close()
