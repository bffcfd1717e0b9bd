"""The read-only TFTP listener (provisioning.tftp), driven by a real TFTP client, curl, over
loopback, and by a bare UDP socket where a test needs to see packets (options acknowledged,
retransmission): the file a Zenitel station gets is the very bytes HTTP answers; a source outside
TFTP_NETWORKS gets nothing; writes, unknown files and every file that is not a TFTP family's are
TFTP errors; the fetch is a sighting and proves a change applied, as an HTTP fetch does; misses
count towards a ban, as over HTTP. A MAC is enough over TFTP only: the same file asked by MAC over
HTTP (aiohttp's route and the phone lane), from the same app, is still refused."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import netaddr
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from provisioning import accounts, logs, tftp
from provisioning.app import create_app
from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory, make_engine, make_session_factory
from provisioning.db.models import Device, DeviceBinding, Push, Sighting
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.listen import listening
from provisioning.phones.auth import Decision, Evidence, Policy, default_authorizer, parse_proofs
from provisioning.settings import Settings
from provisioning.tftp import TFTP, TftpServer, negotiate, netascii, parse_request, tftp_ctx
from tests.conftest import YEALINK_MAC, World
from tests.peers.require import find_binary, free_port
from tests.phone_server import Served, fresh_database, serving

MAC = "0013cb010203"
FILE = "ipst_config_00_13_cb_01_02_03.cfg"
UNKNOWN = "ipst_config_00_13_cb_09_09_09.cfg"
# curl's exit codes for TFTP errors 1 and 2 (libcurl CURLE_TFTP_NOTFOUND, CURLE_TFTP_PERM).
NOT_FOUND, PERMISSION, TIMED_OUT = 68, 69, 28


def curl_binary() -> str:
    """curl with TFTP; missing, the test is skipped with the reason (failed under CI=true)."""
    found = find_binary("curl")
    reason = "curl not found; install Debian package 'curl'"
    if found is not None:
        version = subprocess.run([found, "-V"], capture_output=True, text=True, check=False)
        if "tftp" in version.stdout.lower().split("protocols:", 1)[-1].split("\n", 1)[0]:
            return found
        reason = f"{found} was built without TFTP (`curl -V` lists no tftp protocol)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: the TFTP tests need a real TFTP client in CI", pytrace=False)
    pytest.skip(reason)


async def curl(*args: str, limit: float = 10) -> tuple[int, bytes, str]:
    """curl as a subprocess, awaited: the server answers on this very event loop."""
    process = await asyncio.create_subprocess_exec(
        curl_binary(), "--silent", "--show-error", "--max-time", str(limit), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err.decode(errors="replace")


@dataclass
class Station:
    token: str
    device_id: int


@pytest.fixture
async def station(sessions: SessionFactory, settings: Settings, catalog: Catalog) -> Station:
    """A Zenitel station with its line, added the way an operator does."""
    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        account = await accounts.create_account(session, settings, "Zenitel owner")
        line = await accounts.create_line(
            session, settings, cipher, account.id, "+33100000009", password="pw-station-9",
            auth_username="auth-station-9", registrar="udp:pbx-z.example.net:5060",
        )  # fmt: skip
        device, token = await inventory.add_device(
            session, catalog, cipher, MAC, "zenitel-ip_station", account.id
        )
        await inventory.assign_line(session, MAC, line.id)
        return Station(token, device.id)


Serve = Callable[..., Awaitable[tuple[TestClient, TftpServer]]]


@pytest.fixture
def serve(aiohttp_client: Any, settings: Settings, sessions: SessionFactory) -> Serve:
    """The app with its TFTP listener on a free loopback port, started by the same cleanup
    context `serve` appends."""

    async def start(
        networks: str = "127.0.0.0/8", host: str = "127.0.0.1", **more: Any
    ) -> tuple[TestClient, TftpServer]:
        tftp_settings = replace(
            settings,
            tftp_listen=(host, 0),
            tftp_networks=netaddr.IPSet(networks.split(",")),
            **more,
        )
        app = create_app(tftp_settings)
        app.cleanup_ctx.append(tftp_ctx)
        client = await aiohttp_client(app)
        return client, app[TFTP]

    return start


def url(server: TftpServer, name: str) -> str:
    return f"tftp://127.0.0.1:{server.port}/{name}"


async def http_body(client: TestClient, station: Station) -> bytes:
    response = await client.get(f"/{station.token}/{FILE}")
    assert response.status == 200
    return await response.read()


# -- A bare client, to see the packets. ----------------------------------------------------------


class Raw:
    """A UDP socket speaking TFTP by hand; its blocking reads run in a thread."""

    def __init__(self, port: int) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.server = ("127.0.0.1", port)
        self.peer: tuple[str, int] | None = None  # the transfer's port (its TID)

    def close(self) -> None:
        self.socket.close()

    def request(self, opcode: int, name: str, mode: str = "octet", **options: str) -> None:
        fields = [name, mode, *(part for item in options.items() for part in item)]
        packet = struct.pack("!H", opcode) + b"".join(f.encode() + b"\0" for f in fields)
        self.socket.sendto(packet, self.server)

    def ack(self, block: int) -> None:
        assert self.peer is not None
        self.socket.sendto(struct.pack("!HH", tftp.ACK, block), self.peer)

    async def receive(self, within: float = 3.0) -> bytes | None:
        def read() -> bytes | None:
            self.socket.settimeout(within)
            try:
                data, peer = self.socket.recvfrom(70000)
            except TimeoutError:
                return None
            self.peer = peer
            return data

        return await asyncio.to_thread(read)


def options_of(oack: bytes) -> dict[str, str]:
    assert struct.unpack("!H", oack[:2])[0] == tftp.OACK
    parts = oack[2:].split(b"\0")[:-1]
    return {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts), 2)}


def error_of(packet: bytes | None) -> tuple[int, str]:
    assert packet is not None
    opcode, code = struct.unpack("!HH", packet[:4])
    assert opcode == tftp.ERROR and packet.endswith(b"\0")
    return code, packet[4:-1].decode()


# -- Tests. --------------------------------------------------------------------------------------


async def test_an_allowed_station_gets_the_bytes_http_answers(
    serve: Serve, station: Station, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="provisioning.tftp")
    client, server = await serve()
    expected = await http_body(client, station)
    assert (
        b" auth_pwd=pw-station-9\n" in expected and b" sip_domain=pbx-z.example.net\n" in expected
    )
    code, body, err = await curl(url(server, FILE))
    assert (code, err) == (0, "") and body == expected
    # Tiny blocks (dozens of them), no options at all (RFC 1350 alone), netascii-free octets.
    code, small, err = await curl("--tftp-blksize", "8", url(server, FILE))
    assert (code, err) == (0, "") and small == expected
    code, plain, err = await curl("--tftp-no-options", url(server, FILE))
    assert (code, err) == (0, "") and plain == expected
    assert server.counts["sent"] == 3
    # One line per transfer, which never carries the file's secrets.
    lines = [r.getMessage() for r in caplog.records if r.name == "provisioning.tftp"]
    assert len([line for line in lines if f"RRQ '{FILE}' 'octet': sent" in line]) == 3, lines
    assert "pw-station-9" not in caplog.text


async def test_an_ipv6_listener_serves_both_families_of_addresses(
    serve: Serve, station: Station
) -> None:
    """`[::]:PORT` takes IPv4 clients too (as IPv4-mapped addresses, checked as IPv4)."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    client, server = await serve(networks="127.0.0.0/8,::1/128", host="::")
    expected = await http_body(client, station)
    for host in ("127.0.0.1", "[::1]"):
        code, body, err = await curl(f"tftp://{host}:{server.port}/{FILE}")
        assert (code, err, body) == (0, "", expected), host


async def test_the_fetch_is_a_sighting_and_proves_the_change_applied(
    serve: Serve, station: Station, sessions: SessionFactory
) -> None:
    _, server = await serve()
    async with sessions() as session:
        (push,) = (
            await session.scalars(select(Push).where(Push.device_id == station.device_id))
        ).all()
        assert push.state == "pending"
    code, _, err = await curl(url(server, FILE))
    assert (code, err) == (0, "")
    # Recorded once the last ACK is in: curl may exit a moment before.
    await finished(server, "sent", 1)
    async with sessions() as session:
        device = await session.get(Device, station.device_id)
        push = await session.get(Push, push.id)
        sightings = (
            await session.scalars(select(Sighting).where(Sighting.device_id == station.device_id))
        ).all()
    assert device is not None and push is not None
    assert push.state == "applied" and push.applied_at is not None
    assert device.last_ip == "127.0.0.1" and device.last_seen_at is not None
    assert [(s.ip, s.file_name, s.revision) for s in sightings] == [
        ("127.0.0.1", FILE, device.config_revision)
    ]


async def test_a_source_outside_tftp_networks_gets_nothing(
    serve: Serve, station: Station, sessions: SessionFactory
) -> None:
    _, server = await serve(networks="192.0.2.0/24")
    code, body, _ = await curl("--tftp-no-options", url(server, FILE), limit=3)
    assert code == TIMED_OUT and body == b""
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, FILE)
        assert await raw.receive(within=1.0) is None  # not even an error: nothing reflected
        raw.request(tftp.WRQ, FILE)
        assert await raw.receive(within=1.0) is None
    finally:
        raw.close()
    assert server.counts["dropped"] >= 3 and server.counts["sent"] == 0
    async with sessions() as session:
        assert not (await session.scalars(select(Sighting))).all()


async def test_writes_are_refused(serve: Serve, station: Station, tmp_path: Path) -> None:
    client, server = await serve()
    before = await http_body(client, station)
    upload = tmp_path / FILE
    upload.write_bytes(b"[sip]\n sip_id=intruder\n")
    code, _, err = await curl("-T", str(upload), url(server, FILE))
    assert code == PERMISSION, err
    raw = Raw(server.port)
    try:
        raw.request(tftp.WRQ, FILE)
        assert error_of(await raw.receive()) == (
            tftp.ACCESS_VIOLATION,
            "read-only server: writes are refused",
        )
    finally:
        raw.close()
    assert await http_body(client, station) == before


async def test_blksize_and_tsize_are_acknowledged(serve: Serve, station: Station) -> None:
    client, server = await serve()
    expected = await http_body(client, station)
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, FILE, blksize="100", tsize="0", windowsize="4")
        oack = await raw.receive()
        assert oack is not None
        # tsize: the file's size; windowsize (RFC 7440) is not taken, so not acknowledged.
        assert options_of(oack) == {"blksize": "100", "tsize": str(len(expected))}
        received, block = b"", 0
        raw.ack(0)
        while True:
            packet = await raw.receive()
            assert packet is not None
            opcode, number = struct.unpack("!HH", packet[:4])
            assert (opcode, number) == (tftp.DATA, block + 1)
            data = packet[4:]
            assert len(data) <= 100
            received += data
            block = number
            raw.ack(block)
            if len(data) < 100:
                break
        assert received == expected and block == len(expected) // 100 + 1
    finally:
        raw.close()
    code, body, err = await curl("--tftp-blksize", "100", "-v", url(server, FILE))
    assert code == 0 and body == expected
    assert "blksize" in err and str(len(expected)) in err  # curl saw both options come back


def test_option_values_out_of_range_fall_back_to_the_defaults() -> None:
    taken = negotiate({"blksize": "7", "timeout": "0", "tsize": "x"}, 10)
    assert (taken.blksize, taken.timeout, taken.acknowledged) == (512, tftp.TIMEOUT, {})
    taken = negotiate({"blksize": "99999", "timeout": "10", "tsize": "0"}, 10)
    assert taken.acknowledged == {"blksize": "65464", "timeout": "10", "tsize": "10"}
    # RFC 2349 allows up to 255 s, but an OACK must repeat the value: above 10 s it is left out.
    taken = negotiate({"timeout": "11"}, 10)
    assert (taken.timeout, taken.acknowledged) == (tftp.TIMEOUT, {})
    # Thousands of digits (past what `int()` converts): left out, never an exception.
    huge = "9" * 5000
    taken = negotiate({"blksize": huge, "timeout": huge, "tsize": huge}, 10)
    assert (taken.blksize, taken.timeout, taken.acknowledged) == (512, tftp.TIMEOUT, {})
    assert netascii(b"a\nb\rc") == b"a\r\nb\r\0c"
    assert parse_request(b"\0\1F\0OCTET\0BlkSize\0008\0") == ("F", "octet", {"blksize": "8"})


async def test_unknown_files_and_files_of_other_families_are_errors(
    serve: Serve, station: Station, world: World
) -> None:
    _, server = await serve()
    # A Zenitel MAC nobody registered, the shared file, a registered Yealink's own file (never
    # handed out by MAC alone over TFTP), a path.
    for name in (UNKNOWN, "ipst_config.cfg", f"{YEALINK_MAC}.cfg", "../../etc/passwd"):
        code, body, _ = await curl(url(server, name))
        assert (code, body) == (NOT_FOUND, b""), name
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, UNKNOWN)
        assert error_of(await raw.receive()) == (tftp.NOT_FOUND, "file not found")
        raw.request(tftp.RRQ, FILE, mode="mail")
        assert error_of(await raw.receive())[0] == tftp.ILLEGAL
    finally:
        raw.close()
    assert server.counts["sent"] == 0


async def test_netascii_mode(serve: Serve, station: Station) -> None:
    client, server = await serve()
    expected = netascii(await http_body(client, station))
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, FILE, mode="netascii")
        received = b""
        while True:
            packet = await raw.receive()
            assert packet is not None and packet[:2] == struct.pack("!H", tftp.DATA)
            received += packet[4:]
            raw.ack(struct.unpack("!H", packet[2:4])[0])
            if len(packet) - 4 < tftp.BLOCK:
                break
        assert received == expected and b"\r\n sip_id=" in received
    finally:
        raw.close()


async def test_a_lost_ack_makes_the_block_go_again_a_duplicate_does_not(
    serve: Serve, station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tftp, "RETRIES", 2)
    _, server = await serve()
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, FILE, timeout="1", blksize="16")
        first = await raw.receive()
        assert first is not None and options_of(first)["timeout"] == "1"
        # No ACK: the OACK comes again after the timeout.
        assert await raw.receive(within=2.5) == first
        raw.ack(0)
        block_1 = await raw.receive()
        assert block_1 is not None and block_1[:4] == struct.pack("!HH", tftp.DATA, 1)
        raw.ack(0)  # a duplicate: block 1 must not be sent again for it
        assert await raw.receive(within=0.5) is None
        # Block 1 is sent again on its timeout; then, left unacknowledged, given up.
        assert await raw.receive(within=2.0) == block_1
        assert await raw.receive(within=2.0) == block_1
        assert await raw.receive(within=2.5) is None
    finally:
        raw.close()
    for _ in range(20):
        if server.counts["unfinished"]:
            break
        await asyncio.sleep(0.1)
    assert server.counts["unfinished"] == 1 and not server.transfers


async def test_misses_over_tftp_ban_the_source_as_over_http(serve: Serve, station: Station) -> None:
    """Three unknown MACs (BAN_THRESHOLD 3 here): the source is banned, and then even its own
    station's file is refused (access violation, as HTTP answers 403)."""
    _, server = await serve(ban_threshold=3)
    for last in ("01", "02", "03"):
        code, _, _ = await curl(url(server, f"ipst_config_00_13_cb_09_09_{last}.cfg"))
        assert code == NOT_FOUND
    code, body, _ = await curl(url(server, FILE))
    assert (code, body) == (PERMISSION, b"")
    assert server.services.guard.counts["banned_requests", ""] == 1


@pytest.mark.parametrize("digest", [False, True])
async def test_a_mac_is_enough_over_tftp_never_over_http(
    serve: Serve, station: Station, digest: bool
) -> None:
    """ALLOW_MAC_ONLY off: TFTP serves the station by MAC, and the same app still refuses the
    same name by MAC over HTTP (404, or the digest challenge with DIGEST on), with or without
    the station's own TFTP fetch just before. Over TFTP, DIGEST changes nothing: no challenge
    a station could not answer, an unknown MAC is "file not found"."""
    client, server = await serve(digest=digest, ban_threshold=10_000)
    assert not server.services.settings.allow_mac_only
    expected = await http_body(client, station)
    for _ in range(2):
        code, body, err = await curl(url(server, FILE))
        assert (code, err, body) == (0, "", expected)
        response = await client.get(f"/{FILE}")
        assert (response.status, await response.read()) == (401 if digest else 404, b"")
        assert ("WWW-Authenticate" in response.headers) is digest
    code, body, _ = await curl(url(server, UNKNOWN))
    assert (code, body) == (NOT_FOUND, b"")
    assert server.services.guard.counts["challenges", ""] == (2 if digest else 0)


async def test_the_phone_lane_refuses_by_mac_while_tftp_serves_it(
    settings: Settings, station: Station
) -> None:
    """The lane (phones.lane), the boot-storm path, behind the listener `serve` uses, with the
    TFTP listener of the same app serving the station by MAC."""
    lane = replace(
        settings, host="127.0.0.1", port=0, phone_lane=True, tftp_listen=("127.0.0.1", 0),
        tftp_networks=netaddr.IPSet(["127.0.0.0/8"]), ban_threshold=10_000,
    )  # fmt: skip
    app = create_app(lane)
    app.cleanup_ctx.append(tftp_ctx)
    async with listening(app, lane, None, logs.AccessLogger) as servers:
        port = servers[0][1].sockets[0].getsockname()[1]
        code, body, err = await curl(url(app[TFTP], FILE))
        assert (code, err) == (0, "") and b" auth_pwd=pw-station-9\n" in body
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET /{FILE} HTTP/1.1\r\nHost: phones.example\r\n\r\n".encode())
            await writer.drain()
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
        assert head.startswith(b"HTTP/1.1 404 "), head
        assert b"content-length: 0\r\n" in head.lower(), head


def test_the_authorizer_takes_a_mac_alone_only_when_told(settings: Settings) -> None:
    """`Evidence.mac_only` (set from the claim by tftp only) stands in for the proofs the
    policy requires, like ALLOW_MAC_ONLY; it never lets another MAC's file out, nor a device
    past its first-contact window."""
    assert not settings.allow_mac_only
    authorize = default_authorizer(settings)
    strict = Policy(proofs=parse_proofs("token+digest"))
    for policy in (Policy(), strict):
        by_mac = Evidence(MAC, by_token=False, path_mac=MAC, ua_mac=None, policy=policy)
        assert authorize(by_mac) is not Decision.ALLOW
        assert authorize(by_mac._replace(mac_only=True)) is Decision.ALLOW
        other = by_mac._replace(mac_only=True, path_mac="0013cb090909")
        assert authorize(other) is Decision.REFUSE
        late = by_mac._replace(mac_only=True, window_closed=True)
        assert authorize(late) is Decision.EXPIRED


async def test_serve_listens_for_tftp_when_told(
    database_url: str, tmp_path: Path, catalog: Catalog, settings: Settings
) -> None:
    """`provisioning serve` as an operator runs it, with TFTP_LISTEN and TFTP_NETWORKS: the
    station's file over TFTP is the one HTTP gives with its token."""
    url = await fresh_database(database_url, tmp_path, "tftp_serve")
    engine = make_engine(url)
    try:
        cipher = Cipher(settings.secret_key)
        async with make_session_factory(engine)() as session, session.begin():
            await inventory.sync_models(session, catalog)
            account = await accounts.create_account(session, settings, "Zenitel owner")
            line = await accounts.create_line(
                session, settings, cipher, account.id, "+33100000009", password="pw-station-9",
                registrar="udp:pbx-z.example.net:5060",
            )  # fmt: skip
            _, token = await inventory.add_device(
                session, catalog, cipher, MAC, "zenitel-ip_station", account.id
            )
            await inventory.assign_line(session, MAC, line.id)
    finally:
        await engine.dispose()
    port = free_port("udp")
    served = Served(url, tmp_path, tftp_listen=f"127.0.0.1:{port}", tftp_networks="127.0.0.1/32")
    with serving(served):
        await served.ready()
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{served.base}/{token}/{FILE}") as response,
        ):
            assert response.status == 200
            expected = await response.read()
        code, body, err = await curl(f"tftp://127.0.0.1:{port}/{FILE}")
        assert (code, err) == (0, "") and body == expected, served.log()[-2000:]
    assert f"TFTP on 127.0.0.1:{port}" in served.log()


# -- Misbehaving clients. ------------------------------------------------------------------------


async def finished(server: TftpServer, count: str, expected: int = 1, within: float = 10) -> None:
    """Wait until `server.counts[count]` reaches `expected` and no transfer is under way."""
    for _ in range(int(within * 10)):
        if server.counts[count] >= expected and not server.transfers:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count}: {server.counts}, {len(server.transfers)} transfers")


async def recorded(sessions: SessionFactory, device_id: int) -> tuple[str, Any, list[str]]:
    """The push's state, the device's last-seen time and its sightings' addresses."""
    async with sessions() as session:
        (push,) = (await session.scalars(select(Push).where(Push.device_id == device_id))).all()
        device = await session.get(Device, device_id)
        sightings = (
            await session.scalars(select(Sighting).where(Sighting.device_id == device_id))
        ).all()
    assert device is not None
    return push.state, device.last_seen_at, [s.ip for s in sightings]


def raw_from(port: int, host: str) -> Raw:
    """A bare client on another loopback address (another station, or a forged source)."""
    raw = Raw(port)
    raw.socket.close()
    raw.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.socket.bind((host, 0))
    return raw


async def test_nothing_is_recorded_until_the_last_block_is_acknowledged(
    serve: Serve, station: Station, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UDP sources prove nothing: a transfer whose OACK is never acknowledged, and one whose
    every block but the last is, leave the push pending and the station unseen. curl's whole
    transfer then records both."""
    monkeypatch.setattr(tftp, "RETRIES", 0)  # give up after one timeout
    _, server = await serve()
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, FILE, timeout="1", tsize="0")
        assert options_of(await raw.receive() or b"")["timeout"] == "1"  # never acknowledged
        await finished(server, "unfinished", 1)
        raw.request(tftp.RRQ, FILE, timeout="1", blksize="16")
        assert await raw.receive() is not None
        raw.ack(0)
        blocks = 0
        while (packet := await raw.receive()) is not None and len(packet) - 4 == 16:
            blocks += 1
            raw.ack(struct.unpack("!H", packet[2:4])[0])
        assert packet is not None and packet[:2] == b"\0\3" and blocks > 10  # the last: no ACK
        await finished(server, "unfinished", 2)
    finally:
        raw.close()
    assert await recorded(sessions, station.device_id) == ("pending", None, [])
    code, _, err = await curl(url(server, FILE))
    assert (code, err) == (0, "")
    await finished(server, "sent", 1)  # curl is done once it has sent the last ACK
    state, seen, sightings = await recorded(sessions, station.device_id)
    assert (state, sightings) == ("applied", ["127.0.0.1"]) and seen is not None


async def test_an_unfinished_request_from_another_address_binds_nothing(
    serve: Serve, station: Station, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FIRST_CONTACT_BINDING=address: a request from 127.0.0.2 (a forged source, say) that
    never acknowledges its file does not bind the station there; the real station's whole
    transfer binds it to 127.0.0.1, and 127.0.0.2 is refused from then on."""
    monkeypatch.setattr(tftp, "RETRIES", 0)
    _, server = await serve(first_contact_binding="address")
    forged = raw_from(server.port, "127.0.0.2")
    try:
        forged.request(tftp.RRQ, FILE, timeout="1")
        assert await forged.receive() is not None  # the OACK, never acknowledged
        await finished(server, "unfinished", 1)
    finally:
        forged.close()
    async with sessions() as session:
        assert await session.get(DeviceBinding, station.device_id) is None
    code, _, err = await curl(url(server, FILE))
    assert (code, err) == (0, "")
    await finished(server, "sent", 1)
    async with sessions() as session:
        binding = await session.get(DeviceBinding, station.device_id)
        assert binding is not None and binding.bound_to == "127.0.0.1"
    code, body, _ = await curl("--interface", "127.0.0.2", url(server, FILE))
    assert (code, body) == (NOT_FOUND, b"")


async def test_a_huge_option_value_is_left_out_not_a_server_error(
    serve: Serve, station: Station, caplog: pytest.LogCaptureFixture
) -> None:
    """5,000 digits (past the 4,300 `int()` converts): the options are not taken, DATA 1 comes
    at once in 512-byte blocks (RFC 2347: the client then uses the defaults), no traceback."""
    client, server = await serve()
    expected = await http_body(client, station)
    raw = Raw(server.port)
    try:
        huge = "9" * 5000
        raw.request(tftp.RRQ, FILE, blksize=huge, timeout=huge, tsize=huge)
        received = b""
        while True:
            packet = await raw.receive()
            assert packet is not None and packet[:2] == b"\0\3", packet
            received += packet[4:]
            raw.ack(struct.unpack("!H", packet[2:4])[0])
            if len(packet) - 4 < tftp.BLOCK:
                break
    finally:
        raw.close()
    assert received == expected
    await finished(server, "sent", 1)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[-2000:]


async def test_one_source_gets_at_most_per_source_transfers_at_once(
    serve: Serve, station: Station
) -> None:
    """PER_SOURCE (4) transfers left hanging by one address: its next request is "busy" at once
    (no port, no task); another address of the network is still served, by curl."""
    client, server = await serve()
    expected = await http_body(client, station)
    hanging = [Raw(server.port) for _ in range(tftp.PER_SOURCE + 1)]
    try:
        for raw in hanging[:-1]:
            raw.request(tftp.RRQ, FILE, tsize="0")
            assert options_of(await raw.receive() or b"")  # an OACK, never acknowledged
        assert len(server.transfers) == tftp.PER_SOURCE
        hanging[-1].request(tftp.RRQ, FILE, tsize="0")
        assert error_of(await hanging[-1].receive()) == (
            tftp.NOT_DEFINED,
            "server busy, try again later",
        )
        assert hanging[-1].peer == ("127.0.0.1", server.port)  # from the listener itself
        assert server.counts["busy"] == 1 and len(server.transfers) == tftp.PER_SOURCE
        code, body, err = await curl("--interface", "127.0.0.2", url(server, FILE))
        assert (code, err, body) == (0, "", expected)
    finally:
        for raw in hanging:
            raw.close()


async def test_a_slow_client_gives_its_slot_back_after_transfer_seconds(
    serve: Serve, station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client acknowledging each 8-byte block just before its 1 s timeout would hold its
    slot for minutes: after TRANSFER_SECONDS it gets an error and the slot is free again."""
    monkeypatch.setattr(tftp, "TRANSFER_SECONDS", 1.5)
    monkeypatch.setattr(tftp, "MAX_TRANSFERS", 1)  # stands for all of them
    _, server = await serve()
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, FILE, timeout="1", blksize="8")
        assert await raw.receive() is not None
        started = asyncio.get_running_loop().time()
        raw.ack(0)
        while (packet := await raw.receive()) is not None and packet[:2] == b"\0\3":
            await asyncio.sleep(0.7)
            raw.ack(struct.unpack("!H", packet[2:4])[0])
        took = asyncio.get_running_loop().time() - started
        assert error_of(packet) == (tftp.NOT_DEFINED, "transfer too slow, given up")
        assert 1.4 < took < 3, took
    finally:
        raw.close()
    await finished(server, "unfinished", 1)
    code, _, err = await curl(url(server, FILE))
    assert (code, err, server.counts["busy"]) == (0, "", 0)


async def test_write_requests_are_counted_not_logged_one_by_one(
    serve: Serve, station: Station, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="provisioning.tftp")
    _, server = await serve()
    raw = Raw(server.port)
    try:
        for _ in range(20):
            raw.request(tftp.WRQ, FILE)
            assert error_of(await raw.receive())[0] == tftp.ACCESS_VIOLATION
    finally:
        raw.close()
    assert server.counts["writes"] == 20
    lines = [r.getMessage() for r in caplog.records if "write request" in r.getMessage()]
    assert lines == [
        "tftp: 1 write request(s) refused since the last report, the latest from 127.0.0.1"
    ]


async def test_a_banned_source_is_refused_before_a_transfer_starts(
    serve: Serve, station: Station
) -> None:
    """Banned: error 2 from the listening port itself, no transfer port, no task."""
    _, server = await serve(ban_threshold=3)
    for last in ("01", "02", "03"):
        code, _, _ = await curl(url(server, f"ipst_config_00_13_cb_09_09_{last}.cfg"))
        assert code == NOT_FOUND
    await finished(server, "refused", 3)
    raw = Raw(server.port)
    try:
        raw.request(tftp.RRQ, FILE)
        assert error_of(await raw.receive()) == (tftp.ACCESS_VIOLATION, "access violation")
        assert raw.peer == ("127.0.0.1", server.port) and not server.transfers
    finally:
        raw.close()
    assert server.counts["banned"] == 1 and server.counts["refused"] == 3
