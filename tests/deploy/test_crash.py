"""kill -9 of a real `provisioning serve` in the middle of the work, then a restart: nothing lost,
nothing done twice. And SIGTERM: requests in flight finish before the process exits.

"In the middle" is made certain, not left to timing: the test holds a lock the server's
transaction needs (PostgreSQL: a table lock, so the server has already written part of its
transaction and waits for the rest; SQLite: the write lock, so the server waits to begin),
sees the server wait, and kills it then."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from provisioning.crypto import Cipher
from provisioning.db.engine import SessionFactory, make_engine
from provisioning.db.models import Association, AuditEvent, LineSlot, Order, Push
from provisioning.devices import inventory
from provisioning.devices.catalog import Catalog
from provisioning.settings import Settings
from provisioning.sip.message import parse, response_to
from tests.deploy.conftest import Seed, seed, server_env
from tests.deploy.servers import Instance, instances
from tests.peers.require import free_port


@contextlib.asynccontextmanager
async def holding(database_url: str, table: str) -> AsyncIterator[None]:
    """Hold a lock that makes a server's write wait: on PostgreSQL an exclusive lock on `table`
    (reads go on, the INSERT into it waits), on SQLite the database's write lock."""
    if database_url.startswith("postgresql"):
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                transaction = await conn.begin()
                await conn.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
                try:
                    yield
                finally:
                    await transaction.rollback()
        finally:
            await engine.dispose()
        return
    path = make_url(database_url).database
    assert path is not None
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


async def server_waits(database_url: str) -> None:
    """Until the server is blocked on the lock (PostgreSQL: a lock not granted)."""
    if not database_url.startswith("postgresql"):
        await asyncio.sleep(0.5)  # SQLite: the server waits in BEGIN IMMEDIATE
        return
    engine = make_engine(database_url)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                waiting = await conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            if waiting:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the server never waited for the lock")
    finally:
        await engine.dispose()


async def post(
    url: str, token: str, body: dict[str, Any], **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            url, json=body, headers={"Authorization": f"Bearer {token}", **headers}
        ) as resp,
    ):
        return resp.status, await resp.json(), dict(resp.headers)


async def killed_while_waiting(
    server: Instance, database_url: str, table: str, url: str, token: str,
    body: dict[str, Any], **headers: str,
) -> None:  # fmt: skip
    """POST, wait until the server's transaction waits on `table`, kill -9 the server."""
    async with holding(database_url, table):
        request = asyncio.create_task(post(url, token, body, **headers))
        await server_waits(database_url)
        server.kill(signal.SIGKILL)
        assert await asyncio.to_thread(server.wait, 10) == -signal.SIGKILL
        try:
            await request
        except aiohttp.ClientError:
            pass  # the connection died with the server, as a phone or browser would see
        else:
            raise AssertionError("the request was answered by a killed server")


async def restart(server: Instance) -> None:
    server.start()
    await server.ready()


async def test_kill_9_during_order_creation_then_the_retry_creates_one_order(
    database_url: str, sessions: SessionFactory, settings: Settings, catalog: Catalog,
    tmp_path: Path,
) -> None:  # fmt: skip
    world = await seed(sessions, settings, catalog, "sip.example.net", 1)
    server = Instance("crash-order", tmp_path, server_env(database_url))
    body = {
        "line_id": world.lines["spare1"], "model": "yealink-t46u", "carrier": "dhl",
        "accept_contract": True,
    }  # fmt: skip
    key = {"Idempotency-Key": "kill-9-order"}
    with instances(server):
        await restart(server)
        url = f"{server.url}/api/v1/orders"
        # PostgreSQL: the order row is written, the audit event waits.
        await killed_while_waiting(
            server, database_url, "audit_events", url, world.api, body, **key
        )
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Order)) == 0
            orders_audited = select(func.count()).where(AuditEvent.action == "order.create")
            assert await session.scalar(orders_audited) == 0
        await restart(server)
        url = f"{server.url}/api/v1/orders"
        status, created, headers = await post(url, world.api, body, **key)
        assert status == 201 and "Idempotent-Replayed" not in headers, created
        status, again, headers = await post(url, world.api, body, **key)
        assert (status, again["id"], headers.get("Idempotent-Replayed")) == (
            201, created["id"], "true"
        )  # fmt: skip
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
    assert "Traceback" not in server.log()


async def test_kill_9_during_an_association_applies_all_or_nothing(
    database_url: str, sessions: SessionFactory, settings: Settings, catalog: Catalog,
    tmp_path: Path,
) -> None:  # fmt: skip
    world = await seed(sessions, settings, catalog, "sip.example.net", 1)
    mac = world.macs[0]
    line = world.lines["alice2"]
    async with sessions() as session:
        pushes_before = await session.scalar(select(func.count()).select_from(Push))
    server = Instance("crash-association", tmp_path, server_env(database_url))
    body = {"line_id": line, "mac": mac}
    with instances(server):
        await restart(server)
        url = f"{server.url}/api/v1/associations"
        # PostgreSQL: the slot and the push are written, the association row waits.
        await killed_while_waiting(server, database_url, "associations", url, world.api, body)
        async with sessions() as session:
            slots = (await session.scalars(select(LineSlot).where(LineSlot.line_id == line))).all()
            assert slots == []
            assert await session.scalar(select(func.count()).select_from(Push)) == pushes_before
            assert await session.scalar(select(func.count()).select_from(Association)) == 0
        await restart(server)
        url = f"{server.url}/api/v1/associations"
        status, created, _ = await post(url, world.api, body)
        assert status == 202 and created["slot"] == 2, created
        # Done once: the line now has a phone.
        status, problem, _ = await post(url, world.api, body)
        assert status == 409, problem
    async with sessions() as session:
        slots = (await session.scalars(select(LineSlot).where(LineSlot.line_id == line))).all()
        assert [s.slot for s in slots] == [2]
        assert await session.scalar(select(func.count()).select_from(Association)) == 1
        assert await session.scalar(select(func.count()).select_from(Push)) == pushes_before + 1
    assert "Traceback" not in server.log()


class Registrar(asyncio.DatagramProtocol):
    """Stands where the lines' registrar is: answers every NOTIFY 200, counts them per line."""

    def __init__(self) -> None:
        self.notifies: Counter[str] = Counter()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse(data)
        if message.is_response or message.method != "NOTIFY":
            return
        # Request-URI sip:<user>@host:port
        user = message.uri.split(":", 1)[1].split("@", 1)[0]
        self.notifies[user] += 1
        assert self.transport is not None
        self.transport.sendto(response_to(message, 200, "OK").encode(), addr)


async def test_kill_9_during_a_push_batch_then_each_push_is_sent_and_done_once(
    database_url: str, sessions: SessionFactory, settings: Settings, catalog: Catalog,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The worker claims ten pushes and sends them five a second; it is killed after three.
    The claim was a lease: after it runs out the restarted server sends the others. A push
    whose answer was recorded is never sent again."""
    port = free_port("udp")
    loop = asyncio.get_running_loop()
    transport, registrar = await loop.create_datagram_endpoint(
        Registrar, local_addr=("127.0.0.1", port)
    )
    try:
        world = await seed(sessions, settings, catalog, f"127.0.0.1:{port}", 1)
        users = [f"batch{n}" for n in range(10)]
        await _ten_phones_with_a_line_each(sessions, settings, catalog, world, users, port)
        env = server_env(database_url, PROVISIONING_PUSH_RATE="5")
        server = Instance("crash-push", tmp_path, env)
        with instances(server):
            server.start()
            deadline = time.monotonic() + 20
            while sum(registrar.notifies[u] for u in users) < 3:
                assert time.monotonic() < deadline, server.log()[-2000:]
                await asyncio.sleep(0.01)
            server.kill(signal.SIGKILL)
            assert await asyncio.to_thread(server.wait, 10) == -signal.SIGKILL
            await asyncio.sleep(0.2)  # answers in flight to the dead socket are lost
            sent_before = Counter({u: registrar.notifies[u] for u in users})
            async with sessions() as session:
                rows = (await session.execute(select(Push.id, Push.state, Push.attempts, Push.last_result).where(Push.reason == "assign"))).all()  # fmt: skip
            recorded = {push_id for push_id, _, _, result in rows if result == "200"}
            assert 1 <= len(recorded) <= 5
            assert all(attempts == 1 for _, _, attempts, _ in rows)  # all ten claimed once
            assert sum(sent_before.values()) < len(users)  # killed in the middle
            await restart(server)

            async def all_notified() -> bool:
                async with sessions() as session:
                    states = (
                        await session.scalars(select(Push.state).where(Push.reason == "assign"))
                    ).all()
                return set(states) == {"notified"}

            deadline = time.monotonic() + 20
            while not await all_notified():
                assert time.monotonic() < deadline, server.log()[-2000:]
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # nothing more goes out
        async with sessions() as session:
            pushes = (await session.scalars(select(Push).where(Push.reason == "assign"))).all()
        by_id = {p.id: p for p in pushes}
        assert len(by_id) == len(users) + 1  # the seed's phone had one too
        for push in pushes:
            if push.id in recorded:
                assert push.attempts == 1  # answered and recorded: never sent again
        # Every phone got its NOTIFY; one recorded before the kill got exactly one.
        assert all(registrar.notifies[u] >= 1 for u in users), registrar.notifies
        assert sum(registrar.notifies[u] for u in users) <= len(users) + (
            len(users) - len(recorded)
        )
        assert "Traceback" not in server.log()
    finally:
        transport.close()


async def _ten_phones_with_a_line_each(
    sessions: SessionFactory, settings: Settings, catalog: Catalog, world: Seed,
    users: list[str], port: int,
) -> None:  # fmt: skip
    from provisioning import accounts

    cipher = Cipher(settings.secret_key)
    async with sessions() as session, session.begin():
        for n, user in enumerate(users):
            line = await accounts.create_line(
                session, settings, cipher, world.account_id, f"+3320000000{n}",
                username=user, password=f"pw-{user}", registrar=f"127.0.0.1:{port}",
            )  # fmt: skip
            mac = f"0015651000{n:02x}"
            await inventory.add_device(
                session, catalog, cipher, mac, "yealink-t46u", world.account_id
            )
            await inventory.assign_line(session, mac, line.id)


async def test_sigterm_drains_requests_in_flight(
    database_url: str, sessions: SessionFactory, settings: Settings, catalog: Catalog,
    tmp_path: Path,
) -> None:  # fmt: skip
    world = await seed(sessions, settings, catalog, "sip.example.net", 1)
    server = Instance("drain", tmp_path, server_env(database_url))
    body = {
        "line_id": world.lines["spare1"], "model": "yealink-t46u", "carrier": "dhl",
        "accept_contract": True,
    }  # fmt: skip
    with instances(server):
        await restart(server)
        url = f"{server.url}/api/v1/orders"
        async with holding(database_url, "audit_events"):
            request = asyncio.create_task(post(url, world.api, body))
            await server_waits(database_url)
            server.kill(signal.SIGTERM)
            await asyncio.sleep(0.5)
            # Not listening any more; the request in flight is still being served.
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", server.port), timeout=1),
            ):
                raise AssertionError("still accepting connections while draining")
            assert not request.done()
        status, created, _ = await asyncio.wait_for(request, 30)
        assert status == 201, created
        assert await asyncio.to_thread(server.wait, 30) == 0
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
    assert "Traceback" not in server.log()
